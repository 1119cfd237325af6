"""The topic catalog: the one place scripts, compose files and services read topics from.

Every service writes only its own event topic. The message key is the envelope's
``stream_id`` (a load, trip, batch, account, producer...), so all events of one
aggregate land in one partition and keep their order. Event topics keep records forever:
they are the audit record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SERVICES = ("collection", "transfer", "treatment", "billing")
RETAIN_FOREVER_MS = -1
DLQ_RETENTION_MS = 90 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: name, partitions, key, retention, who writes and who reads it."""

    name: str
    partitions: int
    key: str
    retention_ms: int
    producer: str
    consumers: tuple[str, ...]
    description: str

    def qualified(self, prefix: str = "") -> str:
        """The topic name with a deployment prefix (tests use one per run)."""
        return f"{prefix}{self.name}"


EVENT_TOPICS: dict[str, TopicSpec] = {
    "collection": TopicSpec(
        name="wastetrail.collection.events",
        partitions=4,
        key="stream_id: generator, trip, load or refusal id",
        retention_ms=RETAIN_FOREVER_MS,
        producer="collection",
        consumers=("transfer", "treatment", "billing", "audit"),
        description="Registries, trips, loads and refusals recorded by collectors.",
    ),
    "transfer": TopicSpec(
        name="wastetrail.transfer.events",
        partitions=4,
        key="stream_id: station, trip or batch id",
        retention_ms=RETAIN_FOREVER_MS,
        producer="transfer",
        consumers=("treatment", "billing", "audit"),
        description="Weighing, reconciliation, consolidation, dispatch and custody alerts.",
    ),
    "treatment": TopicSpec(
        name="wastetrail.treatment.events",
        partitions=4,
        key="stream_id: plant, receipt or treatment id",
        retention_ms=RETAIN_FOREVER_MS,
        producer="treatment",
        consumers=("transfer", "billing", "audit"),
        description="Weighbridge receipts, acceptance, treatment records.",
    ),
    "billing": TopicSpec(
        name="wastetrail.billing.events",
        partitions=4,
        key="stream_id: account, invoice, payment, producer or claim id",
        retention_ms=RETAIN_FOREVER_MS,
        producer="billing",
        consumers=("audit",),
        description="Tariffs, invoices, payments, ledger entries, EPR deposits and claims.",
    ),
}

# Which consumers each service runs: (consumer name, source service).
CONSUMERS: dict[str, tuple[tuple[str, str], ...]] = {
    "collection": (),
    "transfer": (("transfer.collection", "collection"), ("transfer.treatment", "treatment")),
    "treatment": (("treatment.collection", "collection"), ("treatment.transfer", "transfer")),
    "billing": (
        ("billing.collection", "collection"),
        ("billing.transfer", "transfer"),
        ("billing.treatment", "treatment"),
    ),
}


# Which event types each service writes to its own topic: a type, or "prefix.*". The
# treatment service weighs direct-haul trips itself, so it also writes trip_weighed; every
# service signs its chains, so every topic carries checkpoints (and key rotations).
PUBLISHES: dict[str, tuple[str, ...]] = {
    "collection": ("collection.*", "integrity.*"),
    "transfer": ("transfer.*", "custody.*", "integrity.*"),
    "treatment": (
        "treatment.*",
        "transfer.trip_weighed",
        "custody.*",
        "integrity.*",
    ),
    "billing": ("billing.*", "epr.*", "integrity.*"),
}


def publishes(service: str, event_type: str) -> bool:
    """Whether ``service`` may write events of ``event_type`` (see PUBLISHES)."""
    for pattern in PUBLISHES.get(service, ()):
        if pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def event_topic(service: str, prefix: str = "") -> str:
    """The event topic a service writes to."""
    return EVENT_TOPICS[service].qualified(prefix)


def dead_letter_topic(consumer: str, prefix: str = "") -> str:
    """The dead-letter topic of one consumer (e.g. ``transfer.collection``)."""
    return f"{prefix}wastetrail.dlq.{consumer}"


def retry_topic(consumer: str, prefix: str = "") -> str:
    """Where ``dlq replay`` re-drives a consumer's dead letters: the original records,
    untouched (the consumer reads it beside its source topic; the audit verifies it)."""
    return f"{prefix}wastetrail.retry.{consumer}"


def dead_letter_specs() -> list[TopicSpec]:
    """One dead-letter topic per consumer: one partition, 90 days."""
    return [
        TopicSpec(
            name=dead_letter_topic(name),
            partitions=1,
            key="the original message key",
            retention_ms=DLQ_RETENTION_MS,
            producer=service,
            consumers=("operator",),
            description=f"Poison events the consumer {name} gave up on, with the reason.",
        )
        for service, consumers in CONSUMERS.items()
        for name, _source in consumers
    ]


def all_topics() -> list[TopicSpec]:
    """Every topic to create: event topics and dead-letter topics."""
    return [*EVENT_TOPICS.values(), *dead_letter_specs()]


def kafka_client_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """How a Kafka client authenticates (kafka-python and aiokafka name the options alike):
    SASL/SCRAM as ``WASTETRAIL_KAFKA_USERNAME`` / ``WASTETRAIL_KAFKA_PASSWORD`` when set
    (``WASTETRAIL_KAFKA_SASL_MECHANISM``, default SCRAM-SHA-256); nothing for a PLAINTEXT
    broker. Every client of the project — services, audit, dlq, bench, tests — uses it."""
    env = os.environ if environ is None else environ
    username = env.get("WASTETRAIL_KAFKA_USERNAME", "")
    if not username:
        return {}
    return {"security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": env.get("WASTETRAIL_KAFKA_SASL_MECHANISM") or "SCRAM-SHA-256",
            "sasl_plain_username": username,
            "sasl_plain_password": env.get("WASTETRAIL_KAFKA_PASSWORD", "")}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's default partitioner), as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner would choose for this key."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
