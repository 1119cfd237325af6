"""Create the catalog's topics (idempotent): partitions, replication, retention, dead letters,
retries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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
from wastetrail_runtime.settings import ServiceSettings


@dataclass(frozen=True)
class TopicLayout:
    """How topics are laid out on the brokers: partitions (0: the catalog's own count),
    replication factor and ``min.insync.replicas`` (with ``acks=all``, a write is
    acknowledged only once that many replicas hold it)."""

    partitions: int = 0
    replication_factor: int = 1
    min_insync_replicas: int = 1

    def __post_init__(self) -> None:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"min.insync.replicas {self.min_insync_replicas} exceeds the "
                             f"replication factor {self.replication_factor}")

    @classmethod
    def from_settings(cls, settings: ServiceSettings | None = None) -> TopicLayout:
        """The layout configured by ``WASTETRAIL_TOPIC_*`` (or the given settings)."""
        s = settings if settings is not None else ServiceSettings()
        return cls(s.topic_partitions, s.topic_replication_factor, s.topic_min_insync_replicas)


def catalog_topics(prefix: str = "", partitions: int = 0) -> list[tuple[str, int, int]]:
    """(name, partitions, retention_ms) of every topic the platform uses; ``partitions``
    overrides the catalog's event-topic counts when positive."""
    topics = [(spec.qualified(prefix), partitions or spec.partitions, spec.retention_ms)
              for spec in all_topics()]
    topics += [
        (retry_topic(name, prefix), 1, DLQ_RETENTION_MS)
        for consumers in CONSUMERS.values() for name, _source in consumers
    ]
    return topics


async def ensure_topics(
    bootstrap: str, topics: Iterable[tuple[str, int, int]] | None = None, prefix: str = "",
    layout: TopicLayout | None = None,
    **options: Any,
) -> list[str]:
    """Create missing topics with the layout (default: from the environment's settings);
    returns the names created. ``options``: client options (SASL)."""
    layout = layout or TopicLayout.from_settings()
    # One entry per name: the broker refuses every topic named twice in one request (a
    # broker that auto-creates topics used to hide that).
    chosen = topics if topics is not None else catalog_topics(prefix, layout.partitions)
    wanted = list({t[0]: t for t in chosen}.values())
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                **(options or kafka_client_options()))
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name=name, num_partitions=partitions,
                     replication_factor=layout.replication_factor,
                     topic_configs={"retention.ms": str(retention), "retention.bytes": "-1",
                                    "min.insync.replicas": str(layout.min_insync_replicas)})
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
