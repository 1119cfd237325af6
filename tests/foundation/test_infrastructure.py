"""The foundation works on real infrastructure: Kafka with an idempotent producer and a
consumer group, PostgreSQL read and write, topics from the catalog."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from wastetrail_contracts.topics import EVENT_TOPICS, kafka_client_options
from wastetrail_runtime.relay import make_producer
from wastetrail_runtime.topics import catalog_topics, ensure_topics

pytestmark = pytest.mark.integration


async def test_idempotent_producer_and_consumer_group_through_the_real_broker(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}foundation.roundtrip"
    await ensure_topics(kafka_bootstrap, [(topic, 2, -1)])
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        assert producer._txn_manager is not None  # idempotence on (producer id + sequence numbers)
        sent = [f"message-{i}".encode() for i in range(20)]
        for value in sent:
            await producer.send_and_wait(topic, value, key=value[-1:])
    finally:
        await producer.stop()
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                **kafka_client_options(), group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    received: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    received.extend(r.value for r in records)
        await consumer.commit()
        committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    assert sorted(received) == sorted(sent)
    assert sum(v or 0 for v in committed.values()) == len(sent)


async def test_catalog_topics_have_their_partitions_and_infinite_retention(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    prefix = topic_prefix + "cat."
    await ensure_topics(kafka_bootstrap, prefix=prefix)
    assert await ensure_topics(kafka_bootstrap, prefix=prefix) == []  # a second run: nothing
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **kafka_client_options())
    await admin.start()
    try:
        names = [name for name, _p, _r in catalog_topics(prefix)]
        described = await admin.describe_topics(names)
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        for spec in EVENT_TOPICS.values():
            assert partitions[spec.qualified(prefix)] == spec.partitions
        topic = EVENT_TOPICS["collection"].qualified(prefix)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
        assert entries["retention.ms"] == "-1"
    finally:
        await admin.close()


async def test_postgres_write_and_read(database_url: str) -> None:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute("CREATE TABLE note (id int primary key, text text)")
        await conn.execute("INSERT INTO note VALUES (1, 'Phường Bến Nghé')")
        assert await conn.fetchval("SELECT text FROM note WHERE id = 1") == "Phường Bến Nghé"
    finally:
        await conn.close()
