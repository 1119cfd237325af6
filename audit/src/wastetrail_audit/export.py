"""Evidence to take away: the log written to files, with a manifest of SHA-256 digests.

Layout of an export directory::

    manifest.json                      format, source, time, one entry per file
    <topic>-<partition>.jsonl          one line per record, in offset order:
        {"offset": 12, "timestamp": 1735689600000,
         "key": {"text": "load-1"}, "value": {"text": "<the record's bytes as UTF-8>"}}

Bytes that are not UTF-8 are written as ``{"b64": ...}`` so nothing is lost. Each
manifest entry has ``sha256`` (of the file's bytes), ``records``, ``start_offset`` and
``end_offset``; ``manifest.sig`` signs the manifest's bytes with the exporting auditor's
Ed25519 key. Commands reading an export (``--source DIR``) refuse it unless the signature
verifies with a trusted export key, every file matches its digest and no file is missing
or extra.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from wastetrail_contracts.keys import key_id_for
from wastetrail_contracts.topics import EVENT_TOPICS

from wastetrail_audit.records import PartitionRef
from wastetrail_audit.source import (
    EXPORT_FORMAT,
    MANIFEST,
    SIGNATURE,
    KafkaLog,
    SourceError,
    encode_bytes,
    export_file_name,
    kafka_consumer,
    manifest_files,
    plan,
    read,
    read_manifest,
)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    directory: Path
    files: int
    records: int
    manifest_sha256: str
    warnings: list[str]


def service_of(topic: str, prefix: str) -> tuple[str, str]:
    """(service, catalog topic name) of a qualified event topic."""
    for service, spec in EVENT_TOPICS.items():
        if topic == spec.qualified(prefix):
            return service, spec.name
    raise SourceError(f"{topic} is not an event topic under prefix {prefix!r}")


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_log(
    source: KafkaLog, out: Path, on_partition: Callable[[PartitionRef, int], None] | None = None,
    signing_key: Ed25519PrivateKey | None = None,
) -> ExportResult:
    """Write every event topic-partition to ``out``, the manifest last, and its signature
    by the exporting auditor's key (``manifest.sig``) when ``signing_key`` is given."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        raise SourceError(f"{out} already holds an export; choose an empty directory")
    spans, missing = plan(source)
    warnings = [failure.line() for failure in missing]
    consumer = kafka_consumer(source.bootstrap)
    entries: list[dict[str, object]] = []
    total = 0
    try:
        for span in spans:
            name = export_file_name(span.ref)
            path = out / name
            tmp = out / f".{name}.tmp"
            digest = hashlib.sha256()
            count = 0
            last = span.start - 1
            with tmp.open("wb") as handle:
                for record in read(source, span, consumer):
                    line = json.dumps(
                        {"offset": record.offset, "timestamp": record.timestamp,
                         "key": encode_bytes(record.key), "value": encode_bytes(record.value)},
                        ensure_ascii=False, separators=(",", ":"),
                    ).encode("utf-8") + b"\n"
                    handle.write(line)
                    digest.update(line)
                    count += 1
                    last = record.offset
            os.replace(tmp, path)
            service, catalog = service_of(span.ref.topic, source.topic_prefix)
            entries.append({
                "path": name, "topic": span.ref.topic, "partition": span.ref.partition,
                "service": service, "catalog_topic": catalog,
                "start_offset": span.start, "end_offset": max(span.end, last + 1),
                "records": count, "sha256": digest.hexdigest(),
            })
            total += count
            if on_partition is not None:
                on_partition(span.ref, count)
    finally:
        consumer.close()
    manifest = {
        "format": EXPORT_FORMAT,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "source": {"bootstrap": source.bootstrap, "topic_prefix": source.topic_prefix},
        "warnings": warnings,
        "files": entries,
    }
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    (out / MANIFEST).write_bytes(data)
    if signing_key is not None:
        signature = {"key_id": key_id_for(signing_key.public_key()),
                     "signature": signing_key.sign(data).hex()}
        (out / SIGNATURE).write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")
    return ExportResult(
        directory=out, files=len(entries), records=total,
        manifest_sha256=hashlib.sha256(data).hexdigest(), warnings=warnings,
    )


def verify_manifest(directory: Path) -> list[str]:
    """Every way the export differs from its manifest; [] when it is intact."""
    manifest = read_manifest(directory)
    problems: list[str] = []
    listed: set[str] = set()
    for entry in manifest_files(manifest):
        name = str(entry.get("path"))
        listed.add(name)
        path = directory / name
        if Path(name).name != name:
            problems.append(f"{name}: a manifest path must be a plain file name")
            continue
        if not path.is_file():
            problems.append(f"{name}: listed in the manifest but missing")
            continue
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            problems.append(
                f"{name}: SHA-256 {actual} does not match the manifest's {entry.get('sha256')}"
            )
    for path in sorted(directory.glob("*.jsonl")):
        if path.name not in listed:
            problems.append(f"{path.name}: not listed in the manifest")
    return problems


def verify_manifest_signature(directory: Path, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Why the manifest is not signed by one of ``keys`` (the auditors' export keys), or
    None. Without it, whoever holds the files could rewrite them and their digests."""
    path = directory / SIGNATURE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        key = keys.get(str(data["key_id"]))
        signature = bytes.fromhex(str(data["signature"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{path}: the manifest carries no readable signature ({exc})"
    if key is None:
        return f"{path}: signed by key {data['key_id']}, which is not a trusted export key"
    try:
        key.verify(signature, (directory / MANIFEST).read_bytes())
    except InvalidSignature:
        return f"{directory / MANIFEST}: the signature does not verify (the manifest was rewritten)"
    return None


def manifest_services(directory: Path) -> dict[str, tuple[str, str]]:
    """topic → (service, catalog topic name), from an export's manifest."""
    return {
        str(e["topic"]): (str(e["service"]), str(e["catalog_topic"]))
        for e in manifest_files(read_manifest(directory))
    }


def manifest_digest(directory: Path) -> str:
    """SHA-256 of the manifest file: the one number that pins down the whole export."""
    return sha256_file(directory / MANIFEST)
