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
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from wastetrail_contracts.topics import EVENT_TOPICS, kafka_client_options

from wastetrail_audit.records import Failure, LogRecord, PartitionRef

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
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
            bootstrap_servers=bootstrap, **kafka_client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            check_crcs=True,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            client_id="wastetrail-audit",
            # Asking for a deleted topic must not re-create it (the broker may auto-create).
            allow_auto_create_topics=False,
        )
    except KafkaError as exc:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


def plan(source: LogSource, start: dict[PartitionRef, int] | None = None,
         verified: dict[PartitionRef, int] | None = None,
         ) -> tuple[list[PartitionSpan], list[Failure]]:
    """Every partition to read with its offsets, and what is missing, as failures.

    ``start``: where to continue each partition (a replay checkpoint file). ``verified``:
    up to which offset the auditor verified each partition before (its heads file); a
    partition that starts at 0 is read whole, one that starts later is read from there.
    Absence is a failure: a catalog topic or partition that does not exist, and a partition
    whose first offset is not 0 unless everything before it was verified already.
    """
    start = dict(start or {})
    for ref, until in (verified or {}).items():
        start.setdefault(ref, until)
    if isinstance(source, ExportLog):
        return _plan_export(source, start, verified or {})
    consumer = kafka_consumer(source.bootstrap)
    missing: list[Failure] = []
    spans: list[PartitionSpan] = []
    try:
        refs: list[PartitionRef] = []
        for service, topic in event_topics(source.topic_prefix).items():
            partitions = consumer.partitions_for_topic(topic) or set()
            missing.extend(_missing_partitions(service, topic, partitions))
            refs.extend(PartitionRef(topic, p) for p in sorted(partitions))
        tps = [TopicPartition(r.topic, r.partition) for r in refs]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        for ref, tp in zip(refs, tps, strict=True):
            span, gap = _span(ref, int(begin[tp]), int(end[tp]), start, verified or {})
            spans.append(span)
            if gap is not None:
                missing.append(gap)
    finally:
        consumer.close()
    return spans, missing


def _missing_partitions(service: str, topic: str, partitions: set[int]) -> list[Failure]:
    expected = EVENT_TOPICS[service].partitions
    if not partitions:
        return [Failure(topic, p, 0, "", "missing_topic",
                        f"the {service} event topic does not exist: its whole log is gone")
                for p in range(expected)]
    return [Failure(topic, p, 0, "", "missing_topic",
                    f"partition {p} of the {service} event topic does not exist")
            for p in range(expected) if p not in partitions]


def _span(ref: PartitionRef, first: int, end: int, start: dict[PartitionRef, int],
          verified: dict[PartitionRef, int]) -> tuple[PartitionSpan, Failure | None]:
    if ref in verified and ref in start and start[ref] == verified[ref] and first == 0:
        start = {}  # the whole partition is there: read it all, and check the heads on the way
    return (PartitionSpan(ref, max(first, start.get(ref, 0)), end),
            _head_gap(ref, first, start.get(ref)))


def _head_gap(ref: PartitionRef, first: int, verified_until: int | None) -> Failure | None:
    """A partition that starts after offset 0 lost its head, unless the auditor verified
    everything up to where it starts now (then only already-verified records are gone)."""
    if first == 0 or (verified_until is not None and first <= verified_until):
        return None
    since = 0 if verified_until is None else verified_until
    return Failure(ref.topic, ref.partition, first, "", "truncated_head",
                   f"the partition starts at offset {first}: offsets {since}..{first - 1} "
                   "were deleted before anyone verified them")


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
                headers=tuple((k, bytes(v or b"")) for k, v in record.headers or ()),
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


def read_format_file(path: Path, file_format: str, what: str) -> dict[str, Any]:
    """A JSON object whose ``format`` is ``file_format`` (manifest, heads, checkpoint and
    trust files); SourceError naming ``what`` otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: cannot read the {what} ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise SourceError(f"{path}: not a {file_format} {what}")
    return data


def write_format_file(path: Path, data: Mapping[str, object]) -> None:
    """Write a JSON file atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(directory: Path) -> dict[str, object]:
    """The export's manifest (not verified)."""
    return read_format_file(directory / MANIFEST, EXPORT_FORMAT, "manifest")


def manifest_files(manifest: dict[str, object]) -> list[dict[str, object]]:
    """The file entries of a manifest."""
    files = manifest.get("files")
    if not isinstance(files, list):
        raise SourceError("manifest has no file list")
    return [f for f in files if isinstance(f, dict)]


def _plan_export(source: ExportLog, start: dict[PartitionRef, int],
                 verified: dict[PartitionRef, int]) -> tuple[list[PartitionSpan], list[Failure]]:
    manifest = read_manifest(source.directory)
    spans = []
    missing: list[Failure] = []
    found: dict[str, set[int]] = {}
    for entry in manifest_files(manifest):
        ref = PartitionRef(str(entry["topic"]), int(str(entry["partition"])))
        found.setdefault(str(entry.get("service")), set()).add(ref.partition)
        span, gap = _span(ref, int(str(entry["start_offset"])), int(str(entry["end_offset"])),
                          start, verified)
        spans.append(span)
        if gap is not None:
            missing.append(gap)
    prefix = manifest_prefix(manifest)
    for service, spec in EVENT_TOPICS.items():
        missing.extend(_missing_partitions(service, spec.qualified(prefix),
                                           found.get(service, set())))
    return sorted(spans, key=lambda s: s.ref), missing


def manifest_prefix(manifest: dict[str, object]) -> str:
    """The topic prefix the exported log was read under."""
    origin = manifest.get("source")
    return str(origin.get("topic_prefix", "")) if isinstance(origin, dict) else ""


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
