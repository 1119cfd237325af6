"""Fixtures of the treatment tests: the real app on PostgreSQL + Kafka, and upstream
services' event stores on their own PostgreSQL databases."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from treatment_testkit import SECRET, T0, Treatment, UpstreamFactory
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.relay import make_producer
from wastetrail_treatment.app import create_app
from wastetrail_treatment.settings import TreatmentSettings


@asynccontextmanager
async def _running(database_url: str, topic_prefix: str, kafka_bootstrap: str, tmp_path: Path,
                   *, consumers: bool) -> AsyncIterator[Treatment]:
    clock = FixedClock(T0)
    settings = TreatmentSettings(
        database_url=database_url, topic_prefix=topic_prefix,
        kafka_bootstrap_servers=kafka_bootstrap, jwt_secret=SECRET,
        keys_dir=tmp_path / "keys", local_dir=tmp_path, consumer_backoff_seconds=0.01,
        run_consumers=consumers, alarm_sweep_seconds=3600.0,  # tests sweep by hand
    )
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            running = Treatment(app, client, clock)
            # Stopping the app while its consumers are still joining their groups stalls the
            # shutdown for many seconds; being connected first keeps every test short.
            await running.wait_kafka()
            yield running


@pytest.fixture
async def treatment(database_url: str, topic_prefix: str, kafka_bootstrap: str,
                    tmp_path: Path) -> AsyncIterator[Treatment]:
    """The app with its outbox relay but without consumers (read models are seeded)."""
    async with _running(database_url, topic_prefix, kafka_bootstrap, tmp_path,
                        consumers=False) as running:
        yield running


@pytest.fixture
async def consuming(database_url: str, topic_prefix: str, kafka_bootstrap: str,
                    tmp_path: Path) -> AsyncIterator[Treatment]:
    """The whole app: relay and the consumers of the transfer and collection topics."""
    async with _running(database_url, topic_prefix, kafka_bootstrap, tmp_path,
                        consumers=True) as running:
        yield running


@pytest.fixture
async def upstream(make_database: Callable[[str], str], topic_prefix: str,
                   kafka_bootstrap: str) -> AsyncIterator[UpstreamFactory]:
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    factory = UpstreamFactory(make_database, topic_prefix, producer)
    yield factory
    await producer.stop()
    for db in factory.dbs:
        await db.dispose()


