"""Where the log is read from: the Kafka event topics, or an export on disk.

Kafka is read with kafka-python by manual partition assignment (no consumer group, no
commits: the auditor must not disturb anyone), ``read_committed``, with CRC checks on
(``crc32c`` makes them fast; they are never turned off). An export is a directory of
JSON-lines files, one per topic-partition, with a manifest of their SHA-256 digests
(see export.py); its manifest is verified before a single record is read.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from wastetrail_contracts.topics import EVENT_TOPICS

from wastetrail_audit.records import LogRecord, PartitionRef

MANIFEST = "manifest.json"
EXPORT_FORMAT = "wastetrail-audit-export/1"
STALL_SECONDS = 30.0


class SourceError(RuntimeError):
    """The log cannot be read (broker unreachable, export damaged)."""


@dataclass(frozen=True)
class KafkaLog:
    """The live event topics."""

    bootstrap: str
    topic_prefix: str = ""

    def describe(self) -> str:
        """For summaries."""
        return f"kafka {self.bootstrap} prefix {self.topic_prefix!r}"


@dataclass(frozen=True)
class ExportLog:
    """An export directory written by ``wastetrail audit export``."""

    directory: Path

    def describe(self) -> str:
        """For summaries."""
        return f"export {self.directory}"


LogSource = KafkaLog | ExportLog


@dataclass(frozen=True)
class PartitionSpan:
    """The offsets of one partition to read: [start, end)."""

    ref: PartitionRef
    start: int
    end: int

    @property
    def size(self) -> int:
        """How many offsets the span covers."""
        return max(0, self.end - self.start)


def event_topics(prefix: str) -> dict[str, str]:
    """service → the qualified topic name, for every event topic."""
    return {service: spec.qualified(prefix) for service, spec in EVENT_TOPICS.items()}


def kafka_consumer(bootstrap: str) -> KafkaConsumer:
    """A consumer for manual assignment that never commits and always checks CRCs."""
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            check_crcs=True,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            client_id="wastetrail-audit",
        )
    except KafkaError as exc:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


def plan(source: LogSource, start: dict[PartitionRef, int] | None = None
         ) -> tuple[list[PartitionSpan], list[str]]:
    """Every partition to read with its offsets, and warnings (e.g. a missing topic)."""
    start = start or {}
    if isinstance(source, ExportLog):
        return _plan_export(source, start)
    consumer = kafka_consumer(source.bootstrap)
    warnings: list[str] = []
    spans: list[PartitionSpan] = []
    try:
        refs: list[PartitionRef] = []
        for topic in event_topics(source.topic_prefix).values():
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                warnings.append(f"topic {topic} does not exist: nothing to verify there")
                continue
            refs.extend(PartitionRef(topic, p) for p in sorted(partitions))
        tps = [TopicPartition(r.topic, r.partition) for r in refs]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        for ref, tp in zip(refs, tps, strict=True):
            first = int(begin[tp])
            if first > 0 and ref not in start:
                warnings.append(
                    f"{ref.label}: the log starts at offset {first}, not 0 — "
                    "earlier records were deleted (retention must be forever)"
                )
            spans.append(PartitionSpan(ref, max(first, start.get(ref, 0)), int(end[tp])))
    finally:
        consumer.close()
    return spans, warnings


def read(source: LogSource, span: PartitionSpan,
         consumer: KafkaConsumer | None = None) -> Iterator[LogRecord]:
    """The records of one span, in offset order."""
    if isinstance(source, ExportLog):
        yield from _read_export(source, span)
        return
    own = consumer is None
    consumer = consumer or kafka_consumer(source.bootstrap)
    try:
        yield from _read_kafka(consumer, span)
    finally:
        if own:
            consumer.close()


def _read_kafka(consumer: KafkaConsumer, span: PartitionSpan) -> Iterator[LogRecord]:
    tp = TopicPartition(span.ref.topic, span.ref.partition)
    consumer.assign([tp])
    consumer.seek(tp, span.start)
    position = span.start
    last_progress = time.monotonic()
    while position < span.end:
        batches = consumer.poll(timeout_ms=500, max_records=5000)
        for record in batches.get(tp, []):
            if record.offset >= span.end:
                break
            yield LogRecord(
                topic=record.topic, partition=record.partition, offset=record.offset,
                timestamp=record.timestamp, key=record.key, value=record.value,
            )
        new_position = int(consumer.position(tp))
        if new_position > position:
            position = new_position
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > STALL_SECONDS:
            raise SourceError(
                f"{span.ref.label}: no progress at offset {position} for {STALL_SECONDS:.0f}s"
            )


# -- exports ----------------------------------------------------------------------------


def export_file_name(ref: PartitionRef) -> str:
    """The file of one topic-partition inside an export."""
    return f"{ref.topic}-{ref.partition}.jsonl"


def read_manifest(directory: Path) -> dict[str, object]:
    """The export's manifest (not verified)."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read the manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise SourceError(f"{path}: not a {EXPORT_FORMAT} manifest")
    return data


def manifest_files(manifest: dict[str, object]) -> list[dict[str, object]]:
    """The file entries of a manifest."""
    files = manifest.get("files")
    if not isinstance(files, list):
        raise SourceError("manifest has no file list")
    return [f for f in files if isinstance(f, dict)]


def _plan_export(source: ExportLog, start: dict[PartitionRef, int]
                 ) -> tuple[list[PartitionSpan], list[str]]:
    manifest = read_manifest(source.directory)
    spans = []
    for entry in manifest_files(manifest):
        ref = PartitionRef(str(entry["topic"]), int(str(entry["partition"])))
        first = int(str(entry["start_offset"]))
        spans.append(
            PartitionSpan(ref, max(first, start.get(ref, 0)), int(str(entry["end_offset"])))
        )
    return sorted(spans, key=lambda s: s.ref), []


def encode_bytes(data: bytes | None) -> dict[str, str | None]:
    """Bytes for a JSON line: as text when they are UTF-8, else base64."""
    if data is None:
        return {"text": None}
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(data).decode("ascii")}


def decode_bytes(value: object) -> bytes | None:
    """The inverse of ``encode_bytes``."""
    if not isinstance(value, dict):
        raise SourceError("export line: a key or value is not an object")
    if "b64" in value:
        return base64.b64decode(str(value["b64"]))
    text = value.get("text")
    return None if text is None else str(text).encode("utf-8")


def _read_export(source: ExportLog, span: PartitionSpan) -> Iterator[LogRecord]:
    path = source.directory / export_file_name(span.ref)
    with path.open("r", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                item = json.loads(line)
                offset = int(item["offset"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(f"{path}:{number}: not an export line ({exc})") from exc
            if offset < span.start:
                continue
            if offset >= span.end:
                break
            yield LogRecord(
                topic=span.ref.topic, partition=span.ref.partition, offset=offset,
                timestamp=int(item.get("timestamp", -1)),
                key=decode_bytes(item.get("key")), value=decode_bytes(item.get("value")),
            )
