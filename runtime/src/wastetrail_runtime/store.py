"""Event store, hash chains and transactional outbox, in the service's own database.

A ``UnitOfWork`` is one database transaction. Handlers change the service's own tables
through ``uow.session`` and record domain events with ``uow.record``; on ``commit`` the
events are sealed into their hash chains (one chain per service × topic × partition),
stored, and queued in the outbox — all in that same transaction.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

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
from wastetrail_contracts.codec import canonical_bytes_finite, envelope_hash_finite, payload_json
from wastetrail_contracts.envelope import GENESIS_HASH, uuid7
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


@dataclass(frozen=True)
class _Pending:
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


class UnitOfWork:
    """One transaction: the service's state changes, its new events, their outbox rows."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.session: AsyncSession = store.db.session()
        self._pending: list[_Pending] = []
        self._versions: dict[str, int] = {}
        self._sealed: list[dict[str, Any]] = []
        self.committed = False

    @property
    def envelopes(self) -> list[Envelope]:
        """The envelopes sealed by this unit of work (built on demand; the hot path does not
        need them)."""
        return [Envelope.model_construct(**fields) for fields in self._sealed]

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
        if when.tzinfo is None or when.utcoffset() != timedelta(0):
            raise ValueError("occurred_at: must be a timezone-aware UTC datetime")
        for offset, event in enumerate(events, start=1):
            self._pending.append(_Pending(stream_id, current + offset, event, actor, when))
        self._versions[stream_id] = current + len(events)

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

    async def commit(self) -> list[Envelope]:
        """Seal pending events into their chains, store them and the outbox rows, commit."""
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
        if self._pending:
            self.store.appended += len(self._pending)
            if self.store.metrics is not None:
                self.store.metrics.events_appended.inc(len(self._pending))
            self.store.outbox_signal.set()
        return self.envelopes

    async def _flush_events(self) -> None:
        store = self.store
        tables = store.tables
        by_partition: dict[int, list[_Pending]] = {}
        for item in self._pending:
            partition = (
                item.partition if item.partition is not None
                else partition_for(item.stream_id, store.partitions)
            )
            by_partition.setdefault(partition, []).append(item)
        correlation = correlation_id_var.get() or uuid7()
        causation = causation_id_var.get()
        recorded_at = store.clock.now()
        recorded_iso = _iso(recorded_at)
        event_rows: list[dict[str, Any]] = []
        outbox_rows: list[dict[str, Any]] = []
        # Lock chain heads in partition order so concurrent transactions cannot deadlock.
        for partition in sorted(by_partition):
            chain = chain_id(store.service, store.topic, partition)
            seq, prev_hash = await self._lock_chain_head(chain, partition)
            for item in by_partition[partition]:
                seq += 1
                fields: dict[str, Any] = {
                    "event_id": uuid7(),
                    "type": item.event.event_type,
                    "schema_version": item.event.schema_version,
                    "service": store.service,
                    "stream_id": item.stream_id,
                    "stream_version": item.stream_version,
                    "occurred_at": _iso(item.occurred_at),
                    "recorded_at": recorded_iso,
                    "actor": item.actor.model_dump(mode="json"),
                    "correlation_id": correlation,
                    "causation_id": causation,
                    "payload": payload_json(item.event),
                    "chain_id": chain,
                    "chain_seq": seq,
                    "prev_hash": prev_hash,
                }
                # Hash and bytes from the JSON fields themselves (two canonical dumps, no
                # re-serialisation). The first envelope of each commit goes through the
                # contracts' full validation; the rest share its shape, and their only
                # caller-supplied field, the stream id, is checked below.
                # Every value is a validated model's JSON dump: floats are finite.
                digest = envelope_hash_finite(fields)
                value = canonical_bytes_finite({**fields, "hash": digest})
                if not self._sealed:
                    envelope = seal_envelope(fields)
                    if envelope.hash != digest:  # pragma: no cover — encodings diverged
                        raise RuntimeError("envelope hash differs from the contracts' sealing")
                prev_hash = digest
                # Envelope objects are built only if someone asks (see ``envelopes``).
                self._sealed.append({**fields, "hash": digest, "occurred_at": item.occurred_at,
                                     "recorded_at": recorded_at, "actor": item.actor})
                event_rows.append({
                    "event_id": fields["event_id"], "stream_id": item.stream_id,
                    "stream_version": item.stream_version, "type": fields["type"],
                    "chain_id": chain, "chain_seq": seq, "envelope": value,
                    "recorded_at": recorded_at,
                })
                outbox_rows.append({
                    "event_id": fields["event_id"], "chain_id": chain, "chain_seq": seq,
                    "topic": store.topic, "partition": partition, "key": item.stream_id,
                    "value": value,
                })
            await self.session.execute(
                update(tables.chain_heads)
                .where(tables.chain_heads.c.chain_id == chain)
                .values(seq=seq, hash=prev_hash)
            )
        await self.session.execute(insert(tables.events), event_rows)
        await self.session.execute(insert(tables.outbox), outbox_rows)

    async def _lock_chain_head(self, chain: str, partition: int) -> tuple[int, str]:
        t = self.store.tables.chain_heads
        values = {"chain_id": chain, "topic": self.store.topic, "partition": partition,
                  "seq": 0, "hash": GENESIS_HASH, "checkpoint_seq": 0}
        if self.store.db.is_postgres:
            await self.session.execute(pg_insert(t).values(**values).on_conflict_do_nothing())
        else:
            await self.session.execute(sqlite_insert(t).values(**values).on_conflict_do_nothing())
        row = (
            await self.session.execute(
                select(t.c.seq, t.c.hash).where(t.c.chain_id == chain).with_for_update()
            )
        ).one()
        return int(row.seq), str(row.hash)


_DATETIME = TypeAdapter(datetime)
# The envelope's Code type: what a stream id may be (checked here, since only the first
# envelope of a commit is fully validated).
_STREAM_ID = re.compile(r"[^\x00-\x1f]{1,80}")


def _iso(value: datetime) -> str:
    # The same text pydantic produces for a UTC datetime in JSON mode, so that hashing
    # the stored JSON and hashing a re-serialised Envelope agree.
    return str(_DATETIME.dump_python(value, mode="json"))
