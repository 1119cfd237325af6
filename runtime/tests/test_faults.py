"""Fault injection on real infrastructure: a relay SIGKILLed between publish and mark,
a broker stopped for 30 s, and a broker restart that must keep every record.

The broker tests use a private broker (own port and data directory) started from the
same Maven artifacts, so stopping it cannot disturb the shared one other tests use.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
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

from wastetrail.devstack.infra import DEPLOY, ROOT

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


class PrivateBroker:
    """A second local broker for tests that stop it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.env = dict(os.environ, WASTETRAIL_KAFKA_PORT=str(port),
                        WASTETRAIL_KAFKA_CONTROLLER_PORT=str(port + 1),
                        WASTETRAIL_LOCAL_DIR=str(ROOT / ".local" / f"fault-broker-{port}"))
        self.bootstrap = f"127.0.0.1:{port}"

    def _run(self, action: str) -> None:
        subprocess.run(["bash", str(DEPLOY / "kafka.sh"), action], env=self.env, check=True,
                       capture_output=True, timeout=180)

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture(scope="module")
def private_broker() -> Iterator[PrivateBroker]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("fault tests need the project's own broker scripts")
    broker = PrivateBroker(19092)
    broker.start()
    yield broker
    broker.stop()


async def test_broker_down_for_30s_while_appending_loses_nothing(
    store: EventStore, private_broker: PrivateBroker, topic_prefix: str
) -> None:
    prefix = topic_prefix + "outage."
    store.topic = event_topic("collection", prefix)
    await ensure_topics(private_broker.bootstrap, prefix=prefix)
    producer = make_producer(private_broker.bootstrap)
    await producer.start()
    relay = OutboxRelay(store, producer, batch_size=50, poll_seconds=0.05)
    relay_task = asyncio.create_task(relay.run())
    ids: list[str] = []
    try:
        ids += await _append_many(store, "g-before", 10)
        await asyncio.to_thread(private_broker.stop)
        down_at = time.monotonic()
        for i in range(15):  # appends keep succeeding while the broker is away
            ids += await _append_many(store, f"g-down{i}", 2)
            await asyncio.sleep(1.0)
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert await relay.pending() > 0
        await asyncio.to_thread(private_broker.start)
        deadline = time.monotonic() + 120
        while await relay.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert await relay.pending() == 0, "the relay did not catch up by itself"
        await _apply_topic(store, producer, private_broker.bootstrap, prefix)
    finally:
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)
        await producer.stop()
    assert len(ids) == 40
    for generator_id in ids:
        assert await _times(store, generator_id) == 1


async def test_a_record_survives_a_broker_restart(
    private_broker: PrivateBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}restart.check"
    await ensure_topics(private_broker.bootstrap, [(topic, 1, -1)])
    producer = make_producer(private_broker.bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, b"kept across down/up", key=b"k")
    await producer.stop()
    await asyncio.to_thread(private_broker.stop)
    await asyncio.to_thread(private_broker.start)
    records = await _read_all(private_broker.bootstrap, topic, 1)
    assert [v for v, _h in records] == [b"kept across down/up"]
