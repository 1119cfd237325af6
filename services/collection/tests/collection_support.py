"""Helpers of the collection tests: tokens, the running service, Kafka reads, seed data."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI
from wastetrail_collection.app import create_app
from wastetrail_collection.settings import CollectionSettings
from wastetrail_contracts import Envelope, Event, decode, parse_payload
from wastetrail_contracts.enums import Role
from wastetrail_contracts.topics import EVENT_TOPICS, event_topic, kafka_client_options
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.service import ServiceRuntime

SECRET = "test-secret-of-the-collection-service-tests"
# 08:00 in Hà Nội; trips start an hour earlier.
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def token(role: Role, subject: str = "someone", **claims: str) -> dict[str, str]:
    """An Authorization header for a role."""
    return {"Authorization": f"Bearer {issue_token(SECRET, subject, role, **claims)}"}


ADMIN = token(Role.ADMIN, "admin-1")
AUDITOR = token(Role.AUDITOR, "so-nnmt")
HOUSEHOLD = token(Role.HOUSEHOLD, "hh-1", account_id="acc-1")


def device_token(device_id: str = "dev-1") -> dict[str, str]:
    """A collector token of a registered device."""
    return token(Role.COLLECTOR, f"crew-{device_id}", device_id=device_id)


@dataclass
class Service:
    """A running collection app and what a test needs to drive it."""

    app: FastAPI
    client: httpx.AsyncClient
    clock: FixedClock
    settings: CollectionSettings
    topic: str

    @property
    def rt(self) -> ServiceRuntime:
        """The runtime behind the app."""
        runtime: ServiceRuntime = self.app.state.runtime
        return runtime


async def ensure_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create the topic with the catalog's partition count (auto-creation might not)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            try:
                await admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def running_service(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
    **overrides: Any,
) -> AsyncIterator[Service]:
    """The app (migrations, relay) on a database, with a topic of its own under the run's
    prefix, so a test reads only its own events."""
    prefix = f"{topic_prefix}{uuid.uuid4().hex[:8]}."
    settings = CollectionSettings(
        service="collection", database_url=database_url, topic_prefix=prefix,
        kafka_bootstrap_servers=kafka_bootstrap, jwt_secret=SECRET,
        keys_dir=tmp_path / "keys", local_dir=tmp_path, **overrides)
    topic = event_topic("collection", prefix)
    await ensure_topic(kafka_bootstrap, topic, EVENT_TOPICS["collection"].partitions)
    clock = FixedClock(NOW)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Service(app, client, clock, settings, topic)


async def published(service: Service, within: float = 20.0) -> None:
    """Wait until the relay has published every committed outbox row."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        relay = service.rt.relay
        if relay is not None and await relay.pending() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox was not drained in time")


async def _behind(consumer: AIOKafkaConsumer, ends: dict[Any, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, Envelope, Event]]:
    """Every record now on the topic as (partition, offset, envelope, payload).

    Each record is decoded and its payload validated against the contracts; a record that
    does not decode fails the test. Call after ``published`` to see everything.
    """
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **kafka_client_options(),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[int, int, Envelope, Event]] = []
    try:
        partitions = consumer.assignment()
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        while time.monotonic() < deadline and await _behind(consumer, ends):
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    assert record.value is not None
                    envelope = decode(record.value)
                    assert record.key == envelope.stream_id.encode()
                    found.append((tp.partition, record.offset, envelope,
                                  parse_payload(envelope)))
    finally:
        await consumer.stop()
    return found


# ---- seed data through the admin API ----

async def seed(client: httpx.AsyncClient, *, generators: int = 3, capacity: int = 2_000_000,
               vehicles: tuple[str, ...] = ("veh-1",)) -> None:
    """A collector, vehicles, devices dev-1.. bound to them, and households with tags QR-i."""
    r = await client.post("/v1/collectors", headers=ADMIN,
                          json={"collector_id": "col-1", "name": "Công ty Môi trường Đô thị",
                                "communes": ["phuong-hang-bac"]})
    assert r.status_code == 201, r.text
    for n, vehicle in enumerate(vehicles, start=1):
        r = await client.post("/v1/vehicles", headers=ADMIN, json={
            "vehicle_id": vehicle, "plate": f"29C-{n:05d}", "collector_id": "col-1",
            "capacity_grams": capacity, "registered_tare_grams": 3_500_000})
        assert r.status_code == 201, r.text
        r = await client.post("/v1/devices", headers=ADMIN, json={
            "device_id": f"dev-{n}", "collector_id": "col-1", "vehicle_id": vehicle})
        assert r.status_code == 201, r.text
    for i in range(1, generators + 1):
        r = await client.post("/v1/generators", headers=ADMIN, json={
            "code": f"HN-{i:04d}", "name": f"Hộ Nguyễn Văn {i}", "commune": "phuong-hang-bac",
            "commune_class": "urban", "address": f"Số {i} Hàng Bạc", "tag_ids": [f"QR-{i}"]})
        assert r.status_code == 201, r.text


async def start_trip(client: httpx.AsyncClient, trip_id: str = "trip-1",
                     vehicle_id: str = "veh-1", device_id: str = "dev-1",
                     started_at: str = "2026-03-02T00:00:00Z") -> dict[str, Any]:
    """Start a trip from a device."""
    r = await client.post("/v1/trips", headers=device_token(device_id), json={
        "trip_id": trip_id, "vehicle_id": vehicle_id, "crew": ["Nguyễn Văn Tài"],
        "commune": "phuong-hang-bac", "route": "Tuyến 1", "started_at": started_at})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def scan(key: str, tag: str = "QR-1", grams: int = 4_000, trip_id: str = "trip-1",
         at: str = "2026-03-02T00:30:00Z", **extra: Any) -> dict[str, Any]:
    """A scan body."""
    return {"idempotency_key": key, "trip_id": trip_id, "tag_id": tag, "category": "food",
            "measure": "scale", "grams": grams, "collected_at": at, "latitude": 21.034,
            "longitude": 105.852, **extra}
