"""Benchmarks against bare baselines measured in the same run (``make bench``).

Each result is written to ``bench/results/<name>.json`` as
``{name, value, unit, target, baseline, ratio, met}`` — medians of several runs.
Implemented so far: event-store append (runtime UnitOfWork with hash chains and outbox)
against bare asyncpg inserts of the same bytes, and outbox relay publishing against a bare
aiokafka producer. The ingest, audit replay, month-end invoicing and memory benchmarks of
the benchmark issue are not implemented yet.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData

from wastetrail.devstack.infra import KAFKA_BOOTSTRAP, PG_ADMIN_URL
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.enums import Category
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.store import EventStore, ServiceMetadata
from wastetrail_runtime.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"
RUNS = 3
EVENTS = 5_000
BATCH = 200


def _load(i: int) -> LoadCollected:
    from datetime import UTC, datetime

    return LoadCollected(
        load_id=f"load-{i}", trip_id="trip-1", generator_id=f"hh-{i % 500}", commune="P01",
        category=Category.FOOD, measure="scale", grams=1200 + i % 300,
        collected_at=datetime(2026, 10, 1, 7, 0, tzinfo=UTC), device_id="dev-1",
        vehicle_id="veh-1", idempotency_key=f"k-{i}",
    )


async def _fresh_db(admin: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"{admin.rsplit('/', 1)[0]}/{name}"


async def bench_append(prefix: str) -> tuple[float, float]:
    url = await _fresh_db(PG_ADMIN_URL)
    meta = ServiceMetadata()
    db = Database(url.replace("postgresql://", "postgresql+asyncpg://"))
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.metadata.create_all)
    store = EventStore(db, meta, "collection", topic_prefix=prefix)
    events = [_load(i) for i in range(EVENTS)]
    started = time.perf_counter()
    for start in range(0, EVENTS, BATCH):
        async with store.unit_of_work() as uow:
            for event in events[start:start + BATCH]:
                await uow.record(event.load_id, [event], actor=SYSTEM_ACTOR, expected_version=0)
            await uow.commit()
    ours = EVENTS / (time.perf_counter() - started)
    await db.dispose()

    # Baseline: the same rows' bytes inserted with bare asyncpg, same batch size, no chain.
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE bare (id bigserial primary key, stream_id text, "
                       "version int, body bytea, UNIQUE(stream_id, version))")
    rows = [(e.load_id, 1, e.model_dump_json().encode()) for e in events]
    started = time.perf_counter()
    for start in range(0, EVENTS, BATCH):
        async with conn.transaction():
            await conn.executemany("INSERT INTO bare (stream_id, version, body) VALUES ($1,$2,$3)",
                                   rows[start:start + BATCH])
    bare = EVENTS / (time.perf_counter() - started)
    await conn.close()
    return ours, bare


async def bench_relay(prefix: str) -> tuple[float, float]:
    url = await _fresh_db(PG_ADMIN_URL)
    meta = ServiceMetadata()
    db = Database(url.replace("postgresql://", "postgresql+asyncpg://"))
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.metadata.create_all)
    store = EventStore(db, meta, "collection", topic_prefix=prefix)
    await ensure_topics(KAFKA_BOOTSTRAP, prefix=prefix)
    for start in range(0, EVENTS, BATCH):
        async with store.unit_of_work() as uow:
            for i in range(start, start + BATCH):
                event = _load(i)
                await uow.record(event.load_id, [event], actor=SYSTEM_ACTOR)
            await uow.commit()
    producer = make_producer(KAFKA_BOOTSTRAP)
    await producer.start()
    relay = OutboxRelay(store, producer, batch_size=500)
    started = time.perf_counter()
    while await relay.publish_pending():
        pass
    ours = EVENTS / (time.perf_counter() - started)
    values = [b"x" * 700] * EVENTS
    started = time.perf_counter()
    futures = [await producer.send(store.topic + ".bare", v) for v in values]
    await asyncio.gather(*futures)
    bare = EVENTS / (time.perf_counter() - started)
    await producer.stop()
    await db.dispose()
    return ours, bare


def _write(name: str, value: float, unit: str, target: float | None, baseline: float) -> dict:
    ratio = value / baseline if baseline else 0.0
    result = {"name": name, "value": round(value, 1), "unit": unit, "target": target,
              "baseline": round(baseline, 1), "ratio": round(ratio, 3),
              "met": None if target is None else value >= target}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    return result


async def main() -> int:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    results = []
    for name, fn in (("event_store_append", bench_append), ("outbox_relay_publish", bench_relay)):
        runs = [await fn(f"{prefix}{name}{i}.") for i in range(RUNS)]
        ours = statistics.median(r[0] for r in runs)
        bare = statistics.median(r[1] for r in runs)
        results.append(_write(name, ours, "events/s", None, bare))
    print(f"{'name':<24}{'value':>12}{'baseline':>12}{'ratio':>8}  unit")
    for r in results:
        print(f"{r['name']:<24}{r['value']:>12}{r['baseline']:>12}{r['ratio']:>8}  {r['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
