"""Transient is not poison: real PostgreSQL and Kafka failures are classified by type, and
a consumer waits them out in order instead of dead-lettering; a failing dead-letter publish
never lets the batch go."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import toy
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from test_consumer import _append, _runner, _times
from wastetrail_contracts.topics import dead_letter_topic
from wastetrail_runtime import failpoints
from wastetrail_runtime.consumer import Record, retry_topic
from wastetrail_runtime.db import Database
from wastetrail_runtime.relay import make_producer
from wastetrail_runtime.store import EventStore
from wastetrail_runtime.topics import ensure_topics
from wastetrail_runtime.transient import transient_kind

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "faults"))
from fault_harness import TcpLink, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url)
    async with eng.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id int primary key, v int)"))
        await conn.execute(text("INSERT INTO t VALUES (1, 1), (2, 2)"))
    yield eng
    await eng.dispose()


async def _raised(coro: object) -> BaseException:
    try:
        await coro  # type: ignore[misc]
    except Exception as exc:
        return exc
    raise AssertionError("no error")


async def test_serialization_failure_and_deadlock_are_transient(engine: AsyncEngine) -> None:
    # Write skew under SERIALIZABLE: the second committer gets SQLSTATE 40001.
    a, b = await engine.connect(), await engine.connect()
    try:
        for conn in (a, b):
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
            await conn.execute(text("SELECT sum(v) FROM t"))
        await a.execute(text("INSERT INTO t VALUES (3, 3)"))
        await b.execute(text("INSERT INTO t VALUES (4, 4)"))
        await a.commit()
        error = await _raised(b.commit())
        assert transient_kind(error) == "database", repr(error)
    finally:
        await a.close()
        await b.close()
    # Two transactions locking two rows in opposite orders: 40P01 for one of them.
    a, b = await engine.connect(), await engine.connect()
    try:
        await a.execute(text("UPDATE t SET v = 10 WHERE id = 1"))
        await b.execute(text("UPDATE t SET v = 20 WHERE id = 2"))
        results = await asyncio.gather(
            a.execute(text("UPDATE t SET v = 11 WHERE id = 2")),
            b.execute(text("UPDATE t SET v = 21 WHERE id = 1")), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and transient_kind(errors[0]) == "database", results
    finally:
        await a.close()
        await b.close()


async def test_unreachable_database_and_broker_are_transient_a_bad_row_is_not(
    engine: AsyncEngine,
) -> None:
    nowhere = create_async_engine(f"postgresql+asyncpg://x@127.0.0.1:{free_port()}/x")
    try:
        async with nowhere.connect() as conn:
            error = await _raised(conn.execute(text("SELECT 1")))
    except Exception as exc:  # connect itself fails first
        error = exc
    finally:
        await nowhere.dispose()
    assert transient_kind(error) in ("database", "network"), repr(error)
    async with engine.connect() as conn:
        duplicate = await _raised(conn.execute(text("INSERT INTO t VALUES (1, 1)")))
    assert isinstance(duplicate, IntegrityError) and transient_kind(duplicate) is None
    assert transient_kind(toy.Poison("bad name")) is None
    assert transient_kind(ValueError("bad")) is None
    assert transient_kind(KafkaConnectionError()) == "kafka"
    assert transient_kind(KafkaTimeoutError()) == "kafka"


async def test_consumer_waits_out_a_database_outage_in_order_and_dead_letters_nothing(
    store: EventStore, topic_prefix: str, kafka_bootstrap: str, database_url: str
) -> None:
    from urllib.parse import urlsplit

    values = await _append(store, *[(f"g-out{i}", f"N{i}") for i in range(6)])
    port = urlsplit(database_url).port or 5432
    link = TcpLink(port)
    through = EventStore(Database(database_url.replace(f":{port}/", f":{link.port}/")),
                         toy.meta, "collection", topic_prefix=topic_prefix)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        runner = _runner(through, producer, topic_prefix, {})
        records = [Record(topic="t", partition=0, offset=i, key=None, value=v)
                   for i, v in enumerate(values)]
        await runner.process_batch(records[:2])
        link.cut()
        task = asyncio.create_task(runner.process_batch(records[2:]))
        await asyncio.sleep(2.0)
        assert not task.done() and runner.waiting_on in ("database", "network")
        link.restore()
        await asyncio.wait_for(task, 30)
        assert runner.waiting_on is None and runner.dead_lettered == 0
        assert runner.transient_failures > 0
    finally:
        await producer.stop()
        await through.db.dispose()
        link.close()
    for i in range(6):
        assert await _times(store, f"g-out{i}") == 1


async def test_a_failing_dead_letter_publish_is_retried_or_raised_never_skipped(
    store: EventStore, topic_prefix: str, kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test_consumer import _read_all

    await ensure_topics(kafka_bootstrap, [
        (dead_letter_topic("toy.collection", topic_prefix), 1, -1),
        (retry_topic("toy.collection", topic_prefix), 1, -1),
    ])
    (poison,) = await _append(store, ("g-dl", "POISON"))
    record = Record(topic="t", partition=0, offset=3, key=None, value=poison)
    producer: AIOKafkaProducer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        # The broker refuses the dead letter three times (a transient failure): the runner
        # waits and publishes it, and only then returns.
        monkeypatch.setattr(failpoints, "_FAIL_TIMES", {"consumer.dead_letter": 3})
        monkeypatch.setattr(failpoints, "_hits", {})
        runner = _runner(store, producer, topic_prefix, {})
        await runner.process(record)
        assert runner.dead_lettered == 1 and runner.transient_failures >= 3
        letters = await _read_all(kafka_bootstrap,
                                  dead_letter_topic("toy.collection", topic_prefix))
        assert [v for v, _h in letters].count(poison) == 1

        # A dead-letter publish that fails for another reason escapes, so the subscriber
        # rewinds the batch (NACK) instead of committing past it.
        class Broken:
            async def send_and_wait(self, *_a: object, **_k: object) -> None:
                raise ValueError("record too large")

        runner.producer = Broken()  # type: ignore[assignment]
        with pytest.raises(ValueError):
            await runner.process(record)
        assert runner.dead_lettered == 1
    finally:
        await producer.stop()
