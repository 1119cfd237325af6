"""Fault injection on real infrastructure: a relay SIGKILLed between Kafka's
acknowledgement and marking the rows published.

The broker killed (kill -9) under live scans, PostgreSQL cut away for 30 s, a consumer
killed between its two commits and the other process-level scenarios are in
tests/faults/test_process_faults.py (they replaced this file's broker-stop tests, which
stopped a broker gracefully on a fixed port).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import toy
from aiokafka import AIOKafkaProducer
from test_consumer import _read_all, _runner, _times
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.topics import event_topic
from wastetrail_runtime.consumer import Record
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.store import EventStore
from wastetrail_runtime.topics import ensure_topics

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent


async def _append_many(store: EventStore, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    async with store.unit_of_work() as uow:
        for generator_id in ids:
            await uow.record(generator_id, [toy.generator(generator_id)], actor=SYSTEM_ACTOR)
        await uow.commit()
    return ids


async def _apply_topic(store: EventStore, producer: AIOKafkaProducer, bootstrap: str,
                       prefix: str) -> None:
    runner = _runner(store, producer, prefix, {})
    records = await _read_all(bootstrap, event_topic("collection", prefix), 4)
    await runner.process_batch([
        Record(topic="t", partition=0, offset=i, key=None, value=v)
        for i, (v, _h) in enumerate(records)
    ])


async def test_relay_killed_between_publish_and_mark_loses_and_doubles_nothing(
    store: EventStore, kafka_bootstrap: str, topic_prefix: str, database_url: str
) -> None:
    prefix = topic_prefix + "kill."
    store.topic = event_topic("collection", prefix)
    await ensure_topics(kafka_bootstrap, prefix=prefix)
    ids = await _append_many(store, "g-kill", 40)
    victim = subprocess.run(  # noqa: ASYNC221 — a child process we want to finish
        [sys.executable, str(HERE / "relay_victim.py"), database_url, kafka_bootstrap, prefix],
        capture_output=True, timeout=120, check=False,
    )
    assert victim.returncode == -9, victim.stderr.decode()[-2000:]
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(store, producer, batch_size=5)
        assert await relay.pending() == 40  # the killed relay never marked its batch
        while await relay.publish_pending():
            pass
        records = await _read_all(kafka_bootstrap, store.topic, 4)
        # The chains' first batches of 5 were in flight together: the one whose ack came
        # first killed the relay, others may have been acknowledged too. Each of those
        # reached Kafka twice; nothing else did.
        assert 45 <= len(records) <= 40 + 4 * 5
        assert len({value for value, _headers in records}) == 40
        await _apply_topic(store, producer, kafka_bootstrap, prefix)
    finally:
        await producer.stop()
    for generator_id in ids:
        assert await _times(store, generator_id) == 1
