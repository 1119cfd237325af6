"""The outbox relay: chains published concurrently in order, published rows purged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import toy
from sqlalchemy import func, select
from test_consumer import _read_all
from wastetrail_contracts import SYSTEM_ACTOR, decode
from wastetrail_contracts.topics import event_topic
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.store import EventStore
from wastetrail_runtime.topics import ensure_topics

pytestmark = pytest.mark.integration


async def _outbox_rows(store: EventStore) -> int:
    t = store.tables.outbox
    async with store.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(t))).scalar() or 0)


async def test_chains_go_out_concurrently_each_in_order_and_old_rows_are_purged(
    store: EventStore, kafka_bootstrap: str, topic_prefix: str
) -> None:
    prefix = topic_prefix + "purge."
    store.topic = event_topic("collection", prefix)
    await ensure_topics(kafka_bootstrap, prefix=prefix)
    async with store.unit_of_work() as uow:
        for n in range(60):  # 60 streams: every partition's chain gets some
            await uow.record(f"g-purge-{n}", [toy.generator(f"g-purge-{n}")],
                             actor=SYSTEM_ACTOR)
        await uow.commit()
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(store, producer, batch_size=7, concurrency=4)
        while await relay.publish_pending():
            pass
    finally:
        await producer.stop()
    assert await relay.pending() == 0
    records = await _read_all(kafka_bootstrap, store.topic, 4)
    assert len(records) == 60
    seqs: dict[str, list[int]] = {}
    for value, _headers in records:  # read partition by partition, in offset order
        envelope = decode(value)
        seqs.setdefault(envelope.chain_id, []).append(envelope.chain_seq)
    assert len(seqs) == 4
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())

    # Rows published less than keep_published ago stay; older ones go; pending ones never.
    assert await relay.purge_published() == 0
    async with store.unit_of_work() as uow:
        await uow.record("g-purge-late", [toy.generator("g-purge-late")], actor=SYSTEM_ACTOR)
        await uow.commit()
    later = datetime.now(UTC) + relay.keep_published + timedelta(seconds=1)
    assert await relay.purge_published(now=later) == 60
    assert await _outbox_rows(store) == 1 and await relay.pending() == 1
