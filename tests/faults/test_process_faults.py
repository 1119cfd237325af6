"""Fault injection on real processes: collection and billing as ``wastetrail serve``
processes on real Kafka and PostgreSQL, killed with SIGKILL at the narrowest windows (fail
points), a broker killed under live scans, PostgreSQL cut away for 30 s, a dead-letter
publish that fails. Each scenario (a phase below) ends with the independent mass balance
(every accepted load is exactly one of billing's charges, with its grams) and a clean
``audit replay`` whose log holds exactly the accepted loads.

A service process spends seconds importing on a loaded machine, so the scenarios that
share a shape run as phases of one test on one set of processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fault_harness import (
    Collector,
    PrivateBroker,
    Scenario,
    TcpLink,
    assert_mass_balance,
    assert_trip_order,
    audit_replay,
    count_records,
    services,
)
from wastetrail_contracts.topics import dead_letter_topic
from wastetrail_runtime.consumer import retry_topic

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_relay_killed_between_commit_and_publish_then_two_relays_at_once(
    scenario: Scenario, tmp_path: Path
) -> None:
    # HTTP on a collection process without a relay; relays in two others. (A relay killed
    # after Kafka's ack and before the mark: runtime/tests/test_faults.py.)
    api = scenario.service("collection", label="collection-api", WASTETRAIL_RUN_RELAY="false")
    relay = scenario.service("collection", label="collection-relay-1")
    second = scenario.service("collection", label="collection-relay-2")
    billing = scenario.service("billing")
    collector = Collector(api.url)
    with services(api, relay, second, billing):
        # Phase 1: the relay is SIGKILLed with rows committed, before sending them.
        api.start(wait=False)
        relay.start(wait=False, WASTETRAIL_FAILPOINT="relay.before_publish")
        billing.start()
        api.wait_ready()
        async with httpx.AsyncClient() as client:
            await collector.register(client)
            assert relay.wait_killed() == -9
            await collector.trip(client, scans=30)
            assert await _outbox_pending(scenario.collection_db) > 30
            # Phase 2: two relays at once drain the backlog and what keeps coming.
            relay.start_all(relay, second)
            for _ in range(3):
                await collector.trip(client, scans=20)
            assert relay.readiness()[0] == second.readiness()[0] == 200  # both ran throughout
        charges = await assert_mass_balance(scenario.billing_db, collector)
        assert_trip_order(charges, collector)
        await _until_zero(lambda: _outbox_pending(scenario.collection_db))
        published = [p.metric("wastetrail_events_published_total") for p in (relay, second)]
        assert sum(published) > 0
        assert billing.metric("wastetrail_dead_letters_total") == 0
    audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "audit", collector)


async def test_consumer_faults_dead_letter_publish_kill_between_commits_postgres_away_30s(
    scenario: Scenario, tmp_path: Path
) -> None:
    from urllib.parse import urlsplit

    pg = urlsplit(scenario.billing_db)
    link = TcpLink(pg.port or 5432)  # billing reaches PostgreSQL through a link we can cut
    through_link = scenario.billing_db.replace(f":{pg.port}/", f":{link.port}/")
    collection = scenario.service("collection")
    billing = scenario.service("billing", database_url=through_link)
    collector = Collector(collection.url)
    retry = retry_topic("billing.collection", scenario.prefix)
    dlq = dead_letter_topic("billing.collection", scenario.prefix)
    poison = b"this is not an event"
    try:
        with services(collection, billing):
            # Phase 1: every dead-letter publish fails (as if the broker refused it).
            collection.start(wait=False)
            billing.start(WASTETRAIL_FAILPOINT_RAISE="consumer.dead_letter:1000000")
            collection.wait_ready()
            async with httpx.AsyncClient() as client:
                await collector.register(client)
                await collector.trip(client, scans=20)
                await assert_mass_balance(scenario.billing_db, collector)
                # A record the consumer must dead-letter, and loads behind it.
                await _produce(scenario.bootstrap, retry, poison)
                await collector.trip(client, scans=20)
                status, body = await _until_not_ready(billing)
                assert status == 503, body
                assert body["checks"]["consumer:billing.collection"] is False  # type: ignore[index]
                assert count_records(scenario.bootstrap, dlq) == 0
                # Stuck on a record it could neither apply nor set aside: SIGKILL it.
                billing.kill9()

                # Phase 2: the next billing process is killed between its database commit
                # and its offset commit. It reads the poison record again (its offset was
                # never committed) and dead-letters it, applies the loads, commits, dies.
                billing.start(wait=False, WASTETRAIL_FAILPOINT="consumer.after_commit")
                await collector.trip(client, scans=20)
                assert billing.wait_killed() == -9
                billing.start()
                await collector.trip(client, scans=20)
                await assert_mass_balance(scenario.billing_db, collector)
                letters = _values(scenario.bootstrap, dlq)
                assert letters and set(letters) == {poison}, letters
                # The committed batch was delivered again and skipped as redeliveries.
                assert billing.metric("wastetrail_events_duplicate_total") > 0
                # The junk this test put on the retry topic is the one thing the audit flags.
                junk = frozenset({(retry, "retry_forged")})
                audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "a1", collector,
                             forged=junk)

                # Phase 3: PostgreSQL unreachable for 30 s while scans go on.
                dead_letters_before = len(letters)
                link.cut()
                cut_at = time.monotonic()
                for _ in range(3):
                    await collector.trip(client, scans=20)
                status, body = await _until_not_ready(billing)
                assert status == 503 and body["checks"]["database"] is False  # type: ignore[index]
                await asyncio.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
                link.restore()
                await collector.trip(client, scans=20)
            charges = await assert_mass_balance(scenario.billing_db, collector, wait_s=90)
            assert_trip_order(charges, collector)
            billing.wait_ready()
            # Nothing was dead-lettered for the outage.
            assert count_records(scenario.bootstrap, dlq) == dead_letters_before
    finally:
        link.close()
    audit_replay(scenario.bootstrap, scenario.prefix, tmp_path / "a2", collector,
                 forged=frozenset({(retry, "retry_forged")}))


async def test_broker_killed_under_live_scans_then_restarted(
    scenario: Scenario, tmp_path: Path
) -> None:
    from wastetrail_runtime.topics import ensure_topics

    broker = PrivateBroker(tmp_path / "broker")
    collection = scenario.service("collection", bootstrap=broker.bootstrap)
    billing = scenario.service("billing", bootstrap=broker.bootstrap)
    collector = Collector(collection.url)
    try:
        with services(collection, billing):
            # The services start before their broker answers: Kafka start-up is retried.
            collection.start(wait=False)
            billing.start(wait=False)
            await asyncio.to_thread(broker.start)
            await ensure_topics(broker.bootstrap, prefix=scenario.prefix)
            collection.wait_ready()
            billing.wait_ready()
            async with httpx.AsyncClient() as client:
                await collector.register(client)
                await collector.trip(client, scans=20)
                stop = asyncio.Event()
                scanning = asyncio.create_task(_keep_scanning(collector, client, stop))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(broker.kill9)
                scanned_at_kill = len(collector.loads)
                await asyncio.sleep(3.0)  # scans keep being taken while the broker is dead
                status, body = await _until_not_ready(billing)
                assert status == 503 and body["checks"]["kafka"] is False, body  # type: ignore[index]
                assert len(collector.loads) > scanned_at_kill  # accepted with no broker
                await asyncio.to_thread(broker.start)
                stop.set()
                await scanning
            charges = await assert_mass_balance(scenario.billing_db, collector, wait_s=120)
            assert_trip_order(charges, collector)
            assert billing.metric("wastetrail_dead_letters_total") == 0
        audit_replay(broker.bootstrap, scenario.prefix, tmp_path / "audit", collector)
    finally:
        await asyncio.to_thread(broker.stop)


# ------------------------------------------------------------------------------ helpers


async def _keep_scanning(collector: Collector, client: httpx.AsyncClient,
                         stop: asyncio.Event) -> None:
    while not stop.is_set():
        await collector.trip(client, scans=10, chunk=5)
        await asyncio.sleep(0.3)


async def _until_not_ready(proc: object, wait_s: float = 30) -> tuple[int, dict[str, object]]:
    from fault_harness import ServiceProcess

    assert isinstance(proc, ServiceProcess)
    deadline = time.monotonic() + wait_s
    status, body = proc.readiness()
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status, body = await asyncio.to_thread(proc.readiness)
    return status, body


async def _until_zero(count: Callable[[], Awaitable[int]], wait_s: float = 30) -> None:
    deadline = time.monotonic() + wait_s
    while (left := await count()) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert left == 0


def _values(bootstrap: str, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000)
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


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


