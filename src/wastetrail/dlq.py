"""Operator tools for dead letters: list, show, replay (re-drive through the retry topic)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from wastetrail_contracts.topics import CONSUMERS, dead_letter_topic, kafka_client_options
from wastetrail_runtime.consumer import retry_topic


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    consumer: str
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    def summary(self) -> dict[str, object]:
        """The one-line view."""
        return {
            "consumer": self.consumer, "offset": self.offset,
            "event_id": self.headers.get("dlq.event_id"),
            "reason": self.headers.get("dlq.reason"),
            "origin": f"{self.headers.get('dlq.topic')}[{self.headers.get('dlq.partition')}]"
                      f"@{self.headers.get('dlq.offset')}",
            "attempts": self.headers.get("dlq.attempts"),
            "failed_at": self.headers.get("dlq.failed_at"),
        }

    def full(self) -> dict[str, object]:
        """Everything, with the value decoded as text."""
        return {**self.summary(), "headers": self.headers,
                "key": self.key.decode(errors="replace") if self.key else None,
                "value": self.value.decode(errors="replace")}


def _consumers(consumer: str | None) -> list[str]:
    if consumer:
        return [consumer]
    return [name for pairs in CONSUMERS.values() for name, _source in pairs]


def list_dead_letters(bootstrap: str, prefix: str, consumer: str | None) -> Iterator[DeadLetter]:
    """Every dead letter of one or all consumers, oldest first."""
    for name in _consumers(consumer):
        topic = dead_letter_topic(name, prefix)
        reader = KafkaConsumer(bootstrap_servers=bootstrap, **kafka_client_options(),
                               enable_auto_commit=False,
                               consumer_timeout_ms=1500)
        try:
            partitions = reader.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                continue
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            end = reader.end_offsets(tps)
            if all(end[tp] == 0 for tp in tps):
                continue
            for record in reader:
                yield DeadLetter(
                    consumer=name, offset=record.offset, key=record.key, value=record.value,
                    headers={k: v.decode(errors="replace") for k, v in record.headers},
                )
                if all(reader.position(tp) >= end[tp] for tp in tps):
                    break
        finally:
            reader.close()


def replay_dead_letters(bootstrap: str, prefix: str, consumer: str, offset: int | None) -> int:
    """Copy dead letters to the consumer's retry topic; the consumer applies each at most once
    (its tracking table drops an event it already applied)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, **kafka_client_options(), acks="all",
                             enable_idempotence=True)
    count = 0
    try:
        for letter in list_dead_letters(bootstrap, prefix, consumer):
            if offset is not None and letter.offset != offset:
                continue
            headers = [(k, v.encode()) for k, v in letter.headers.items()
                       if k in ("dlq.topic", "dlq.partition", "dlq.offset")]
            producer.send(retry_topic(consumer, prefix), value=letter.value, key=letter.key,
                          headers=headers)
            count += 1
        producer.flush()
    finally:
        producer.close()
    return count
