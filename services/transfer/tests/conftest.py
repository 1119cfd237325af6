"""Fixtures of the transfer service's tests: a running app on real PostgreSQL and Kafka,
and a way to hand it other services' events through the real consumer path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from wastetrail_contracts import SYSTEM_ACTOR, Envelope, Event, encode, uuid7
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.enums import Role
from wastetrail_contracts.topics import event_topic
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.consumer import ConsumerRunner, Record
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_transfer.app import create_app
from wastetrail_transfer.entrypoints.consumers import make_consumers
from wastetrail_transfer.settings import TransferSettings

SECRET = "test-secret"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
_STREAM_FIELDS = ("trip_id", "batch_id", "receipt_id", "load_id", "vehicle_id", "plant_id")


@dataclass
class Transfer:
    """A running transfer app, its HTTP client, its runtime and its clock."""

    client: httpx.AsyncClient
    rt: ServiceRuntime
    clock: FixedClock
    prefix: str
    runners: dict[str, ConsumerRunner] = field(default_factory=dict)
    writers: dict[str, ChainWriter] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def auth(self, role: Role = Role.ADMIN, site_id: str | None = None) -> dict[str, str]:
        """Headers with a bearer token for a role (and a station for operators)."""
        token = issue_token(SECRET, f"{role.value}-1", role, site_id=site_id)
        return {"authorization": f"Bearer {token}"}

    def operator(self, station_id: str) -> dict[str, str]:
        """Headers of the operator of one station."""
        return self.auth(Role.STATION_OPERATOR, site_id=station_id)

    async def feed(self, *events: Event, source: str | None = None,
                   batch: bool = False) -> list[Envelope]:
        """Hand events of another service to the app's consumers, as Kafka would.

        The envelopes are real hash-chained envelopes, applied by the runtime's
        ConsumerRunner (decode, idempotency row, handler, commit) — only the broker hop
        is skipped, to keep these tests fast and ordered. ``batch``: all of them in one
        consumer batch per runner (one transaction, batch handlers), as a busy
        partition delivers them.
        """
        sent = []
        batches: dict[str, list[Record]] = {}
        for event in events:
            origin = source or ("collection" if event.event_type.startswith("collection.")
                                else "treatment")
            runner = self.runners["transfer.collection" if origin == "collection"
                                  else "transfer.treatment"]
            topic = event_topic(origin, self.prefix)
            writer = self.writers.setdefault(origin, ChainWriter(origin, topic, 0))
            stream_id = next(str(getattr(event, f)) for f in _STREAM_FIELDS
                             if getattr(event, f, None) is not None)
            self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
            now = self.clock.now()
            envelope = writer.append(event, stream_id=stream_id,
                                     stream_version=self.versions[stream_id],
                                     actor=SYSTEM_ACTOR, occurred_at=now, recorded_at=now,
                                     correlation_id=uuid7())
            record = Record(topic=topic, partition=0, offset=envelope.chain_seq - 1,
                            key=stream_id.encode(), value=encode(envelope))
            if batch:
                batches.setdefault(runner.consumer.name, []).append(record)
            else:
                await runner.process(record)
            sent.append(envelope)
        for name, records in batches.items():
            await self.runners[name].process_batch(records)
        return sent

    async def stream(self, stream_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(type, payload) of every event the transfer service stored on one stream."""
        return [(e.type, dict(e.payload)) for e in await self.rt.store.stream(stream_id)]

    async def events_of_type(self, stream_id: str, event_type: str) -> list[dict[str, Any]]:
        """Payloads of one type on one stream."""
        return [p for t, p in await self.stream(stream_id) if t == event_type]


def transfer_settings(database_url: str, kafka_bootstrap: str, prefix: str, tmp_path: Path,
                      **overrides: Any) -> TransferSettings:
    """Settings for a test app: 5 % tolerance, short alarm delays, no background sweeps."""
    values: dict[str, Any] = {
        "service": "transfer", "database_url": database_url, "topic_prefix": prefix,
        "kafka_bootstrap_servers": kafka_bootstrap, "jwt_secret": SECRET,
        "keys_dir": tmp_path / "keys", "local_dir": tmp_path,
        "reconcile_tolerance_grams": None, "reconcile_tolerance_percent": Decimal("5"),
        "trip_not_weighed_minutes": 60, "trip_unclosed_not_weighed_minutes": 600,
        "batch_not_received_minutes": 120, "station_hold_hours": 72,
        "alarm_sweep_seconds": 3600.0,
        "run_consumers": False, "consumer_max_attempts": 1,
    }
    values.update(overrides)
    return TransferSettings(**values)


@contextlib.asynccontextmanager
async def running_transfer(settings: TransferSettings, clock: FixedClock
                           ) -> AsyncIterator[Transfer]:
    """Start the app (migrations, relay, consumers as configured) and wait for Kafka."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        rt: ServiceRuntime = app.state.runtime
        deadline = asyncio.get_running_loop().time() + 60
        while not rt.kafka_ready:
            assert asyncio.get_running_loop().time() < deadline, "Kafka did not get ready"
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            harness = Transfer(client=client, rt=rt, clock=clock, prefix=settings.topic_prefix)
            for consumer in make_consumers(rt):
                runner = ConsumerRunner(consumer, rt.store, rt.producer,  # type: ignore[arg-type]
                                        topic_prefix=settings.topic_prefix, max_attempts=1)

                async def fail(record: Record, reason: str, **_: Any) -> None:
                    raise AssertionError(f"handler failed on {record.topic}: {reason}")

                runner.dead_letter = fail  # type: ignore[method-assign]
                harness.runners[consumer.name] = runner
            yield harness


@pytest.fixture
def transfer_factory(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Transfer]]:
    """Start a transfer app with setting overrides: ``async with transfer_factory(...) as t``."""

    def factory(clock: FixedClock | None = None, **overrides: Any
                ) -> contextlib.AbstractAsyncContextManager[Transfer]:
        prefix = overrides.pop("topic_prefix", topic_prefix)
        settings = transfer_settings(database_url, kafka_bootstrap, prefix, tmp_path,
                                     **overrides)
        return running_transfer(settings, clock or FixedClock(T0))

    return factory


@pytest.fixture
async def transfer(transfer_factory: Callable[..., Any]) -> AsyncIterator[Transfer]:
    """A running transfer app (no Kafka consumers: events are fed through `feed`)."""
    async with transfer_factory() as harness:
        yield harness


class Events:
    """Builders of other services' events with sensible defaults."""

    @staticmethod
    def vehicle(vehicle_id: str = "V1", tare: int = 8_000_000) -> Event:
        from wastetrail_contracts.events.collection import VehicleRegistered

        return VehicleRegistered(vehicle_id=vehicle_id, plate=f"29C-{vehicle_id}",
                                 collector_id="C1", capacity_grams=10_000_000,
                                 registered_tare_grams=tare)

    @staticmethod
    def started(trip_id: str, vehicle_id: str = "V1", at: datetime = T0) -> Event:
        from wastetrail_contracts.events.collection import TripStarted

        return TripStarted(trip_id=trip_id, vehicle_id=vehicle_id, collector_id="C1",
                           crew=("crew-1",), commune="PHUONG-1", started_at=at)

    @staticmethod
    def load(trip_id: str, load_id: str, grams: int, category: str = "food",
             vehicle_id: str = "V1", at: datetime = T0) -> Event:
        from wastetrail_contracts.events.collection import LoadCollected

        return LoadCollected(load_id=load_id, trip_id=trip_id, generator_id="G1",
                             commune="PHUONG-1", category=category, measure="scale",  # type: ignore[arg-type]
                             grams=grams, collected_at=at, device_id="D1",
                             vehicle_id=vehicle_id, idempotency_key=load_id)

    @staticmethod
    def closed(trip_id: str, count: int, total: int, vehicle_id: str = "V1",
               at: datetime = T0) -> Event:
        from wastetrail_contracts.events.collection import TripClosed

        return TripClosed(trip_id=trip_id, vehicle_id=vehicle_id, declared_total_grams=total,
                          scanned_total_grams=total, load_count=count, closed_at=at)

    @staticmethod
    def plant(plant_id: str, *categories: str) -> Event:
        from wastetrail_contracts.events.treatment import PlantRegistered

        return PlantRegistered(plant_id=plant_id, name=plant_id, commune="XA-2",
                               methods=("composting",), categories=categories,  # type: ignore[arg-type]
                               daily_capacity_grams=500_000_000)

    @staticmethod
    def received(receipt_id: str, plant_id: str, grams: int, *, batch_id: str | None = None,
                 trip_id: str | None = None, refused: int = 0, category: str = "food",
                 at: datetime = T0) -> Event:
        from wastetrail_contracts.events.treatment import BatchReceived

        status = ("ACCEPTED" if refused == 0 else "REFUSED" if refused == grams
                  else "PARTIALLY_REFUSED")
        return BatchReceived(receipt_id=receipt_id, plant_id=plant_id, batch_id=batch_id,
                             trip_id=trip_id, category=category, declared_grams=grams,  # type: ignore[arg-type]
                             received_grams=grams, accepted_grams=grams - refused,
                             refused_grams=refused, status=status,  # type: ignore[arg-type]
                             refusal_reason="contaminated" if refused else "", received_at=at)

    @staticmethod
    def redirected(receipt_id: str, plant_id: str, station_id: str, grams: int, *,
                   batch_id: str | None = None, trip_id: str | None = None,
                   at: datetime = T0) -> Event:
        from wastetrail_contracts.events.treatment import RefusedWasteRedirected

        return RefusedWasteRedirected(receipt_id=receipt_id, plant_id=plant_id,
                                      batch_id=batch_id, trip_id=trip_id, grams=grams,
                                      destination_kind="station", destination_id=station_id,
                                      redirected_at=at)


@pytest.fixture
def ev() -> type[Events]:
    """Event builders."""
    return Events
