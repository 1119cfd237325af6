"""Create the catalog's topics (idempotent): partitions, retention, dead letters, retries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from wastetrail_contracts.topics import (
    CONSUMERS,
    DLQ_RETENTION_MS,
    all_topics,
    kafka_client_options,
)

from wastetrail_runtime.consumer import retry_topic


def catalog_topics(prefix: str = "") -> list[tuple[str, int, int]]:
    """(name, partitions, retention_ms) of every topic the platform uses."""
    topics = [(spec.qualified(prefix), spec.partitions, spec.retention_ms)
              for spec in all_topics()]
    topics += [
        (retry_topic(name, prefix), 1, DLQ_RETENTION_MS)
        for consumers in CONSUMERS.values() for name, _source in consumers
    ]
    return topics


async def ensure_topics(
    bootstrap: str, topics: Iterable[tuple[str, int, int]] | None = None, prefix: str = "",
    **options: Any,
) -> list[str]:
    """Create missing topics; returns the names created. ``options``: SASL options."""
    # One entry per name: the broker refuses every topic named twice in one request (a
    # broker that auto-creates topics used to hide that).
    wanted = list({t[0]: t for t in (topics if topics is not None else catalog_topics(prefix))}
                  .values())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                **(options or kafka_client_options()))
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name=name, num_partitions=partitions, replication_factor=1,
                     topic_configs={"retention.ms": str(retention), "retention.bytes": "-1"})
            for name, partitions, retention in wanted if name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # a concurrent creator won; that is fine
            created = [t.name for t in new]
    finally:
        await admin.close()
    return created
