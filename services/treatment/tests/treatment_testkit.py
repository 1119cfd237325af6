"""Helpers of the treatment tests: the running app with token helpers, upstream services'
event stores (published by the real outbox relay), and a Kafka topic reader."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from wastetrail_contracts import SYSTEM_ACTOR, Actor, Envelope, Event, decode, parse_payload
from wastetrail_contracts.enums import ActorKind, Category, Role
from wastetrail_contracts.events.transfer import Allocation, BatchConsolidated, BatchDispatched
from wastetrail_contracts.topics import event_topic, kafka_client_options
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import OutboxRelay
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import EventStore, ServiceMetadata

SECRET = "test-secret"
# 08:00 in Vietnam on 2 March 2026.
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def uid(prefix: str) -> str:
    """An id unique to this test (the topics are shared by the whole run)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0,
                     what: str = "condition") -> None:
    """Poll ``check`` every 50 ms until it holds; fail after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Treatment:
    """The running treatment app, its client, clock and token helpers."""

    app: FastAPI
    client: httpx.AsyncClient
    clock: FixedClock

    @property
    def rt(self) -> ServiceRuntime:
        rt: ServiceRuntime = self.app.state.runtime
        return rt

    def auth(self, role: Role, site: str | None = None, subject: str = "op-1") -> dict[str, str]:
        token = issue_token(SECRET, subject, role, site_id=site)
        return {"authorization": f"Bearer {token}"}

    def admin(self) -> dict[str, str]:
        return self.auth(Role.ADMIN, subject="admin-1")

    def operator(self, plant_id: str) -> dict[str, str]:
        return self.auth(Role.PLANT_OPERATOR, site=plant_id, subject=f"op-{plant_id}")

    def auditor(self) -> dict[str, str]:
        return self.auth(Role.AUDITOR, subject="auditor-1")

    async def register_plant(self, plant_id: str, *, methods: Sequence[str],
                             categories: Sequence[str] = ("food", "other"),
                             capacity: int = 100_000_000) -> dict[str, Any]:
        r = await self.client.post("/v1/plants", headers=self.admin(), json={
            "plant_id": plant_id, "name": f"Khu xử lý {plant_id}", "commune": "XA-01",
            "methods": list(methods), "categories": list(categories),
            "daily_capacity_grams": capacity,
        })
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait_kafka(self) -> None:
        """Until the relay and the consumers are connected."""
        async def ready() -> bool:
            return self.rt.kafka_ready
        await eventually(ready, 60, "the treatment app to connect to Kafka")


@dataclass
class Upstream:
    """Another service's event store on its own database, published by the real relay."""

    store: EventStore
    relay: OutboxRelay
    actor: Actor = SYSTEM_ACTOR

    async def emit(self, stream_id: str, *events: Event, actor: Actor | None = None) -> None:
        async with self.store.unit_of_work() as uow:
            await uow.record(stream_id, list(events), actor=actor or self.actor)
            await uow.commit()
        while await self.relay.publish_pending():
            pass


@dataclass
class UpstreamFactory:
    """Creates upstream services' stores; closes them at the end of the test."""

    make_database: Callable[[str], str]
    prefix: str
    producer: AIOKafkaProducer
    dbs: list[Database] = field(default_factory=list)

    async def __call__(self, service: str, actor: Actor) -> Upstream:
        meta = ServiceMetadata()
        # make_database runs its own event loop, so not on this one.
        db = Database(await asyncio.to_thread(self.make_database, service))
        self.dbs.append(db)
        async with db.engine.begin() as conn:
            await conn.run_sync(meta.metadata.create_all)
        store = EventStore(db, meta, service, topic_prefix=self.prefix)
        return Upstream(store, OutboxRelay(store, self.producer), actor)


def operator_actor(subject: str, role: Role) -> Actor:
    """The actor of an operator's event."""
    return Actor(kind=ActorKind.OPERATOR, id=subject, role=role)


async def read_topic(kafka_bootstrap: str, topic: str,
                     done: Callable[[list[tuple[Envelope, Event]]], bool],
                     seconds: float = 20.0) -> list[tuple[Envelope, Event]]:
    """Every event of a topic from the beginning, read until ``done`` holds (or fail)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, **kafka_client_options(),
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: list[tuple[Envelope, Event]] = []
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while not done(seen):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"events on {topic} never satisfied the test: "
                                     f"{[e.type for e, _ in seen][-20:]}")
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    envelope = decode(record.value)
                    seen.append((envelope, parse_payload(envelope)))
    finally:
        await consumer.stop()
    return seen


def treatment_topic(prefix: str) -> str:
    """The treatment service's event topic in this test run."""
    return event_topic("treatment", prefix)


async def seed(t: Treatment, *events: Event, actor: str = "station-op",
               at: datetime = T0) -> None:
    """Put upstream facts into the read models through the consumers' own projection code
    (for HTTP tests; the Kafka path itself is covered by the integration tests)."""
    from wastetrail_treatment import projections

    async with t.rt.store.unit_of_work() as uow:
        for event in events:
            await projections.apply(uow.session, event, actor=actor, at=at)
        await uow.commit()


def batch_events(batch_id: str, plant_id: str, allocations: Sequence[tuple[str, int]], *,
                 dispatched_grams: int | None = None, category: Category = Category.FOOD,
                 station_id: str = "ST-1") -> tuple[BatchConsolidated, BatchDispatched]:
    """A batch consolidated from trip shares and dispatched to a plant."""
    total = sum(g for _, g in allocations)
    return (
        BatchConsolidated(batch_id=batch_id, station_id=station_id, category=category,
                          allocations=tuple(Allocation(trip_id=t, grams=g)
                                            for t, g in allocations),
                          total_grams=total, seal_number=f"SEAL-{batch_id}"),
        BatchDispatched(batch_id=batch_id, station_id=station_id, category=category,
                        seal_number=f"SEAL-{batch_id}",
                        dispatched_grams=dispatched_grams or total, plant_id=plant_id,
                        vehicle_id="TRUCK-9", dispatched_at=T0),
    )
