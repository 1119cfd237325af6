"""End to end over the real broker: collection's events arrive through Kafka, the transfer
service's consumers project them, and its own events leave through its outbox to Kafka.

The collection side is written exactly the way the collection service writes: a
``wastetrail_runtime`` EventStore (service "collection") on its own PostgreSQL database,
then the OutboxRelay publishes the committed rows to the collection topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from wastetrail_contracts import SYSTEM_ACTOR, Event, decode, parse_payload
from wastetrail_contracts.events.transfer import TripReconciled, TripWeighed
from wastetrail_contracts.topics import event_topic, kafka_client_options
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.store import EventStore, ServiceMetadata

pytestmark = pytest.mark.integration


class CollectionSide:
    """The collection service's write path: event store + outbox relay, nothing faked."""

    def __init__(self, store: EventStore, relay: OutboxRelay) -> None:
        self.store = store
        self.relay = relay

    async def publish(self, stream_id: str, *events: Event) -> None:
        async with self.store.unit_of_work() as uow:
            await uow.record(stream_id, list(events), actor=SYSTEM_ACTOR)
            await uow.commit()
        assert await self.relay.publish_pending() == len(events)


@pytest.fixture
def collection_database(make_database: Callable[[str], str]) -> str:
    """The collection side's own PostgreSQL database (created outside the event loop)."""
    return make_database("collectionsrc")


@pytest.fixture
async def collection_side(collection_database: str, kafka_bootstrap: str
                          ) -> AsyncIterator[Callable[[str, FixedClock], Any]]:
    stack: list[tuple[Database, Any]] = []

    async def start(prefix: str, clock: FixedClock) -> CollectionSide:
        meta = ServiceMetadata()
        db = Database(collection_database)
        async with db.engine.begin() as conn:
            await conn.run_sync(meta.metadata.create_all)
        producer = make_producer(kafka_bootstrap)
        await producer.start()
        stack.append((db, producer))
        store = EventStore(db, meta, "collection", topic_prefix=prefix, clock=clock)
        return CollectionSide(store, OutboxRelay(store, producer))

    yield start
    for db, producer in stack:
        await producer.stop()
        await db.dispose()


async def poll(t: Any, trip_id: str, until: Callable[[dict[str, Any]], bool],
               seconds: float = 30) -> dict[str, Any]:
    """GET the trip's reconciliation until ``until`` holds (the consumers are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await t.client.get(f"/v1/trips/{trip_id}/reconciliation", headers=t.auth())
        if response.status_code == 200 and until(response.json()):
            return dict(response.json())
        assert asyncio.get_running_loop().time() < deadline, response.text
        await asyncio.sleep(0.1)


async def transfer_events(bootstrap: str, prefix: str, trip_id: str, wanted: int,
                          seconds: float = 30) -> list[Event]:
    """Read the transfer topic from the start until ``wanted`` events of the trip were seen."""
    consumer = AIOKafkaConsumer(event_topic("transfer", prefix), bootstrap_servers=bootstrap,
                                **kafka_client_options(),
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    found: list[Event] = []
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while len(found) < wanted:
            assert asyncio.get_running_loop().time() < deadline, found
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = decode(record.value)
                    if envelope.stream_id == trip_id and envelope.service == "transfer":
                        found.append(parse_payload(envelope))
    finally:
        await consumer.stop()
    return found


async def test_collection_events_from_kafka_reconcile_a_trip_weighed_before_they_arrive(
        transfer_factory: Any, collection_side: Any, ev: Any, kafka_bootstrap: str,
        topic_prefix: str) -> None:
    prefix = f"{topic_prefix}k{uuid.uuid4().hex[:6]}."  # own topics and consumer offsets
    clock = FixedClock(ev.started("x").started_at)
    async with transfer_factory(clock=clock, topic_prefix=prefix, run_consumers=True) as t:
        collection = await collection_side(prefix, clock)
        assert (await t.client.post("/v1/stations", headers=t.auth(), json={
            "station_id": "S1", "name": "Trạm 1", "commune": "PHUONG-1",
            "capacity_grams": 100_000_000, "categories": ["food", "other"]})).status_code == 201

        await collection.publish("VK", ev.vehicle("VK", tare=7_000_000))
        await collection.publish("K1", ev.started("K1", vehicle_id="VK"))
        started = await poll(t, "K1", lambda r: r["vehicle_id"] == "VK")
        assert started["status"] == "awaiting_weighing"

        # The truck is weighed before its loads and its close reach the station; it leaves
        # without weighing out, so its registered tare (from Kafka) is used.
        clock.advance(timedelta(hours=1))
        op = t.operator("S1")
        weigh_in = await t.client.post("/v1/stations/S1/weighings", headers=op, json={
            "trip_id": "K1", "vehicle_id": "VK", "gross_grams": 8_240_000})
        assert weigh_in.status_code == 201, weigh_in.text
        out = await t.client.post("/v1/stations/S1/weighings/K1/out", headers=op, json={})
        assert out.status_code == 200, out.text
        assert (out.json()["status"], out.json()["net_grams"]) == ("awaiting_scans", 1_240_000)

        await collection.publish("K1", ev.load("K1", "K1-L1", 700_000, vehicle_id="VK"),
                                 ev.load("K1", "K1-L2", 300_000, "other", vehicle_id="VK"),
                                 ev.closed("K1", 2, 1_000_000, vehicle_id="VK"))
        done = await poll(t, "K1", lambda r: r["status"] == "reconciled")
        # 1,240,000 − 1,000,000 = 240,000 g, over the 5 % (50,000 g) tolerance.
        assert (done["scanned_grams"], done["difference_grams"], done["tolerance_grams"],
                done["discrepancy"]) == (1_000_000, 240_000, 50_000, True)
        assert done["shares"] == {"food": 868_000, "other": 372_000}

        on_kafka = await transfer_events(kafka_bootstrap, prefix, "K1", wanted=3)
        weighed = next(e for e in on_kafka if isinstance(e, TripWeighed))
        reconciled = next(e for e in on_kafka if isinstance(e, TripReconciled))
        assert (weighed.net_grams, weighed.tare_source) == (1_240_000, "registered")
        assert (reconciled.difference_grams, reconciled.discrepancy) == (240_000, True)
        assert any(e.event_type == "custody.alert_raised" for e in on_kafka)

        # Every record was applied once, none dead-lettered.
        runner = next(r for r in t.rt.runners if r.consumer.name == "transfer.collection")
        assert (runner.applied, runner.dead_lettered) == (5, 0)


@pytest.fixture
def collection_app_database(make_database: Callable[[str], str]) -> str:
    """The real collection service's own database."""
    return make_database("collectionapp")


async def test_the_real_collection_service_feeds_the_station(
        transfer_factory: Any, collection_app_database: str, ev: Any, kafka_bootstrap: str,
        topic_prefix: str, tmp_path: Any) -> None:
    """The collection app (HTTP → its event store → its relay → Kafka) → transfer consumers."""
    import httpx
    from wastetrail_collection.app import create_app as create_collection
    from wastetrail_collection.settings import CollectionSettings
    from wastetrail_contracts.enums import Role
    from wastetrail_runtime.auth import issue_token

    prefix = f"{topic_prefix}c{uuid.uuid4().hex[:6]}."
    start = ev.started("x").started_at
    clock = FixedClock(start)
    collection_app = create_collection(CollectionSettings(
        database_url=collection_app_database, topic_prefix=prefix,
        kafka_bootstrap_servers=kafka_bootstrap, jwt_secret="test-secret",
        keys_dir=tmp_path / "ckeys", local_dir=tmp_path / "c"), clock=clock)
    admin = {"authorization": "Bearer " + issue_token("test-secret", "admin", Role.ADMIN)}
    device = {"authorization": "Bearer " + issue_token("test-secret", "crew-1", Role.COLLECTOR,
                                                        device_id="DEV-1")}
    async with transfer_factory(clock=clock, topic_prefix=prefix, run_consumers=True) as t, \
            collection_app.router.lifespan_context(collection_app), \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=collection_app),
                              base_url="http://collection") as c:
        for path, body in [
            ("/v1/collectors", {"collector_id": "HTX-1", "name": "HTX Môi trường"}),
            ("/v1/vehicles", {"vehicle_id": "VC", "plate": "29C-12345", "collector_id": "HTX-1",
                              "capacity_grams": 5_000_000, "registered_tare_grams": 4_000_000}),
            ("/v1/devices", {"device_id": "DEV-1", "collector_id": "HTX-1"}),
            ("/v1/generators", {"code": "HH-1", "name": "Hộ Nguyễn", "commune": "PHUONG-1",
                                "commune_class": "urban"}),
        ]:
            response = await c.post(path, json=body, headers=admin)
            assert response.status_code == 201, (path, response.text)
        trip = await c.post("/v1/trips", headers=device, json={
            "trip_id": "CT-1", "vehicle_id": "VC", "crew": ["crew-1"], "commune": "PHUONG-1"})
        assert trip.status_code == 201, trip.text
        for i, grams in enumerate((120_000, 80_000)):
            scan = await c.post("/v1/loads", headers=device, json={
                "idempotency_key": f"k{i}", "trip_id": "CT-1", "generator_code": "HH-1",
                "category": "food", "grams": grams, "collected_at": start.isoformat()})
            assert scan.status_code == 201, scan.text
        closed = await c.post("/v1/trips/CT-1/close", headers=device,
                              json={"declared_total_grams": 200_000})
        assert closed.status_code == 200, closed.text

        await t.client.post("/v1/stations", headers=t.auth(), json={
            "station_id": "S1", "name": "Trạm 1", "commune": "PHUONG-1",
            "capacity_grams": 100_000_000, "categories": ["food"]})
        await poll(t, "CT-1", lambda r: r["closed_load_count"] == 2 and
                   r["scanned_load_count"] == 2)
        op = t.operator("S1")
        await t.client.post("/v1/stations/S1/weighings", headers=op, json={
            "trip_id": "CT-1", "vehicle_id": "VC", "gross_grams": 4_205_000})
        out = await t.client.post("/v1/stations/S1/weighings/CT-1/out", headers=op, json={})
        body = out.json()
        assert (body["status"], body["tare_source"], body["net_grams"], body["scanned_grams"],
                body["difference_grams"], body["discrepancy"]) == (
            "reconciled", "registered", 205_000, 200_000, 5_000, False)
