"""Idempotent consumers on real Kafka and PostgreSQL: redelivery, poison events, replay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import toy
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.topics import dead_letter_topic, event_topic, kafka_client_options
from wastetrail_runtime.consumer import ConsumerRunner, Record
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import EventStore
from wastetrail_runtime.topics import ensure_topics

pytestmark = pytest.mark.integration


class _Settings:
    model_extra: dict[str, object] = {}


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = make_producer(kafka_bootstrap)
    await p.start()
    yield p
    await p.stop()


def _runner(store: EventStore, producer: AIOKafkaProducer, prefix: str,
            fixed: dict[str, bool]) -> ConsumerRunner:
    settings = _Settings()
    settings.model_extra = fixed  # type: ignore[assignment]
    rt = ServiceRuntime(settings=settings, db=store.db, store=store,  # type: ignore[arg-type]
                        clock=store.clock, metrics=None)  # type: ignore[arg-type]
    (consumer,) = toy.make_consumers(rt)
    return ConsumerRunner(consumer, store, producer, topic_prefix=prefix, max_attempts=3,
                          backoff_seconds=0.01)


async def _times(store: EventStore, generator_id: str) -> int:
    async with store.db.session() as session:
        row = await session.get(toy.Seen, generator_id)
        return row.times if row else 0


async def _append(store: EventStore, *names: tuple[str, str]) -> list[bytes]:
    async with store.unit_of_work() as uow:
        for generator_id, name in names:
            await uow.record(generator_id, [toy.generator(generator_id, name)],
                             actor=SYSTEM_ACTOR)
        await uow.commit()
    from wastetrail_contracts import encode

    return [encode(e) for e in uow.envelopes]


async def test_same_event_delivered_three_times_changes_state_once(
    store: EventStore, producer: AIOKafkaProducer, topic_prefix: str
) -> None:
    (value,) = await _append(store, ("g-dup", "Trần Thị B"))
    runner = _runner(store, producer, topic_prefix, {})
    record = Record(topic="t", partition=0, offset=7, key=b"g-dup", value=value)
    for _ in range(3):
        await runner.process(record)
    await runner.process_batch([record, record])
    assert await _times(store, "g-dup") == 1
    assert runner.applied == 1 and runner.duplicates == 4


async def test_poison_event_goes_to_dead_letters_and_the_rest_moves_on(
    store: EventStore, producer: AIOKafkaProducer, topic_prefix: str, kafka_bootstrap: str
) -> None:
    from wastetrail_runtime.consumer import retry_topic

    await ensure_topics(kafka_bootstrap, [
        (dead_letter_topic("toy.collection", topic_prefix), 1, -1),
        (retry_topic("toy.collection", topic_prefix), 1, -1),
    ])
    values = await _append(store, ("g-a", "A"), ("g-poison", "POISON"), ("g-b", "B"))
    runner = _runner(store, producer, topic_prefix, {})
    records = [Record(topic=event_topic("collection", topic_prefix), partition=0, offset=i,
                      key=None, value=v) for i, v in enumerate(values)]
    records.append(Record(topic="t", partition=0, offset=99, key=None, value=b"not json"))
    await runner.process_batch(records)
    assert await _times(store, "g-a") == 1
    assert await _times(store, "g-b") == 1
    assert await _times(store, "g-poison") == 0
    assert runner.dead_lettered == 2

    letters = await _read_all(kafka_bootstrap, dead_letter_topic("toy.collection", topic_prefix))
    reasons = {h["dlq.offset"]: h["dlq.reason"] for _v, h in letters}
    assert "Poison: this generator name is not accepted" in reasons["1"]
    assert "not JSON" in reasons["99"]
    poison_headers = next(h for _v, h in letters if h["dlq.offset"] == "1")
    assert poison_headers["dlq.consumer"] == "toy.collection"
    assert poison_headers["dlq.attempts"] == "3"

    # After a fix (the handler now accepts the name), a replay applies it exactly once.
    fixed = _runner(store, producer, topic_prefix, {"fixed": True})
    poison_value = next(v for v, h in letters if h["dlq.offset"] == "1")
    replayed = Record(topic="retry", partition=0, offset=0, key=None, value=poison_value)
    await fixed.process(replayed)
    await fixed.process(replayed)
    assert await _times(store, "g-poison") == 1


async def test_dlq_replay_command_re_drives_through_the_retry_topic(
    store: EventStore, producer: AIOKafkaProducer, topic_prefix: str, kafka_bootstrap: str
) -> None:
    from wastetrail_runtime.consumer import retry_topic

    from wastetrail.dlq import list_dead_letters, replay_dead_letters

    await ensure_topics(kafka_bootstrap, [
        (dead_letter_topic("toy.collection", topic_prefix), 1, -1),
        (retry_topic("toy.collection", topic_prefix), 1, -1),
    ])
    values = await _append(store, ("g-p2", "POISON"))
    runner = _runner(store, producer, topic_prefix, {})
    await runner.process(Record(topic="t", partition=0, offset=5, key=b"g-p2", value=values[0]))
    letters = await asyncio.to_thread(
        lambda: list(list_dead_letters(kafka_bootstrap, topic_prefix, "toy.collection")))
    mine = [d for d in letters if d.value == values[0]]
    assert mine and "not accepted" in str(mine[0].summary()["reason"])
    count = await asyncio.to_thread(replay_dead_letters, kafka_bootstrap, topic_prefix,
                                    "toy.collection", mine[0].offset)
    assert count == 1
    retried = await _read_all(kafka_bootstrap, retry_topic("toy.collection", topic_prefix))
    assert [v for v, _h in retried].count(values[0]) == 1
    fixed = _runner(store, producer, topic_prefix, {"fixed": True})
    for value, _headers in retried:
        await fixed.process(Record(topic="retry", partition=0, offset=0, key=None, value=value))
    assert await _times(store, "g-p2") == 1


async def test_relay_publishes_in_chain_order_and_consumer_group_applies(
    store: EventStore, producer: AIOKafkaProducer, topic_prefix: str, kafka_bootstrap: str
) -> None:
    await ensure_topics(kafka_bootstrap, prefix=topic_prefix)
    await _append(store, *[(f"g-r{i}", f"N{i}") for i in range(30)])
    relay = OutboxRelay(store, producer, batch_size=7)
    while await relay.publish_pending():
        pass
    assert await relay.pending() == 0
    records = await _read_all(kafka_bootstrap, event_topic("collection", topic_prefix), 4)
    by_chain: dict[str, list[int]] = {}
    for value, _h in records:
        envelope = json.loads(value)
        by_chain.setdefault(envelope["chain_id"], []).append(envelope["chain_seq"])
    for seqs in by_chain.values():
        assert seqs == sorted(seqs)
    assert sum(len(s) for s in by_chain.values()) >= 30


async def _read_all(bootstrap: str, topic: str, partitions: int = 1
                    ) -> list[tuple[bytes, dict[str, str]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                **kafka_client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes, dict[str, str]]] = []
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                out.extend((r.value, {k: v.decode() for k, v in r.headers}) for r in recs)
        return out
    finally:
        await consumer.stop()


async def test_batch_handler_gets_runs_of_one_type_in_order_without_redeliveries(
    store: EventStore, producer: AIOKafkaProducer, topic_prefix: str
) -> None:
    from collections.abc import Sequence

    from wastetrail_contracts import Envelope, encode
    from wastetrail_contracts.events.collection import GeneratorRegistered, VehicleRegistered
    from wastetrail_contracts.examples import EXAMPLES
    from wastetrail_runtime.consumer import Consumer
    from wastetrail_runtime.store import UnitOfWork

    vehicle = next(e for e in EXAMPLES if isinstance(e, VehicleRegistered))
    async with store.unit_of_work() as uow:
        for gid in ("g-r1", "g-r2"):
            await uow.record(gid, [toy.generator(gid)], actor=SYSTEM_ACTOR)
        await uow.record(vehicle.vehicle_id, [vehicle], actor=SYSTEM_ACTOR)
        await uow.record("g-r3", [toy.generator("g-r3")], actor=SYSTEM_ACTOR)
        await uow.record("g-r4", [toy.generator("g-r4", "POISON")], actor=SYSTEM_ACTOR)
        await uow.commit()
    by_stream = {e.stream_id: encode(e) for e in uow.envelopes}  # grouped by chain, not order
    values = [by_stream[s] for s in ("g-r1", "g-r2", vehicle.vehicle_id, "g-r3", "g-r4")]
    calls: list[object] = []
    consumer = Consumer(name="toy.batches", source="collection")

    @consumer.on_many(GeneratorRegistered)
    async def on_generators(items: Sequence[tuple[GeneratorRegistered, Envelope]],
                            uow: UnitOfWork) -> None:
        if any(event.name == "POISON" for event, _ in items):
            raise toy.Poison("not accepted")
        calls.append([event.generator_id for event, _ in items])

    @consumer.on(VehicleRegistered)
    async def on_vehicle(event: VehicleRegistered, envelope: Envelope, uow: UnitOfWork) -> None:
        calls.append(event.vehicle_id)

    runner = ConsumerRunner(consumer, store, producer, topic_prefix=topic_prefix,
                            max_attempts=1, backoff_seconds=0.01)
    records = [Record(topic="t", partition=0, offset=i, key=None, value=v)
               for i, v in enumerate(values[:4])]
    # g-r1 is delivered twice in the batch: the copy is a redelivery, not a second item.
    await runner.process_batch([*records[:2], records[0], *records[2:]])
    assert calls == [["g-r1", "g-r2"], vehicle.vehicle_id, ["g-r3"]]
    assert runner.applied == 4 and runner.duplicates == 1

    # A run that fails is retried record by record (each a run of one): the good ones
    # apply, the poison one alone fails — it does not take its neighbours down with it.
    calls.clear()
    more = await _append(store, ("g-r5", "E"), ("g-r6", "F"))
    batch = [Record(topic="t", partition=0, offset=10 + i, key=None, value=v)
             for i, v in enumerate([more[0], values[4], more[1]])]
    runner.producer = None  # type: ignore[assignment] — the dead letter is not the point here
    try:
        await runner.process_batch(batch)
    except Exception:
        pass
    assert ["g-r5"] in calls and ["g-r4"] not in calls
