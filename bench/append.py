"""Event store append and outbox relay, each beside a peer measured in the same run.

* ``event_store_append``: the runtime's UnitOfWork (hash chain, outbox row, one transaction
  per batch) vs the ``eventsourcing`` library's PostgreSQL application recorder storing the
  same events (same JSON payload bytes, same count, same batch size, one transaction per
  batch), each on its own fresh database.
* ``outbox_relay_publish``: the relay draining the outbox to Kafka vs a bare aiokafka
  producer sending the same number of records of the same size.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.enums import Category
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.store import EventStore, ServiceMetadata
from wastetrail_runtime.topics import ensure_topics

from bench.common import (
    Result,
    delete_topics,
    drop_database,
    fresh_database,
    median,
    result,
    sqlalchemy_url,
)


def _load(i: int) -> LoadCollected:
    return LoadCollected(
        load_id=f"load-{i}", trip_id="trip-1", generator_id=f"hh-{i % 500}", commune="P01",
        category=Category.FOOD, measure="scale", grams=1200 + i % 300,
        collected_at=datetime(2026, 10, 1, 7, 0, tzinfo=UTC), device_id="dev-1",
        vehicle_id="veh-1", idempotency_key=f"k-{i}",
    )


async def _store(url: str, prefix: str) -> tuple[Database, EventStore]:
    meta = ServiceMetadata()
    db = Database(sqlalchemy_url(url))
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.metadata.create_all)
    return db, EventStore(db, meta, "collection", topic_prefix=prefix)


async def ours_append(url: str, prefix: str, events: int, batch: int) -> float:
    """Events/s appended through UnitOfWork, ``batch`` new streams per transaction."""
    db, store = await _store(url, prefix)
    loads = [_load(i) for i in range(events)]
    started = time.perf_counter()
    for start in range(0, events, batch):
        async with store.unit_of_work() as uow:
            for event in loads[start:start + batch]:
                await uow.record(event.load_id, [event], actor=SYSTEM_ACTOR, expected_version=0)
            await uow.commit()
    rate = events / (time.perf_counter() - started)
    await db.dispose()
    return rate


def eventsourcing_append(url: str, events: int, batch: int) -> float:
    """Events/s stored by eventsourcing's PostgresApplicationRecorder (psycopg 3)."""
    parts = urlsplit(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"), host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432, user=parts.username or "", password=parts.password or "",
        originator_id_type="text",
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    loads = [_load(i) for i in range(events)]
    topic = f"{LoadCollected.__module__}:{LoadCollected.__qualname__}"
    started = time.perf_counter()
    for start in range(0, events, batch):
        # Serialising is part of storing an event in both systems.
        stored = [StoredEvent(originator_id=e.load_id, originator_version=1, topic=topic,
                              state=e.model_dump_json().encode())
                  for e in loads[start:start + batch]]
        recorder.insert_events(stored)
    rate = events / (time.perf_counter() - started)
    datastore.close()
    return rate


async def ours_relay(url: str, bootstrap: str, prefix: str, events: int, batch: int
                     ) -> tuple[float, float]:
    """(relay events/s, bare aiokafka producer events/s) for the same number of records."""
    db, store = await _store(url, prefix)
    await ensure_topics(bootstrap, prefix=prefix)
    # The bare producer's topic too: a SASL broker creates no topic on first use.
    await ensure_topics(bootstrap, [(store.topic + ".bare", 4, -1)])
    for start in range(0, events, batch):
        async with store.unit_of_work() as uow:
            for i in range(start, min(start + batch, events)):
                event = _load(i)
                await uow.record(event.load_id, [event], actor=SYSTEM_ACTOR)
            await uow.commit()
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(store, producer, batch_size=500)
        started = time.perf_counter()
        while await relay.publish_pending():
            pass
        ours = events / (time.perf_counter() - started)
        values = [b"x" * 950] * events  # an envelope of a LoadCollected is ~950 bytes
        started = time.perf_counter()
        futures = [await producer.send(store.topic + ".bare", v) for v in values]
        await asyncio.gather(*futures)
        bare = events / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await db.dispose()
    return ours, bare


async def run(admin_url: str, bootstrap: str, *, events: int, batch: int, runs: int,
              results_dir: Path | None = None, log: bool = True) -> list[Result]:
    """Both benchmarks, ``runs`` times each; medians."""
    tag = uuid.uuid4().hex[:6]
    ours: list[float] = []
    peer: list[float] = []
    relay: list[float] = []
    bare: list[float] = []
    for i in range(runs):
        url = await fresh_database(admin_url, "append")
        peer_url = await fresh_database(admin_url, "es")
        try:
            ours.append(await ours_append(url, f"bench{tag}.a{i}.", events, batch))
            peer.append(await asyncio.to_thread(eventsourcing_append, peer_url, events, batch))
        finally:
            await drop_database(admin_url, url)
            await drop_database(admin_url, peer_url)
        if log:
            print(f"  append: ours {ours[-1]:,.0f} ev/s, eventsourcing {peer[-1]:,.0f} ev/s")
        url = await fresh_database(admin_url, "relay")
        try:
            r, b = await ours_relay(url, bootstrap, f"bench{tag}.r{i}.", events, batch)
        finally:
            await drop_database(admin_url, url)
            await delete_topics(bootstrap, f"bench{tag}.r{i}.")
        relay.append(r)
        bare.append(b)
        if log:
            print(f"  relay: ours {r:,.0f} ev/s, bare aiokafka {b:,.0f} ev/s")
    return [
        result("event_store_append", median(ours), "events/s", target=median(peer),
               baseline=median(peer), results_dir=results_dir),
        result("outbox_relay_publish", median(relay), "events/s", target=None,
               baseline=median(bare), results_dir=results_dir),
    ]
