"""Fault injection on real processes: collection and billing as ``wastetrail serve``
processes on real Kafka and PostgreSQL, killed with SIGKILL at the narrowest windows (fail
points), a broker killed under live scans, PostgreSQL cut away for 30 s, a dead-letter
publish that fails. Each scenario ends with the independent mass balance (every accepted
load is exactly one of billing's charges, with its grams) and a clean ``audit replay``
whose log holds exactly the accepted loads.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fault_harness import (
    Collector,
    PrivateBroker,
    TcpLink,
    assert_mass_balance,
    assert_trip_order,
    audit_replay,
    count_records,
    services,
)
from wastetrail_contracts.topics import dead_letter_topic
from wastetrail_runtime.consumer import retry_topic

from conftest import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_relay_killed_after_commit_before_publish_and_after_publish_before_mark(
    scenario: Scenario, tmp_path: Path
) -> None:
    # HTTP on one collection process without a relay; the relay in another, killed twice.
    api = scenario.service("collection", label="collection-api", WASTETRAIL_RUN_RELAY="false")
    relay = scenario.service("collection", label="collection-relay")
    billing = scenario.service("billing")
    collector = Collector(api.url)
    with services(api, relay, billing):
        api.start()
        billing.start()
        async with httpx.AsyncClient() as client:
            await collector.register(client)
            await collector.trip(client, scans=30)
            # Committed, then SIGKILLed before sending anything to Kafka.
            relay.start(wait=False, WASTETRAIL_FAILPOINT="relay.before_publish")
            assert relay.wait_killed() == -9
            assert await _outbox_pending(scenario.collection_db) > 0
            # Sent and acknowledged by Kafka, then SIGKILLed before marking published.
            relay.start(wait=False, WASTETRAIL_FAILPOINT="relay.after_publish")
            assert relay.wait_killed() == -9
            assert await _outbox_pending(scenario.collection_db) > 0
            relay.start()
            await collector.trip(client, scans=20)
        await assert_mass_balance(scenario.billing_db, collector)
        assert await _outbox_pending(scenario.collection_db) == 0
        assert billing.metric("wastetrail_dead_letters_total") == 0
    summary = audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "audit", collector)
    assert int(summary["duplicates"]) > 0  # type: ignore[call-overload]  # re-published


async def test_two_relays_at_once(scenario: Scenario, tmp_path: Path) -> None:
    first = scenario.service("collection", label="collection-1")
    second = scenario.service("collection", label="collection-2")
    billing = scenario.service("billing")
    collector = Collector(first.url)
    with services(first, second, billing):
        first.start()
        second.start()
        billing.start()
        async with httpx.AsyncClient() as client:
            await collector.register(client)
            # Both processes take scans and both relays publish the one outbox.
            await asyncio.gather(*(collector.trip(client, scans=25, url=url)
                                   for url in (first.url, second.url, first.url, second.url)))
        charges = await assert_mass_balance(scenario.billing_db, collector)
        assert_trip_order(collector, charges)
    audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "audit", collector)


async def test_consumer_killed_between_database_commit_and_offset_commit(
    scenario: Scenario, tmp_path: Path
) -> None:
    collection = scenario.service("collection")
    billing = scenario.service("billing")
    collector = Collector(collection.url)
    with services(collection, billing):
        collection.start()
        async with httpx.AsyncClient() as client:
            await collector.register(client)
            await collector.trip(client, scans=40)
            billing.start(wait=False, WASTETRAIL_FAILPOINT="consumer.after_commit")
            assert billing.wait_killed() == -9  # its first batch committed, offsets not
            assert await _charges_count(scenario.billing_db) > 0
            billing.start()
            await collector.trip(client, scans=20)
        await assert_mass_balance(scenario.billing_db, collector)
        # The restarted consumer was given the committed batch again and skipped it.
        assert billing.metric("wastetrail_events_duplicate_total") > 0
    audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "audit", collector)


async def test_dead_letter_publish_failing_loses_nothing(
    scenario: Scenario, tmp_path: Path
) -> None:
    collection = scenario.service("collection")
    billing = scenario.service("billing")
    collector = Collector(collection.url)
    retry = retry_topic("billing.collection", scenario.prefix)
    dlq = dead_letter_topic("billing.collection", scenario.prefix)
    with services(collection, billing):
        collection.start()
        # Every dead-letter publish fails (as if the broker refused it).
        billing.start(WASTETRAIL_FAILPOINT_RAISE="consumer.dead_letter:1000000")
        async with httpx.AsyncClient() as client:
            await collector.register(client)
            await collector.trip(client, scans=20)
            await assert_mass_balance(scenario.billing_db, collector)
            # A record the consumer must dead-letter, then more loads behind it.
            await _produce(scenario.bootstrap, retry, b"this is not an event")
            await collector.trip(client, scans=20)
            status, body = await _until_not_ready(billing)
            assert status == 503 and body["checks"]["consumer:billing.collection"] is False
            assert count_records(scenario.bootstrap, dlq) == 0
            # Stuck on a record it could neither apply nor set aside: kill it. Its offset
            # was never committed, so the restarted consumer reads it again.
            billing.kill9()
            billing.start()
        await assert_mass_balance(scenario.billing_db, collector)
        assert count_records(scenario.bootstrap, dlq) == 1
        assert billing.metric("wastetrail_dead_letters_total") == 1
    audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "audit", collector)


async def test_postgres_unreachable_for_30s_while_consumers_run(
    scenario: Scenario, tmp_path: Path, postgres_admin_url: str
) -> None:
    from urllib.parse import urlsplit

    pg = urlsplit(scenario.billing_db)
    link = TcpLink(pg.port or 5432)
    through_link = scenario.billing_db.replace(f":{pg.port}/", f":{link.port}/")
    collection = scenario.service("collection")
    billing = scenario.service("billing", database_url=through_link)
    collector = Collector(collection.url)
    try:
        with services(collection, billing):
            collection.start()
            billing.start()
            async with httpx.AsyncClient() as client:
                await collector.register(client)
                await collector.trip(client, scans=20)
                await assert_mass_balance(scenario.billing_db, collector)
                link.cut()
                cut_at = time.monotonic()
                # Scans go on while billing cannot reach its database.
                for _ in range(3):
                    await collector.trip(client, scans=20)
                status, body = await _until_not_ready(billing)
                assert status == 503 and body["checks"]["database"] is False
                await asyncio.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
                link.restore()
                await collector.trip(client, scans=20)
            charges = await assert_mass_balance(scenario.billing_db, collector, wait_s=90)
            assert_trip_order(collector, charges)
            billing.wait_ready()
            assert billing.metric("wastetrail_dead_letters_total") == 0
            assert count_records(scenario.bootstrap,
                                 dead_letter_topic("billing.collection", scenario.prefix)) == 0
    finally:
        link.close()
    audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "audit", collector)


async def test_broker_killed_under_live_scans_then_restarted(
    scenario: Scenario, tmp_path: Path
) -> None:
    from wastetrail_runtime.topics import ensure_topics

    broker = PrivateBroker(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    try:
        await ensure_topics(broker.bootstrap, prefix=scenario.prefix)
        collection = scenario.service("collection", bootstrap=broker.bootstrap)
        billing = scenario.service("billing", bootstrap=broker.bootstrap)
        collector = Collector(collection.url)
        with services(collection, billing):
            collection.start()
            billing.start()
            async with httpx.AsyncClient() as client:
                await collector.register(client)
                await collector.trip(client, scans=20)
                scanning = asyncio.create_task(_keep_scanning(collector, client, trips=6))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(broker.kill9)
                await asyncio.sleep(5.0)  # scans keep being taken while the broker is dead
                await asyncio.to_thread(broker.start)
                await scanning
            charges = await assert_mass_balance(scenario.billing_db, collector, wait_s=120)
            assert_trip_order(collector, charges)
            assert billing.metric("wastetrail_dead_letters_total") == 0
        audit_replay(broker.bootstrap, scenario.prefix, tmp_path / "audit", collector)
    finally:
        await asyncio.to_thread(broker.stop)


# ------------------------------------------------------------------------------ helpers


async def _keep_scanning(collector: Collector, client: httpx.AsyncClient, trips: int) -> None:
    for _ in range(trips):
        await collector.trip(client, scans=10, chunk=5)


async def _until_not_ready(proc: object, wait_s: float = 30) -> tuple[int, dict[str, object]]:
    from fault_harness import ServiceProcess

    assert isinstance(proc, ServiceProcess)
    deadline = time.monotonic() + wait_s
    status, body = proc.readiness()
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status, body = await asyncio.to_thread(proc.readiness)
    return status, body


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _scalar(database_url: str, sql: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _outbox_pending(database_url: str) -> int:
    return await _scalar(database_url, "SELECT count(*) FROM rt_outbox WHERE published_at IS NULL")


async def _charges_count(database_url: str) -> int:
    return await _scalar(database_url, "SELECT count(*) FROM charges")
