"""Event store, hash chains and transactional outbox, in the service's own database.

A ``UnitOfWork`` is one database transaction. Handlers change the service's own tables
through ``uow.session`` and record domain events with ``uow.record``; on ``commit`` the
events are sealed into their hash chains (one chain per service × topic × partition),
stored, and queued in the outbox — all in that same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, NamedTuple, overload

from pydantic import TypeAdapter
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import registry as orm_registry
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor, Envelope, Event
from wastetrail_contracts.chain import seal_envelope
from wastetrail_contracts.codec import canonical_bytes_finite, encode, payload_json
from wastetrail_contracts.envelope import GENESIS_HASH, uuid7, uuid7_many
from wastetrail_contracts.integrity import chain_id
from wastetrail_contracts.topics import EVENT_TOPICS, event_topic, partition_for

from wastetrail_runtime.clock import Clock, SystemClock
from wastetrail_runtime.db import Database
from wastetrail_runtime.logging import causation_id_var, correlation_id_var
from wastetrail_runtime.metrics import Metrics


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream first (expected version is stale)."""

    def __init__(self, stream_id: str, expected: int | None, actual: int | None) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, not the expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class RuntimeTables:
    """The runtime's tables, defined on a given MetaData."""

    def __init__(self, metadata: MetaData) -> None:
        self.events = Table(
            "rt_events",
            metadata,
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                   autoincrement=True),
            Column("event_id", String(36), nullable=False, unique=True),
            Column("stream_id", String(80), nullable=False),
            Column("stream_version", Integer, nullable=False),
            Column("type", String(80), nullable=False),
            Column("chain_id", String(160), nullable=False),
            Column("chain_seq", BigInteger, nullable=False),
            Column("envelope", LargeBinary, nullable=False),
            Column("recorded_at", DateTime(timezone=True), nullable=False),
            UniqueConstraint("stream_id", "stream_version", name="uq_rt_events_stream_version"),
            UniqueConstraint("chain_id", "chain_seq", name="uq_rt_events_chain_seq"),
        )
        self.outbox = Table(
            "rt_outbox",
            metadata,
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                   autoincrement=True),
            Column("event_id", String(36), nullable=False),
            Column("chain_id", String(160), nullable=False),
            Column("chain_seq", BigInteger, nullable=False),
            Column("topic", String(200), nullable=False),
            Column("partition", Integer, nullable=False),
            Column("key", String(80), nullable=False),
            Column("value", LargeBinary, nullable=False),
            Column("published_at", DateTime(timezone=True), nullable=True),
            Index("ix_rt_outbox_pending", "chain_id", "chain_seq",
                  postgresql_where=text("published_at IS NULL"),
                  sqlite_where=text("published_at IS NULL")),
        )
        self.chain_heads = Table(
            "rt_chain_heads",
            metadata,
            Column("chain_id", String(160), primary_key=True),
            Column("topic", String(200), nullable=False),
            Column("partition", Integer, nullable=False),
            Column("seq", BigInteger, nullable=False),
            Column("hash", String(64), nullable=False),
            Column("checkpoint_seq", BigInteger, nullable=False, server_default="0"),
            Column("checkpoint_at", DateTime(timezone=True), nullable=True),
        )
        self.processed = Table(
            "rt_processed_events",
            metadata,
            Column("consumer", String(120), primary_key=True),
            Column("event_id", String(36), primary_key=True),
            Column("processed_at", DateTime(timezone=True), nullable=False),
        )


class ServiceMetadata:
    """A service's own MetaData and SQLModel registry, with the runtime tables included."""

    def __init__(self) -> None:
        self.metadata = MetaData()
        self.registry = orm_registry(metadata=self.metadata)
        self.runtime = RuntimeTables(self.metadata)


class _Pending(NamedTuple):
    # A tuple: one is built per recorded event, and a frozen dataclass's __init__ costs a
    # call per field.
    stream_id: str
    stream_version: int
    event: Event
    actor: Actor
    occurred_at: datetime
    partition: int | None = None


class EventStore:
    """Where a service's events live; knows the service, its topic and its tables."""

    def __init__(
        self,
        db: Database,
        meta: ServiceMetadata,
        service: str,
        *,
        topic_prefix: str = "",
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.tables = meta.runtime
        self.service = service
        self.topic = event_topic(service, topic_prefix)
        self.partitions = EVENT_TOPICS[service].partitions
        self.clock: Clock = clock or SystemClock()
        # Set after each commit that queued outbox rows, so the relay wakes at once.
        self.outbox_signal = asyncio.Event()
        self.appended = 0
        # chain id → (seq, hash) as this store last committed it: a guess that lets a commit
        # seal its events without first reading the heads. The write checks it under lock,
        # so a head moved by another writer only costs a second try (see UnitOfWork).
        self.chain_heads: dict[str, tuple[int, str]] = {}

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work (one transaction)."""
        return UnitOfWork(self)

    async def stream(self, stream_id: str) -> list[Envelope]:
        """Every stored event of one stream, in order."""
        from wastetrail_contracts import decode

        t = self.tables.events
        async with self.db.session() as session:
            rows = await session.execute(
                select(t.c.envelope).where(t.c.stream_id == stream_id).order_by(t.c.stream_version)
            )
            return [decode(r[0]) for r in rows]


# What a commit keeps of each sealed event: the JSON fields before and after "hash", the
# hash, and the objects the envelope holds instead of their JSON (times, actor).
_Sealed = tuple[dict[str, Any], dict[str, Any], str, datetime, datetime, Actor]


class SealedEnvelopes(Sequence[Envelope]):
    """The envelopes a commit sealed, each built the first time it is read.

    Most callers never read them, and building a pydantic object per event was a tenth of
    the cost of an append.
    """

    def __init__(self, sealed: Sequence[_Sealed]) -> None:
        self._fields = sealed
        self._built: dict[int, Envelope] = {}

    def __len__(self) -> int:
        return len(self._fields)

    @overload
    def __getitem__(self, index: int) -> Envelope: ...

    @overload
    def __getitem__(self, index: slice) -> list[Envelope]: ...

    def __getitem__(self, index: int | slice) -> Envelope | list[Envelope]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self._fields))[index]]
        if index < 0:
            index += len(self._fields)
        envelope = self._built.get(index)
        if envelope is None:
            if not 0 <= index < len(self._fields):
                raise IndexError("envelope index out of range")
            before, after, digest, occurred_at, recorded_at, actor = self._fields[index]
            # The fields were sealed from validated values (see UnitOfWork._flush_events).
            envelope = self._built[index] = Envelope.model_construct(**{
                **before, **after, "hash": digest, "occurred_at": occurred_at,
                "recorded_at": recorded_at, "actor": actor,
            })
        return envelope

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"SealedEnvelopes({list(self)!r})"


class UnitOfWork:
    """One transaction: the service's state changes, its new events, their outbox rows."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.session: AsyncSession = store.db.session()
        self._pending: list[_Pending] = []
        self._versions: dict[str, int] = {}
        self._sealed: list[_Sealed] = []
        self._new_heads: list[tuple[str, int, str]] = []
        self.committed = False

    @property
    def envelopes(self) -> list[Envelope]:
        """The envelopes sealed by this unit of work (built on demand; the hot path does not
        need them)."""
        return list(SealedEnvelopes(self._sealed))

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            await self.session.rollback()
        await self.session.close()

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when empty), counting events recorded here."""
        if stream_id in self._versions:
            return self._versions[stream_id]
        t = self.store.tables.events
        result = await self.session.execute(
            select(func.max(t.c.stream_version)).where(t.c.stream_id == stream_id)
        )
        version = int(result.scalar() or 0)
        self._versions[stream_id] = version
        return version

    async def record(
        self,
        stream_id: str,
        events: Sequence[Event],
        *,
        actor: Actor,
        expected_version: int | None = None,
        occurred_at: datetime | None = None,
    ) -> None:
        """Queue events for a stream; a stale ``expected_version`` raises ConcurrencyConflict.

        A new stream (``expected_version=0``) needs no read: if another writer created it
        first, the unique (stream_id, stream_version) key refuses this commit instead.
        """
        if expected_version == 0 and stream_id not in self._versions:
            current = 0
        else:
            current = await self.stream_version(stream_id)
        if expected_version is not None and expected_version != current:
            raise ConcurrencyConflict(stream_id, expected_version, current)
        if not _STREAM_ID.fullmatch(stream_id):
            raise ValueError(f"stream_id {stream_id!r}: 1-80 printable characters")
        when = occurred_at or self.store.clock.now()
        if when.utcoffset() != _ZERO:  # None (naive) or another offset
            raise ValueError("occurred_at: must be a timezone-aware UTC datetime")
        pending = self._pending
        for event in events:
            current += 1
            pending.append(_Pending(stream_id, current, event, actor, when))
        self._versions[stream_id] = current

    async def prefetch_versions(self, stream_ids: Sequence[str]) -> None:
        """Read many streams' versions in one query (batch handlers call this first)."""
        wanted = [sid for sid in set(stream_ids) if sid not in self._versions]
        if not wanted:
            return
        t = self.store.tables.events
        rows = await self.session.execute(
            select(t.c.stream_id, func.max(t.c.stream_version))
            .where(t.c.stream_id.in_(wanted)).group_by(t.c.stream_id)
        )
        found = {row[0]: int(row[1]) for row in rows}
        for sid in wanted:
            self._versions[sid] = found.get(sid, 0)

    async def record_in_partition(
        self, stream_id: str, partition: int, events: Sequence[Event], *, actor: Actor
    ) -> None:
        """Queue events into a given partition's chain (checkpoints sign a chain's head)."""
        current = await self.stream_version(stream_id)
        when = self.store.clock.now()
        for offset, event in enumerate(events, start=1):
            self._pending.append(
                _Pending(stream_id, current + offset, event, actor, when, partition)
            )
        self._versions[stream_id] = current + len(events)

    async def claim_unprocessed(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """Record events as handled by a consumer, in one statement; returns those that were
        new (the others are redeliveries). The rows are written in this transaction, so they
        commit or roll back together with whatever the handlers change."""
        if not event_ids:
            return set()
        t = self.store.tables.processed
        now = self.store.clock.now()
        rows = [{"consumer": consumer, "event_id": eid, "processed_at": now}
                for eid in dict.fromkeys(event_ids)]
        # One statement compiled once and executed for all rows (insertmanyvalues), rather
        # than a .values(rows) statement that would be recompiled for every batch.
        if self.store.db.is_postgres:
            stmt: Any = pg_insert(t).on_conflict_do_nothing()
        else:
            stmt = sqlite_insert(t).on_conflict_do_nothing()
        result = await self.session.execute(stmt.returning(t.c.event_id), rows)
        return {row[0] for row in result}

    async def commit(self) -> SealedEnvelopes:
        """Seal pending events into their chains, store them and the outbox rows, commit.

        Returns the sealed envelopes as a sequence that builds each one when it is read.
        """
        try:
            if self._pending:
                await self._flush_events()
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            if "stream" in str(exc.orig).lower() or "uq_rt_events" in str(exc.orig):
                raise ConcurrencyConflict(self._pending[0].stream_id, None, None) from exc
            raise
        self.committed = True
        known = self.store.chain_heads
        for chain, seq, digest in self._new_heads:
            # Commits finishing out of order must not put an older head back.
            if seq > known.get(chain, (0, ""))[0]:
                known[chain] = (seq, digest)
        if self._pending:
            self.store.appended += len(self._pending)
            if self.store.metrics is not None:
                self.store.metrics.events_appended.inc(len(self._pending))
            self.store.outbox_signal.set()
        return SealedEnvelopes(self._sealed)

    async def _flush_events(self) -> None:
        store = self.store
        by_partition: dict[int, list[_Pending]] = {}
        for item in self._pending:
            partition = item.partition
            if partition is None:
                partition = partition_for(item.stream_id, store.partitions)
            group = by_partition.get(partition)
            if group is None:
                group = by_partition[partition] = []
            group.append(item)
        partitions = sorted(by_partition)
        chains = {p: chain_id(store.service, store.topic, p) for p in partitions}
        context = _SealContext(
            correlation=correlation_id_var.get() or uuid7(),
            causation=causation_id_var.get(),
            recorded_at=store.clock.now(),
        )
        if not store.db.is_postgres:
            heads = await self._lock_chain_heads(chains)
            rows = self._seal(by_partition, heads, context)
            await self._write_generic(rows, context.recorded_at)
            return
        known = store.chain_heads
        if all(chain in known for chain in chains.values()):
            # Seal on the heads this store committed last; the write locks the heads and
            # stores nothing unless they are still those (no round trip to read them).
            heads = {p: (chain, *known[chain]) for p, chain in chains.items()}
            rows = self._seal(by_partition, heads, context)
            if await self._write_postgres(rows, heads, context.recorded_at):
                return
            # Another writer moved a head: lock, read and seal again.
            self._sealed.clear()
        heads = await self._lock_chain_heads(chains)
        rows = self._seal(by_partition, heads, context)
        if not await self._write_postgres(rows, heads, context.recorded_at):  # pragma: no cover
            raise RuntimeError("chain heads moved while this transaction held their locks")

    def _seal(self, by_partition: dict[int, list[_Pending]],
              heads: dict[int, tuple[str, int, str]], context: _SealContext) -> _Rows:
        """Seal the pending events after the given heads: the rows to store.

        Also fills ``_sealed`` (for the envelopes) and ``_new_heads``.
        """
        service = self.store.service
        correlation = context.correlation
        causation = context.causation
        recorded_at = context.recorded_at
        recorded_iso = _iso(recorded_at)
        event_ids = iter(uuid7_many(len(self._pending)))
        rows = _Rows()
        new_heads: list[tuple[str, int, str]] = []
        # Per commit, most events share an actor (and often an occurred_at): dump each once.
        actors: dict[int, object] = {}
        times: dict[datetime, str] = {}
        sealed = self._sealed
        check = not sealed
        for partition in sorted(by_partition):
            chain, seq, prev_hash = heads[partition]
            for item in by_partition[partition]:
                seq += 1
                event = item.event
                actor = actors.get(id(item.actor))
                if actor is None:
                    actor = actors[id(item.actor)] = item.actor.model_dump(mode="json")
                occurred = times.get(item.occurred_at)
                if occurred is None:
                    occurred = times[item.occurred_at] = _iso(item.occurred_at)
                event_id = next(event_ids)
                # The envelope's fields split at "hash": every key of ``before`` sorts
                # below it and every key of ``after`` above it, so the canonical body (all
                # fields but hash) is the two encodings joined, and the wire bytes are the
                # same with the hash member spliced in between: one encoding per event.
                before = {
                    "actor": actor, "causation_id": causation, "chain_id": chain,
                    "chain_seq": seq, "correlation_id": correlation, "event_id": event_id,
                }
                after = {
                    "occurred_at": occurred, "payload": payload_json(event),
                    "prev_hash": prev_hash, "recorded_at": recorded_iso,
                    "schema_version": event.schema_version, "service": service,
                    "stream_id": item.stream_id, "stream_version": item.stream_version,
                    "type": event.event_type,
                }
                # Every value is a validated model's JSON dump: floats are finite.
                head = canonical_bytes_finite(before)[:-1]
                tail = canonical_bytes_finite(after)[1:]
                digest = hashlib.sha256(head + b"," + tail).hexdigest()
                value = b"".join((head, b',"hash":"', digest.encode(), b'",', tail))
                if check:
                    # The first envelope of each commit goes through the contracts' full
                    # validation and encoding; the rest share its shape, and their only
                    # caller-supplied field, the stream id, was checked by ``record``.
                    _check_sealing({**before, **after}, digest, value)
                    check = False
                prev_hash = digest
                # Envelope objects are built only if someone asks (see SealedEnvelopes).
                sealed.append((before, after, digest, item.occurred_at, recorded_at,
                               item.actor))
                rows.event_id.append(event_id)
                rows.stream_id.append(item.stream_id)
                rows.stream_version.append(item.stream_version)
                rows.type.append(event.event_type)
                rows.chain_id.append(chain)
                rows.chain_seq.append(seq)
                rows.partition.append(partition)
                rows.value.append(value)
            new_heads.append((chain, seq, prev_hash))
        self._new_heads = new_heads
        return rows

    async def _lock_chain_heads(
        self, chains: dict[int, str]
    ) -> dict[int, tuple[str, int, str]]:
        """Lock the chains (partition → chain id), creating them at genesis, and read their
        heads: partition → (chain id, seq, hash).

        Locked in partition order so that concurrent transactions cannot deadlock.
        """
        store = self.store
        t = store.tables.chain_heads
        partitions = sorted(chains)
        heads: dict[int, tuple[str, int, str]] = {}
        if store.db.is_postgres:
            # One round trip: the upsert locks each existing row as ON CONFLICT DO UPDATE
            # does (in partition order), waits for a concurrent holder and returns the
            # latest committed head; a new chain starts at genesis.
            result = await self.session.execute(_LOCK_HEADS_POSTGRES, {
                "chain": [chains[p] for p in partitions], "partition": partitions,
                "topic": store.topic, "genesis": GENESIS_HASH,
            })
            for partition, seq, digest in result:
                heads[partition] = (chains[partition], int(seq), str(digest))
            return heads
        for p in partitions:
            await self.session.execute(
                sqlite_insert(t).values(chain_id=chains[p], topic=store.topic, partition=p,
                                        seq=0, hash=GENESIS_HASH, checkpoint_seq=0)
                .on_conflict_do_nothing()
            )
            row = (await self.session.execute(
                select(t.c.seq, t.c.hash).where(t.c.chain_id == chains[p])
            )).one()
            heads[p] = (chains[p], int(row.seq), str(row.hash))
        return heads

    async def _write_postgres(self, rows: _Rows, heads: dict[int, tuple[str, int, str]],
                              recorded_at: datetime) -> bool:
        """Store the rows and move the heads if every head is still the one sealed on;
        False (and nothing written) otherwise."""
        # One statement, one round trip: lock the heads, check them, insert the event rows
        # and the outbox rows (the wire bytes travel once; both tables read the same array)
        # and move the heads.
        old = [heads[p] for p in sorted(heads)]
        result = await self.session.execute(_WRITE_POSTGRES, {
            "event_id": rows.event_id, "stream_id": rows.stream_id,
            "stream_version": rows.stream_version, "type": rows.type,
            "chain_id": rows.chain_id, "chain_seq": rows.chain_seq,
            "envelope": rows.value, "recorded_at": recorded_at,
            "topic": self.store.topic, "partition": rows.partition,
            "head_chain": [h[0] for h in old], "old_seq": [h[1] for h in old],
            "old_hash": [h[2] for h in old],
            "new_seq": [h[1] for h in self._new_heads], "new_hash": [h[2] for h in self._new_heads],
        })
        return bool(result.scalar_one())

    async def _write_generic(self, rows: _Rows, recorded_at: datetime) -> None:
        """Store the rows and move the heads (SQLite: the heads were locked and read)."""
        tables = self.store.tables
        topic = self.store.topic
        columns = zip(rows.event_id, rows.stream_id, rows.stream_version, rows.type,
                      rows.chain_id, rows.chain_seq, rows.partition, rows.value, strict=True)
        event_rows: list[dict[str, Any]] = []
        outbox_rows: list[dict[str, Any]] = []
        for event_id, stream_id, version, type_, chain, seq, partition, value in columns:
            event_rows.append({
                "event_id": event_id, "stream_id": stream_id, "stream_version": version,
                "type": type_, "chain_id": chain, "chain_seq": seq, "envelope": value,
                "recorded_at": recorded_at,
            })
            outbox_rows.append({
                "event_id": event_id, "chain_id": chain, "chain_seq": seq, "topic": topic,
                "partition": partition, "key": stream_id, "value": value,
            })
        await self.session.execute(insert(tables.events), event_rows)
        await self.session.execute(insert(tables.outbox), outbox_rows)
        for chain, seq, digest in self._new_heads:
            await self.session.execute(
                update(tables.chain_heads).where(tables.chain_heads.c.chain_id == chain)
                .values(seq=seq, hash=digest)
            )


class _SealContext(NamedTuple):
    correlation: str
    causation: str | None
    recorded_at: datetime


class _Rows:
    """The columns of one commit's event and outbox rows (arrays for the PostgreSQL path)."""

    __slots__ = ("chain_id", "chain_seq", "event_id", "partition", "stream_id",
                 "stream_version", "type", "value")

    def __init__(self) -> None:
        self.event_id: list[str] = []
        self.stream_id: list[str] = []
        self.stream_version: list[int] = []
        self.type: list[str] = []
        self.chain_id: list[str] = []
        self.chain_seq: list[int] = []
        self.partition: list[int] = []
        self.value: list[bytes] = []



_LOCK_HEADS_POSTGRES = text("""
INSERT INTO rt_chain_heads AS h (chain_id, topic, partition, seq, hash, checkpoint_seq)
SELECT c.chain_id, CAST(:topic AS varchar), c.partition, 0, CAST(:genesis AS varchar), 0
FROM unnest(CAST(:chain AS varchar[]), CAST(:partition AS integer[])) AS c(chain_id, partition)
ORDER BY c.partition
ON CONFLICT (chain_id) DO UPDATE SET seq = h.seq
RETURNING h.partition, h.seq, h.hash
""")

# One statement for a whole commit. ``locked`` locks the heads in partition order (as
# _LOCK_HEADS_POSTGRES does, so writers cannot deadlock) and keeps those still at the head
# the events were sealed on: under READ COMMITTED a row another writer moved is re-read once
# its lock is free, and then no longer matches. Unless all match, nothing is written and the
# statement returns false. Data-modifying CTEs always run to completion; each is gated on
# ``ready``, evaluated once before it. A stream version taken by another writer fails on
# uq_rt_events_stream_version, which commit() turns into a 409.
_WRITE_POSTGRES = text("""
WITH locked AS (
    SELECT h.chain_id FROM rt_chain_heads AS h
    JOIN unnest(CAST(:head_chain AS varchar[]), CAST(:old_seq AS bigint[]),
                CAST(:old_hash AS varchar[])) AS o(chain_id, seq, hash)
      ON h.chain_id = o.chain_id AND h.seq = o.seq AND h.hash = o.hash
    ORDER BY h.partition
    FOR UPDATE OF h
), ready AS (
    SELECT count(*) = cardinality(CAST(:head_chain AS varchar[])) AS ok FROM locked
), new_events AS (
    INSERT INTO rt_events
        (event_id, stream_id, stream_version, type, chain_id, chain_seq, envelope, recorded_at)
    SELECT e.event_id, e.stream_id, e.stream_version, e.type, e.chain_id, e.chain_seq,
           e.envelope, CAST(:recorded_at AS timestamptz)
    FROM unnest(CAST(:event_id AS varchar[]), CAST(:stream_id AS varchar[]),
                CAST(:stream_version AS integer[]), CAST(:type AS varchar[]),
                CAST(:chain_id AS varchar[]), CAST(:chain_seq AS bigint[]),
                CAST(:envelope AS bytea[]))
         AS e(event_id, stream_id, stream_version, type, chain_id, chain_seq, envelope)
    WHERE (SELECT ok FROM ready)
), new_outbox AS (
    INSERT INTO rt_outbox (event_id, chain_id, chain_seq, topic, partition, key, value)
    SELECT b.event_id, b.chain_id, b.chain_seq, CAST(:topic AS varchar), b.partition,
           b.key, b.value
    FROM unnest(CAST(:event_id AS varchar[]), CAST(:chain_id AS varchar[]),
                CAST(:chain_seq AS bigint[]), CAST(:partition AS integer[]),
                CAST(:stream_id AS varchar[]), CAST(:envelope AS bytea[]))
         AS b(event_id, chain_id, chain_seq, partition, key, value)
    WHERE (SELECT ok FROM ready)
), moved AS (
    UPDATE rt_chain_heads AS h SET seq = n.seq, hash = n.hash
    FROM unnest(CAST(:head_chain AS varchar[]), CAST(:new_seq AS bigint[]),
                CAST(:new_hash AS varchar[])) AS n(chain_id, seq, hash)
    WHERE h.chain_id = n.chain_id AND (SELECT ok FROM ready)
)
SELECT ok FROM ready
""")


def _check_sealing(fields: dict[str, Any], digest: str, value: bytes) -> None:
    envelope = seal_envelope(fields)
    if envelope.hash != digest or encode(envelope) != value:  # pragma: no cover — diverged
        raise RuntimeError("envelope bytes differ from the contracts' sealing and encoding")


_DATETIME = TypeAdapter(datetime)
_ZERO = timedelta(0)
# The envelope's Code type: what a stream id may be (checked here, since only the first
# envelope of a commit is fully validated).
_STREAM_ID = re.compile(r"[^\x00-\x1f]{1,80}")


def _iso(value: datetime) -> str:
    # The same text pydantic produces for a UTC datetime in JSON mode, so that hashing
    # the stored JSON and hashing a re-serialised Envelope agree.
    return str(_DATETIME.dump_python(value, mode="json"))


