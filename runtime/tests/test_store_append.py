"""The append path: wire bytes, lazy envelopes, cached chain heads, the SQLite path."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import toy
from sqlalchemy import select
from wastetrail_contracts import SYSTEM_ACTOR, Actor, decode
from wastetrail_contracts.codec import encode, envelope_hash
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.envelope import GENESIS_HASH, uuid7_many
from wastetrail_runtime.db import Database
from wastetrail_runtime.logging import causation_id_var, correlation_id_var
from wastetrail_runtime.store import ConcurrencyConflict, EventStore

OPERATOR = Actor(kind=ActorKind.OPERATOR, id="op-Trần", role=Role.ADMIN)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def _rows(store: EventStore) -> list[tuple[str, int, bytes, bytes]]:
    """(chain, seq, event row bytes, outbox row bytes), in chain order."""
    e, o = store.tables.events, store.tables.outbox
    async with store.db.session() as session:
        rows = (await session.execute(
            select(e.c.chain_id, e.c.chain_seq, e.c.envelope, o.c.value)
            .join(o, o.c.event_id == e.c.event_id).order_by(e.c.chain_id, e.c.chain_seq)
        )).all()
    return [(r[0], int(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]


def _assert_chains(rows: list[tuple[str, int, bytes, bytes]]) -> None:
    """Every chain counts from 1 without gaps and links each hash to the one before."""
    last: dict[str, tuple[int, str]] = {}
    for chain, seq, stored, queued in rows:
        assert stored == queued  # the outbox carries exactly the stored bytes
        envelope = decode(stored)
        assert encode(envelope) == stored  # canonical: what the contracts would write
        assert envelope.hash == envelope_hash(envelope.model_dump(mode="json"))
        before_seq, before_hash = last.get(chain, (0, GENESIS_HASH))
        assert (envelope.chain_id, envelope.chain_seq) == (chain, before_seq + 1) == (chain, seq)
        assert envelope.prev_hash == before_hash
        last[chain] = (seq, envelope.hash)


@pytest.mark.integration
async def test_stored_bytes_are_the_contracts_encoding(store: EventStore) -> None:
    correlation = correlation_id_var.set("corr-1")
    causation = causation_id_var.set("cause-1")
    try:
        async with store.unit_of_work() as uow:
            when = datetime(2026, 10, 1, 7, 0, 0, 120000, tzinfo=UTC)
            for i in range(30):
                actor = OPERATOR if i % 3 else SYSTEM_ACTOR
                await uow.record(f"g-{i}", [toy.generator(f"g-{i}"), toy.generator(f"g-{i}",
                                 name="Lê \"Bảy\" \\ 7")], actor=actor,
                                 occurred_at=when if i % 2 else None)
            envelopes = await uow.commit()
    finally:
        correlation_id_var.reset(correlation)
        causation_id_var.reset(causation)
    rows = await _rows(store)
    assert len(rows) == len(envelopes) == 60
    _assert_chains(rows)
    by_id = {decode(stored).event_id: stored for _, _, stored, _ in rows}
    for envelope in envelopes:  # what commit() hands back is what was stored
        assert encode(envelope) == by_id[envelope.event_id]
        assert (envelope.correlation_id, envelope.causation_id) == ("corr-1", "cause-1")
    assert {e.actor for e in envelopes} == {OPERATOR, SYSTEM_ACTOR}
    assert {e.occurred_at for e in envelopes} >= {when}


@pytest.mark.integration
async def test_commit_returns_a_sequence_of_the_sealed_envelopes(store: EventStore) -> None:
    async with store.unit_of_work() as uow:
        for i in range(5):
            await uow.record(f"s-{i}", [toy.generator(f"s-{i}")], actor=SYSTEM_ACTOR)
        envelopes = await uow.commit()
    assert len(envelopes) == 5
    every = list(envelopes)
    assert [e.stream_id for e in every] == [e.stream_id for e in uow.envelopes]
    assert envelopes[-1] == every[4] and envelopes[1:3] == every[1:3]
    assert envelopes[0] is envelopes[0]  # built once
    assert envelopes == every and every[0] in envelopes
    with pytest.raises(IndexError):
        envelopes[5]
    async with store.unit_of_work() as uow:
        assert len(await uow.commit()) == 0


@pytest.mark.integration
async def test_a_head_moved_by_another_writer_is_read_again(
    store: EventStore, database_url: str
) -> None:
    # A second process of the same service: its own store, so its own idea of the heads.
    other_db = Database(database_url)
    other = EventStore(other_db, toy.meta, "collection", topic_prefix=store.topic.split(
        "wastetrail.")[0])
    try:
        for round_ in range(3):
            for name, writer in (("a", store), ("b", other)):
                async with writer.unit_of_work() as uow:
                    for i in range(8):
                        sid = f"{name}-{round_}-{i}"
                        await uow.record(sid, [toy.generator(sid)], actor=SYSTEM_ACTOR,
                                         expected_version=0)
                    last = await uow.commit()
        rows = await _rows(store)
        assert len(rows) == 48
        _assert_chains(rows)
        # A store remembers the heads it committed: those of the last commit are current.
        heads = {chain: (seq, decode(stored).hash) for chain, seq, stored, _ in rows}
        touched = {e.chain_id: (e.chain_seq, e.hash) for e in last}
        assert {c: other.chain_heads[c] for c in touched} == {c: heads[c] for c in touched}
    finally:
        await other_db.dispose()


@pytest.mark.integration
async def test_concurrent_appends_on_known_heads(store: EventStore) -> None:
    async with store.unit_of_work() as uow:  # the store now knows every head
        for i in range(12):
            await uow.record(f"warm-{i}", [toy.generator(f"warm-{i}")], actor=SYSTEM_ACTOR)
        await uow.commit()

    async def append(stream: str, name: str) -> str:
        async with store.unit_of_work() as uow:
            await uow.record(stream, [toy.generator(stream, name)], actor=SYSTEM_ACTOR,
                             expected_version=0)
            await asyncio.sleep(0.05)  # both sealed on the same heads before either commits
            await uow.commit()
        return name

    same = await asyncio.gather(append("race", "A"), append("race", "B"),
                                return_exceptions=True)
    assert sorted(type(r).__name__ for r in same) == ["ConcurrencyConflict", "str"]
    assert any(isinstance(r, ConcurrencyConflict) for r in same)
    # Different streams in the same chains: the loser of the lock re-reads and both land.
    both = await asyncio.gather(*(append(f"free-{i}", str(i)) for i in range(6)))
    assert both == [str(i) for i in range(6)]
    rows = await _rows(store)
    assert len(rows) == 12 + 1 + 6
    _assert_chains(rows)


async def test_the_generic_path_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'toy.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(toy.meta.metadata.create_all)
    store = EventStore(db, toy.meta, "collection", topic_prefix="sqlite.")
    try:
        for round_ in range(2):
            async with store.unit_of_work() as uow:
                for i in range(10):
                    await uow.record(f"q-{i}", [toy.generator(f"q-{i}")], actor=SYSTEM_ACTOR,
                                     expected_version=round_)
                await uow.commit()
        async with store.unit_of_work() as uow:
            await uow.record("q-0", [toy.generator("q-0")], actor=SYSTEM_ACTOR,
                             expected_version=0)
            with pytest.raises(ConcurrencyConflict):
                await uow.commit()
        rows = await _rows(store)
        assert len(rows) == 20
        _assert_chains(rows)
        assert [e.stream_version for e in await store.stream("q-3")] == [1, 2]
    finally:
        await db.dispose()


def test_event_ids_are_uuid7s_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = uuid7_many(4000)
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 4000
    variants = set()
    for value in ids:
        assert UUID.fullmatch(value)
        parsed = uuid.UUID(value)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after
        variants.add(value[19])
    assert variants == set("89ab")  # the two variant bits leave the random ones alone
    assert uuid7_many(0) == []
