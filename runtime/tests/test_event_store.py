"""Event store: optimistic concurrency, hash chains, outbox rows in the same transaction."""

from __future__ import annotations

import asyncio

import pytest
import toy
from sqlalchemy import func, select
from wastetrail_contracts import SYSTEM_ACTOR, decode
from wastetrail_contracts.codec import envelope_hash
from wastetrail_contracts.envelope import GENESIS_HASH
from wastetrail_runtime.store import ConcurrencyConflict, EventStore

pytestmark = pytest.mark.integration


async def test_concurrent_appends_to_one_stream_one_wins(store: EventStore) -> None:
    async def append(name: str) -> str:
        async with store.unit_of_work() as uow:
            await uow.record("g-race", [toy.generator("g-race", name)], actor=SYSTEM_ACTOR,
                             expected_version=0)
            await asyncio.sleep(0.05)  # both have read version 0 before either commits
            await uow.commit()
        return name

    results = await asyncio.gather(append("A"), append("B"), return_exceptions=True)
    winners = [r for r in results if isinstance(r, str)]
    conflicts = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(winners) == 1 and len(conflicts) == 1
    stream = await store.stream("g-race")
    assert [e.stream_version for e in stream] == [1]
    assert stream[0].payload["name"] == winners[0]


async def test_stale_expected_version_is_rejected(store: EventStore) -> None:
    async with store.unit_of_work() as uow:
        await uow.record("g-1", [toy.generator("g-1")], actor=SYSTEM_ACTOR, expected_version=0)
        await uow.commit()
    async with store.unit_of_work() as uow:
        await uow.record("g-1", [toy.generator("g-1")], actor=SYSTEM_ACTOR,
                         expected_version=0)
        with pytest.raises(ConcurrencyConflict):
            await uow.commit()  # a new-stream claim is checked by the unique key here
    async with store.unit_of_work() as uow:
        with pytest.raises(ConcurrencyConflict) as err:
            await uow.record("g-1", [toy.generator("g-1")], actor=SYSTEM_ACTOR,
                             expected_version=2)
    assert err.value.actual == 1
    assert [e.stream_version for e in await store.stream("g-1")] == [1]


async def test_events_form_a_hash_chain_and_reach_the_outbox(store: EventStore) -> None:
    async with store.unit_of_work() as uow:
        for i in range(20):
            await uow.record(f"g-{i}", [toy.generator(f"g-{i}")], actor=SYSTEM_ACTOR)
        envelopes = await uow.commit()
    assert len(envelopes) == 20
    t = store.tables
    async with store.db.session() as session:
        rows = (await session.execute(
            select(t.outbox.c.chain_id, t.outbox.c.chain_seq, t.outbox.c.value,
                   t.outbox.c.partition).order_by(t.outbox.c.chain_id, t.outbox.c.chain_seq)
        )).all()
    assert len(rows) == 20
    last: dict[str, str] = {}
    for row in rows:
        envelope = decode(row.value)
        assert envelope.chain_id == row.chain_id
        assert envelope.prev_hash == last.get(row.chain_id, GENESIS_HASH)
        assert envelope.hash == envelope_hash(envelope.model_dump(mode="json"))
        last[row.chain_id] = envelope.hash
    assert len(last) > 1  # 20 streams spread over several partitions


async def test_rolled_back_unit_of_work_leaves_nothing(store: EventStore) -> None:
    async with store.unit_of_work() as uow:
        await uow.record("g-rb", [toy.generator("g-rb")], actor=SYSTEM_ACTOR)
        # no commit: the context manager rolls back
    async with store.db.session() as session:
        count = (await session.execute(
            select(func.count()).select_from(store.tables.outbox))).scalar()
    assert count == 0
    assert await store.stream("g-rb") == []
