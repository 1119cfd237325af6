"""The retry topics: consumers apply what is there, so the audit verifies it too.

``dlq replay`` re-drives a dead letter by copying the original record, untouched, to the
consumer's ``wastetrail.retry.<consumer>`` topic with headers naming where it came from
(``dlq.topic``, ``dlq.partition``, ``dlq.offset``). Every record there must therefore be
byte for byte the record at that place of the source's event topic, and pass the checks a
consumer makes (hash, producer, catalog). Anything else is ``retry_forged``.
"""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from wastetrail_contracts.codec import InvalidEnvelope, load_canonical
from wastetrail_contracts.integrity import admission_problem
from wastetrail_contracts.topics import CONSUMERS, event_topic, retry_topic

from wastetrail_audit.records import Failure, LogRecord, PartitionRef
from wastetrail_audit.source import KafkaLog, PartitionSpan, kafka_consumer, read


def verify_retry_topics(source: KafkaLog) -> tuple[int, list[Failure]]:
    """(records read, failures) over every consumer's retry topic that exists."""
    consumer = kafka_consumer(source.bootstrap)
    count = 0
    failures: list[Failure] = []
    try:
        for name, producer in (pair for pairs in CONSUMERS.values() for pair in pairs):
            topic = retry_topic(name, source.topic_prefix)
            origin = event_topic(producer, source.topic_prefix)
            for span in _spans(consumer, topic):
                for record in list(read(source, span, consumer)):
                    count += 1
                    problem = _problem(consumer, source, record, producer, origin)
                    if problem is not None:
                        failures.append(Failure(record.topic, record.partition, record.offset,
                                                problem[0], "retry_forged", problem[1]))
    finally:
        consumer.close()
    return count, failures


def _spans(consumer: KafkaConsumer, topic: str) -> list[PartitionSpan]:
    partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    if not tps:
        return []  # no retry topic: nothing was ever re-driven through it
    begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    return [PartitionSpan(PartitionRef(topic, tp.partition), int(begin[tp]), int(end[tp]))
            for tp in tps if end[tp] > begin[tp]]


def _problem(
    consumer: KafkaConsumer, source: KafkaLog, record: LogRecord, producer: str, origin: str
) -> tuple[str, str] | None:
    """(event id, why) the retry record is not a genuine copy, or None."""
    if record.value is None:
        return "", "empty record"
    try:
        raw, digest = load_canonical(record.value)
    except InvalidEnvelope as exc:
        return "", f"not an envelope: {exc.reason}"
    event_id = str(raw.get("event_id", ""))
    problem = admission_problem(raw, producer, digest)
    if problem is not None:
        return event_id, problem
    headers = dict(record.headers)
    try:
        topic = headers["dlq.topic"].decode()
        partition = int(headers["dlq.partition"])
        offset = int(headers["dlq.offset"])
    except (KeyError, ValueError) as exc:
        return event_id, f"does not name the original record it re-drives ({exc})"
    if topic != origin:
        return event_id, f"claims to come from {topic}, not from {origin}"
    original = _fetch(consumer, source, PartitionRef(topic, partition), offset)
    if original is None:
        return event_id, f"its original {topic}[{partition}] offset {offset} does not exist"
    if original.value != record.value:
        return event_id, (f"differs from its original at {topic}[{partition}] offset {offset} "
                          "(a retry record must be the original, untouched)")
    return None


def _fetch(
    consumer: KafkaConsumer, source: KafkaLog, ref: PartitionRef, offset: int
) -> LogRecord | None:
    tp = TopicPartition(ref.topic, ref.partition)
    if ref.partition not in (consumer.partitions_for_topic(ref.topic) or set()):
        return None
    if not consumer.beginning_offsets([tp])[tp] <= offset < consumer.end_offsets([tp])[tp]:
        return None
    for record in read(source, PartitionSpan(ref, offset, offset + 1), consumer):
        return record if record.offset == offset else None
    return None
