"""Idempotent consumers with retries and dead letters.

A ``Consumer`` groups the handlers of one consumer group (e.g. ``transfer.collection``
reads the collection topic for the transfer service). For each record it decodes the
envelope, and in ONE transaction records ``(consumer, event_id)`` and applies the
handler; a redelivered event finds its tracking row and changes nothing. Offsets are
committed only after that transaction (FastStream ``AckPolicy.ACK``). Records are taken
in batches and applied in one transaction for throughput; when a batch fails, its
records are applied one by one so a poison event is isolated, retried with backoff, and
finally sent to the consumer's dead-letter topic with the reason — and the partition
keeps moving.

Transient is not poison (see ``transient``): when the database or the broker is away (a
connection error, a serialization failure, a deadlock), the runner does not count
attempts and does not dead-letter. It holds the batch — the partition waits, in order —
and retries with capped backoff until the dependency answers; ``waiting_on`` says so
for readiness. ``process_batch`` returns only when every record of the batch was applied
or dead-lettered (a dead-letter publish that fails is retried the same way), so the
offsets FastStream commits after it never pass a record that was neither; anything else
escapes as an exception, and the subscriber's ``NACK_ON_ERROR`` rewinds the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from aiokafka import AIOKafkaProducer
from wastetrail_contracts import ContractError, Envelope, Event, parse_payload
from wastetrail_contracts.codec import envelope_from_loaded, load_canonical
from wastetrail_contracts.topics import dead_letter_topic, event_topic

from wastetrail_runtime.failpoints import failpoint
from wastetrail_runtime.integrity import INTEGRITY_REASON, HeadWitness, SourceIntegrity
from wastetrail_runtime.logging import causation_id_var, correlation_id_var, get_logger
from wastetrail_runtime.metrics import Metrics
from wastetrail_runtime.store import EventStore, UnitOfWork
from wastetrail_runtime.transient import Backoff, transient_kind

log = get_logger(__name__)
E = TypeVar("E", bound=Event)
Handler = Callable[[Any, Envelope, UnitOfWork], Awaitable[None]]
BatchHandler = Callable[[Sequence[tuple[Any, Envelope]], UnitOfWork], Awaitable[None]]


def retry_topic(consumer: str, prefix: str = "") -> str:
    """Where ``dlq replay`` re-drives a consumer's dead letters (the consumer reads it too)."""
    return f"{prefix}wastetrail.retry.{consumer}"


@dataclass(frozen=True)
class Record:
    """One Kafka record as the consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Consumer:
    """A consumer group: its name, the service it reads, and one handler per event type."""

    name: str
    source: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)

    def on(self, event_cls: type[E]) -> Callable[
        [Callable[[E, Envelope, UnitOfWork], Awaitable[None]]],
        Callable[[E, Envelope, UnitOfWork], Awaitable[None]],
    ]:
        """Register the handler of one event type."""

        def register(
            fn: Callable[[E, Envelope, UnitOfWork], Awaitable[None]],
        ) -> Callable[[E, Envelope, UnitOfWork], Awaitable[None]]:
            self.handlers[event_cls.event_type] = cast(Handler, fn)
            return fn

        return register

    def on_many(self, event_cls: type[E]) -> Callable[
        [Callable[[Sequence[tuple[E, Envelope]], UnitOfWork], Awaitable[None]]],
        Callable[[Sequence[tuple[E, Envelope]], UnitOfWork], Awaitable[None]],
    ]:
        """Register a handler that takes a run of consecutive events of one type at once.

        Within a batch, consecutive events of this type (in partition order, redeliveries
        removed) reach the handler in one call, so it can write them with one statement;
        a run ends at the first event of another type, so order across types is kept.
        Retried or dead-lettered records reach it alone, as a run of one.
        """

        def register(
            fn: Callable[[Sequence[tuple[E, Envelope]], UnitOfWork], Awaitable[None]],
        ) -> Callable[[Sequence[tuple[E, Envelope]], UnitOfWork], Awaitable[None]]:
            many = cast(BatchHandler, fn)

            async def one(event: Any, envelope: Envelope, uow: UnitOfWork) -> None:
                await many([(event, envelope)], uow)

            self.batch_handlers[event_cls.event_type] = many
            self.handlers[event_cls.event_type] = one
            return fn

        return register

    def topics(self, prefix: str = "") -> list[str]:
        """The topics this consumer reads: its source and its own retry topic."""
        return [event_topic(self.source, prefix), retry_topic(self.name, prefix)]


class ConsumerRunner:
    """Applies records to a consumer's handlers, exactly once in effect."""

    def __init__(
        self,
        consumer: Consumer,
        store: EventStore,
        producer: AIOKafkaProducer,
        *,
        topic_prefix: str = "",
        max_attempts: int = 5,
        backoff_seconds: float = 0.05,
        max_backoff_seconds: float = 5.0,
        metrics: Metrics | None = None,
        witness: HeadWitness | None = None,
    ) -> None:
        self.consumer = consumer
        self.integrity = SourceIntegrity(consumer.source, witness)
        self.store = store
        self.producer = producer
        self.prefix = topic_prefix
        self.max_attempts = max_attempts
        self.backoff = backoff_seconds
        self.max_backoff = max_backoff_seconds
        self.metrics = metrics
        self.applied = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.transient_failures = 0
        # What the runner waits for ("database", "kafka", "network"), None when it is not
        # held by a dependency; readiness reports it.
        self.waiting_on: str | None = None
        self.waiting_since: float | None = None

    async def process_batch(self, records: Sequence[Record]) -> None:
        """Apply a batch in one transaction; on a failure of the batch's own, one by one.

        Returns when every record was applied, skipped as a redelivery or dead-lettered.
        """
        decoded: list[tuple[Record, Envelope, Event]] = []
        for record in records:
            item = await self._decode(record)
            if item is not None:
                decoded.append((record, *item))
        if not decoded:
            return
        if len(decoded) > 1:
            error = await self._apply_until_settled(decoded)
            if error is None:
                return
            log.info("consumer.batch_fallback", consumer=self.consumer.name,
                     size=len(decoded), error=error)
        for one in decoded:
            await self._apply_with_retries(one)

    async def process(self, record: Record) -> None:
        """Apply one record."""
        await self.process_batch([record])

    async def _decode(self, record: Record) -> tuple[Envelope, Event] | None:
        try:
            # codec.decode, through the fast path the auditors use: a canonical record
            # (what every producer writes) is parsed by orjson and its payload checked once,
            # against its model below; anything else takes the strict path, same errors.
            loaded, digest = load_canonical(record.value)
            envelope = envelope_from_loaded(loaded)
        except ContractError as exc:
            await self.dead_letter(record, exc.reason, attempts=1)
            return None
        # Verify before applying (wastetrail_runtime.integrity): anyone able to write to
        # the topic must not be able to make this service apply a made-up event.
        problem = self.integrity.problem(loaded, digest)
        if problem is not None:
            log.error("consumer.integrity", consumer=self.consumer.name, problem=problem,
                      topic=record.topic, partition=record.partition, offset=record.offset)
            await self.dead_letter(record, INTEGRITY_REASON, attempts=1,
                                   event_id=envelope.event_id)
            return None
        if envelope.type not in self.consumer.handlers:
            return None  # not an event this consumer cares about
        try:
            event = parse_payload(envelope)
        except ContractError as exc:
            await self.dead_letter(record, exc.reason, attempts=1, event_id=envelope.event_id)
            return None
        return envelope, event

    async def _apply(self, items: Sequence[tuple[Record, Envelope, Event]]) -> None:
        applied = duplicates = 0
        async with self.store.unit_of_work() as uow:
            # One statement records the whole batch; events already recorded are redeliveries.
            fresh = await uow.claim_unprocessed(
                self.consumer.name, [envelope.event_id for _r, envelope, _e in items])
            run: list[tuple[Any, Envelope]] = []  # consecutive events for one batch handler
            for _record, envelope, event in items:
                if envelope.event_id not in fresh:
                    duplicates += 1
                    continue
                fresh.discard(envelope.event_id)  # a copy later in the same batch is a duplicate
                applied += 1
                if run and run[0][1].type != envelope.type:
                    await self._apply_run(run, uow)
                    run = []
                if envelope.type in self.consumer.batch_handlers:
                    run.append((event, envelope))
                    continue
                correlation_id_var.set(envelope.correlation_id)
                causation_id_var.set(envelope.event_id)
                await self.consumer.handlers[envelope.type](event, envelope, uow)
            if run:
                await self._apply_run(run, uow)
            await uow.commit()
        # Fault tests kill the process here: committed in the database, offset not yet.
        failpoint("consumer.after_commit")
        self.applied += applied
        self.duplicates += duplicates
        if self.metrics:
            self.metrics.events_consumed.labels(self.metrics.service, self.consumer.name).inc(
                applied)
            self.metrics.duplicates.labels(self.metrics.service, self.consumer.name).inc(
                duplicates)

    async def _apply_run(self, run: Sequence[tuple[Any, Envelope]], uow: UnitOfWork) -> None:
        first = run[0][1]
        correlation_id_var.set(first.correlation_id)
        causation_id_var.set(first.event_id)
        await self.consumer.batch_handlers[first.type](run, uow)

    async def _apply_until_settled(
        self, items: Sequence[tuple[Record, Envelope, Event]]
    ) -> str | None:
        """Apply ``items`` in one transaction, waiting out transient failures (in order,
        for as long as they last); the error text of a failure of the events' own, or
        None when applied."""
        backoff = Backoff(self.backoff, self.max_backoff)
        while True:
            try:
                await self._apply(items)
            except Exception as exc:
                kind = transient_kind(exc)
                if kind is None:
                    self._resume()
                    return f"{type(exc).__name__}: {exc}"
                await self._wait_for(kind, exc, backoff, items[0][1].event_id)
                continue
            self._resume()
            return None

    async def _wait_for(self, kind: str, exc: BaseException, backoff: Backoff,
                        event_id: str) -> None:
        if self.waiting_on is None:
            self.waiting_since = time.monotonic()
            log.warning("consumer.paused", consumer=self.consumer.name, waiting_on=kind,
                        event_id=event_id, error=f"{type(exc).__name__}: {exc}")
        self.waiting_on = kind
        self.transient_failures += 1
        await backoff.wait()

    def _resume(self) -> None:
        if self.waiting_on is not None:
            log.info("consumer.resumed", consumer=self.consumer.name, waited_on=self.waiting_on,
                     seconds=round(time.monotonic() - (self.waiting_since or 0.0), 3))
        self.waiting_on = None
        self.waiting_since = None

    async def _apply_with_retries(self, item: tuple[Record, Envelope, Event]) -> None:
        record, envelope, _event = item
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            # Transient failures are waited out inside; only the event's own count here.
            failure = await self._apply_until_settled([item])
            if failure is None:
                return
            error = failure
            log.warning("consumer.attempt_failed", consumer=self.consumer.name,
                        event_id=envelope.event_id, attempt=attempt, error=error)
            if attempt < self.max_attempts:
                await asyncio.sleep(self.backoff * (2 ** (attempt - 1)))
        await self.dead_letter(record, error, attempts=self.max_attempts,
                               event_id=envelope.event_id)

    async def dead_letter(
        self, record: Record, reason: str, *, attempts: int, event_id: str | None = None
    ) -> None:
        """Send the original record to the consumer's dead-letter topic, with why."""
        original = dict(record.headers)
        headers = [
            ("dlq.reason", reason[:2000].encode()),
            ("dlq.consumer", self.consumer.name.encode()),
            ("dlq.topic", original.get("dlq.topic", record.topic.encode())),
            ("dlq.partition", original.get("dlq.partition", str(record.partition).encode())),
            ("dlq.offset", original.get("dlq.offset", str(record.offset).encode())),
            ("dlq.attempts", str(attempts).encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        if event_id:
            headers.append(("dlq.event_id", event_id.encode()))
        # Until the dead letter is in Kafka the record is neither applied nor set aside:
        # its offset must not be committed, so a broker that is away is waited out here.
        backoff = Backoff(self.backoff, self.max_backoff)
        while True:
            try:
                failpoint("consumer.dead_letter")
                await self.producer.send_and_wait(
                    dead_letter_topic(self.consumer.name, self.prefix), value=record.value,
                    key=record.key, headers=headers,
                )
            except Exception as exc:
                kind = transient_kind(exc)
                if kind is None:
                    raise  # the subscriber rewinds the batch (NACK_ON_ERROR)
                await self._wait_for(kind, exc, backoff, event_id or "")
                continue
            self._resume()
            break
        self.dead_lettered += 1
        if self.metrics:
            self.metrics.dead_letters.labels(self.metrics.service, self.consumer.name).inc()
        log.error("consumer.dead_lettered", consumer=self.consumer.name, reason=reason,
                  topic=record.topic, partition=record.partition, offset=record.offset,
                  event_id=event_id)
