"""Consumer lag from the broker's bookkeeping: committed offsets against partition ends."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from wastetrail_runtime.lag import LagMonitor
from wastetrail_runtime.metrics import Metrics
from wastetrail_runtime.relay import make_producer
from wastetrail_runtime.topics import ensure_topics

pytestmark = pytest.mark.integration


async def test_lag_is_what_the_group_has_not_committed_per_partition(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}lag.{uuid.uuid4().hex[:6]}"
    await ensure_topics(kafka_bootstrap, [(topic, 2, -1)])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"a%d" % i, partition=0)
        for i in range(7):
            await producer.send_and_wait(topic, b"b%d" % i, partition=1)
    finally:
        await producer.stop()
    group = f"{topic_prefix}lag-{uuid.uuid4().hex[:6]}"
    metrics = Metrics("transfer")
    monitor = LagMonitor(kafka_bootstrap, {"transfer.collection": (group, [topic])}, metrics)

    assert await monitor.measure() == {("transfer.collection", topic, 0): 5,
                                       ("transfer.collection", topic, 1): 7}  # never read

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, ""),
                               TopicPartition(topic, 1): OffsetAndMetadata(7, "")})
    finally:
        await consumer.stop()
    lags = await monitor.measure()

    assert lags == {("transfer.collection", topic, 0): 3, ("transfer.collection", topic, 1): 0}
    gauge = metrics.registry.get_sample_value(
        "wastetrail_consumer_lag", {"service": "transfer", "consumer": "transfer.collection",
                                    "topic": topic, "partition": "0"})
    assert gauge == 3


def test_process_metrics_are_exported() -> None:
    registry = Metrics("collection").registry
    assert (registry.get_sample_value("process_resident_memory_bytes") or 0) > 0
    assert registry.get_sample_value("python_info", {
        "implementation": "CPython", "major": "3", "minor": "11",
        "patchlevel": __import__("platform").python_version_tuple()[2],
        "version": __import__("platform").python_version()}) == 1
