"""The outbox relay: publishes committed outbox rows to Kafka in chain order.

One chain is one (service, topic, partition), so publishing each chain's rows in
``chain_seq`` order to that partition keeps Kafka's offset order equal to the hash-chain
order. On PostgreSQL several relays may run: each chain is claimed with a transaction-level
advisory lock, so two relays never publish the same chain at once. The producer is
idempotent with ``acks=all``; a crash between publish and mark republishes the same
records, which consumers drop by event id and auditors recognise as duplicates.

Chains are independent, so up to ``concurrency`` of them are published at once (one
wait for Kafka's acknowledgement per round, not one per chain). Published rows are kept
``keep_published`` (the event store keeps every event for good; the outbox is only the
queue) and then deleted, at most once a minute.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select, text, update
from wastetrail_contracts.topics import kafka_client_options

from wastetrail_runtime.failpoints import failpoint
from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.metrics import Metrics
from wastetrail_runtime.store import EventStore

log = get_logger(__name__)
_PURGE_EVERY_SECONDS = 60.0


def make_producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all), the only kind the runtime uses; ``options``: the
    principal's SASL options (``ServiceSettings.kafka_options``; default: the environment's,
    ``topics.kafka_client_options``)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **(options or kafka_client_options()),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=1024 * 1024,
        request_timeout_ms=30_000,
    )


class OutboxRelay:
    """Moves committed outbox rows to Kafka and marks them published."""

    def __init__(
        self,
        store: EventStore,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.05,
        metrics: Metrics | None = None,
        after_publish: Callable[[int], None] | None = None,
        concurrency: int = 8,
        keep_published: timedelta = timedelta(hours=1),
    ) -> None:
        self.store = store
        # Fault-injection point for tests: called after Kafka acknowledged a batch and
        # before the batch is marked published (the window a crash must survive).
        self.after_publish = after_publish
        self.producer = producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.metrics = metrics
        self.published = 0
        self.concurrency = max(1, concurrency)
        self.keep_published = keep_published
        self._last_purge = 0.0
        # False while rounds fail (the broker or the database is away); readiness reads it.
        self.healthy = True

    async def run(self) -> None:
        """Publish forever; survive broker outages by retrying with backoff."""
        backoff = self.poll_seconds
        while True:
            try:
                moved = await self.publish_pending()
                if time.monotonic() - self._last_purge > _PURGE_EVERY_SECONDS:
                    self._last_purge = time.monotonic()
                    await self.purge_published()
                backoff = self.poll_seconds
                self.healthy = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database is away: retry later
                self.healthy = False
                log.warning("relay.retry", error=str(exc), backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if moved == 0:
                self.store.outbox_signal.clear()
                try:
                    await asyncio.wait_for(self.store.outbox_signal.wait(), self.poll_seconds)
                except TimeoutError:
                    pass

    async def publish_pending(self) -> int:
        """Publish one batch per chain that has pending rows; returns how many were sent."""
        t = self.store.tables.outbox
        async with self.store.db.session() as session:
            chains = (
                await session.execute(
                    select(t.c.chain_id).where(t.c.published_at.is_(None)).group_by(t.c.chain_id)
                )
            ).scalars().all()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(chain: str) -> int:
            async with gate:
                return await self._publish_chain(chain)

        return sum(await asyncio.gather(*(one(chain) for chain in chains)))

    async def purge_published(self, now: datetime | None = None) -> int:
        """Delete outbox rows published more than ``keep_published`` ago; how many."""
        t = self.store.tables.outbox
        cutoff = (now or datetime.now(UTC)) - self.keep_published
        async with self.store.db.session() as session, session.begin():
            result = await session.execute(
                delete(t).where(t.c.published_at.is_not(None), t.c.published_at < cutoff))
        purged = int(getattr(result, "rowcount", 0) or 0)
        if purged:
            log.info("relay.purged", rows=purged)
        return purged

    async def _publish_chain(self, chain: str) -> int:
        t = self.store.tables.outbox
        async with self.store.db.session() as session, session.begin():
            if self.store.db.is_postgres:
                locked = (
                    await session.execute(
                        text("SELECT pg_try_advisory_xact_lock(:k)"),
                        {"k": zlib.crc32(chain.encode()) & 0x7FFFFFFF},
                    )
                ).scalar()
                if not locked:
                    return 0  # another relay owns this chain right now
            rows = (
                await session.execute(
                    select(t.c.id, t.c.topic, t.c.partition, t.c.key, t.c.value)
                    .where(t.c.chain_id == chain, t.c.published_at.is_(None))
                    .order_by(t.c.chain_seq)
                    .limit(self.batch_size)
                )
            ).all()
            if not rows:
                return 0
            # Fault tests kill the process here: committed in the database, not yet sent.
            failpoint("relay.before_publish")
            futures = [
                await self.producer.send(
                    row.topic, value=row.value, key=row.key.encode(), partition=row.partition
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            # Fault tests kill the process here: in Kafka, not yet marked published.
            failpoint("relay.after_publish")
            if self.after_publish is not None:
                self.after_publish(len(rows))
            await session.execute(
                update(t).where(t.c.id.in_([row.id for row in rows]))
                .values(published_at=datetime.now(UTC))
            )
        self.published += len(rows)
        if self.metrics:
            self.metrics.events_published.inc(len(rows))
        return len(rows)

    async def pending(self) -> int:
        """How many outbox rows wait to be published."""
        t = self.store.tables.outbox
        async with self.store.db.session() as session:
            return int(
                (await session.execute(
                    select(func.count()).select_from(t).where(t.c.published_at.is_(None))
                )).scalar() or 0
            )
