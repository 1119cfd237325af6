"""Verify and project one partition: what each replay worker process runs.

A worker keeps only per-chain state (bounded by the verifier's window) and a batch of
rows for its own SQLite part file, so its memory does not grow with the partition.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, MutableSequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from wastetrail_contracts.codec import (
    ContractError,
    InvalidEnvelope,
    UnknownEventType,
    envelope_from_loaded,
    load_canonical,
    parse_payload,
)
from wastetrail_contracts.events.integrity import KeyRotated
from wastetrail_contracts.integrity import rotation_message
from wastetrail_contracts.keys import key_id_for
from wastetrail_contracts.topics import publishes

from wastetrail_audit.chainaudit import ChainProgress, PartitionChainAudit
from wastetrail_audit.projection import ProjectionWriter
from wastetrail_audit.records import Failure, LogRecord
from wastetrail_audit.source import (
    KafkaLog,
    LogSource,
    PartitionSpan,
    SourceError,
    kafka_consumer,
    read,
)

_Fail = Callable[[int, str, str, str], None]

PROGRESS_EVERY = 500
MAX_REPORTED = 10_000


@dataclass(frozen=True)
class PartitionTask:
    """Everything a worker needs, picklable: keys travel as raw 32-byte public keys."""

    index: int
    source: LogSource
    span: PartitionSpan
    service: str  # the service whose topic this is
    unprefixed_topic: str  # the topic's catalog name, as chain ids may carry it
    public_keys: dict[str, bytes]
    key_services: dict[str, str]
    start_chains: dict[str, ChainProgress]
    parts_dir: Path
    # chain → (seq, hash) the auditor saw before (its heads file): the hash met at that seq
    # is reported back, so the replay can tell an extension from a rewrite.
    expect: dict[str, tuple[int, str]] = field(default_factory=dict)
    key_validity: dict[str, tuple[str, str]] = field(default_factory=dict)  # ISO from, until


@dataclass(frozen=True)
class WitnessClaim:
    """A head of another service's chain, signed in a checkpoint of this partition."""

    chain_id: str
    chain_seq: int
    hash: str
    witness_topic: str
    witness_partition: int
    witness_offset: int


@dataclass(frozen=True)
class Rotation:
    """A key rotation whose signature by the old key verified."""

    service: str
    old_key_id: str
    new_key_id: str
    new_public_key: str  # raw, hex
    rotated_at: str


def _rotation(service: str, event: KeyRotated, raw: Mapping[str, object],
              audit: PartitionChainAudit) -> Rotation | str:
    """The rotation, trusted from now on in this partition, or why it cannot be."""
    old = audit.trusts(event.old_key_id, service)
    if old is None:
        return f"announced under key {event.old_key_id}, which is not a trusted {service} key"
    payload = raw.get("payload")
    stamp = str(payload.get("rotated_at")) if isinstance(payload, Mapping) else ""
    new = Ed25519PublicKey.from_public_bytes(bytes.fromhex(event.new_public_key))
    if key_id_for(new) != event.new_key_id:
        return f"the new key's id is {key_id_for(new)}, not {event.new_key_id}"
    message = rotation_message(service, event.old_key_id, event.new_key_id,
                               event.new_public_key, stamp)
    try:
        old.verify(bytes.fromhex(event.signature), message)
    except InvalidSignature:
        return f"the rotation to key {event.new_key_id} is not signed by key {event.old_key_id}"
    audit.trust_key(event.new_key_id, new, service)
    return Rotation(service, event.old_key_id, event.new_key_id, event.new_public_key, stamp)


@dataclass
class PartitionResult:
    """What a worker reports back (small: counts, chain heads, the failure count)."""

    index: int
    topic: str
    partition: int
    start_offset: int
    next_offset: int
    records: int = 0
    events: int = 0
    duplicates: int = 0  # exact redeliveries: verified, not projected twice
    failures: int = 0
    type_counts: dict[str, int] = field(default_factory=dict)
    chains: dict[str, ChainProgress] = field(default_factory=dict)
    failure_list: list[Failure] = field(default_factory=list)  # the first MAX_REPORTED
    # chain → (hash, offset) of the event at the seq the heads file expects
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)
    checkpoint_hashes: dict[str, dict[int, str]] = field(default_factory=dict)
    claims: dict[str, WitnessClaim] = field(default_factory=dict)  # the highest per chain
    rotations: list[Rotation] = field(default_factory=list)  # verified key rotations
    elapsed: float = 0.0
    error: str | None = None


_progress: MutableSequence[int] | None = None
_consumer: KafkaConsumer | None = None
_consumer_bootstrap: str | None = None
_writer: ProjectionWriter | None = None
_writer_dir: Path | None = None


def init_worker(progress: MutableSequence[int]) -> None:
    """Pool initializer: the shared per-task progress counters."""
    global _progress
    _progress = progress


def _kafka(bootstrap: str) -> KafkaConsumer:
    # One consumer per process, reused for every partition the process verifies.
    global _consumer, _consumer_bootstrap
    if _consumer is None or _consumer_bootstrap != bootstrap:
        if _consumer is not None:
            _consumer.close()
        _consumer = kafka_consumer(bootstrap)
        _consumer_bootstrap = bootstrap
    return _consumer


def _projection_writer(parts_dir: Path) -> ProjectionWriter:
    # One part file per process, reused for every partition it verifies: creating the
    # schema costs more than a small partition.
    global _writer, _writer_dir
    if _writer is None or _writer_dir != parts_dir:
        if _writer is not None:
            _writer.close()
        _writer = ProjectionWriter(parts_dir / f"{os.getpid()}.sqlite")
        _writer_dir = parts_dir
    return _writer


def verify_partition(task: PartitionTask) -> PartitionResult:
    """Read one partition in offset order: verify, project, count. Never raises."""
    started = time.monotonic()
    keys = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in task.public_keys.items()}
    audit = PartitionChainAudit(keys, task.key_services, start=task.start_chains)
    writer = _projection_writer(task.parts_dir)
    ref = task.span.ref
    result = PartitionResult(
        index=task.index, topic=ref.topic, partition=ref.partition,
        start_offset=task.span.start, next_offset=task.span.start,
    )
    types: Counter[str] = Counter()

    def fail(offset: int, event_id: str, kind: str, detail: str) -> None:
        failure = Failure(ref.topic, ref.partition, offset, event_id, kind, detail)
        result.failures += 1
        if len(result.failure_list) < MAX_REPORTED:
            result.failure_list.append(failure)
        writer.add_failure(failure)

    try:
        consumer = None
        if isinstance(task.source, KafkaLog):
            consumer = _kafka(task.source.bootstrap)
        for record in read(task.source, task.span, consumer):
            if _check(task, record, audit, writer, types, fail, result):
                result.duplicates += 1
            _note_checkpoints(audit, result, task, fail)
            result.records += 1
            result.next_offset = record.offset + 1
            if _progress is not None and result.records % PROGRESS_EVERY == 0:
                _progress[task.index] = result.records
        result.next_offset = max(result.next_offset, task.span.end)
    except (KafkaError, SourceError, OSError) as exc:
        # A CRC failure or an unreadable export line stops this partition where it is.
        fail(result.next_offset, "", "corrupt_record", f"cannot read further: {exc}")
        result.error = str(exc)
    for failure in audit.finish():
        fail(_offset(failure.offset, result.next_offset), failure.event_id,
             str(failure.kind), failure.detail)
    _note_checkpoints(audit, result, task, fail)
    writer.flush()
    if _progress is not None:
        _progress[task.index] = result.records
    result.type_counts = dict(types)
    result.events = sum(types.values())
    result.chains = audit.progress()
    result.elapsed = time.monotonic() - started
    return result


def _offset(value: int | None, fallback: int) -> int:
    return fallback if value is None else value


def _note_checkpoints(
    audit: PartitionChainAudit, result: PartitionResult, task: PartitionTask, fail: _Fail
) -> None:
    """Keep the hash of every verified checkpoint and the heads it witnesses (the highest
    per witnessed chain): the replay checks them against the other partitions. A key
    signs only within the validity the trust file gives it."""
    for checkpoint in audit.verified_checkpoints():
        outside = _outside_validity(checkpoint.payload, task.key_validity)
        if outside is not None:
            fail(_offset(checkpoint.offset, result.next_offset), "", "forged_checkpoint",
                 outside)
            continue
        result.checkpoint_hashes.setdefault(checkpoint.chain_id, {})[
            checkpoint.chain_seq] = checkpoint.hash
        witnessed = checkpoint.payload.get("witnessed") or ()
        for head in witnessed if isinstance(witnessed, list | tuple) else ():
            if not isinstance(head, dict):
                continue
            chain, seq = str(head.get("chain")), head.get("seq")
            known = result.claims.get(chain)
            if isinstance(seq, int) and (known is None or seq > known.chain_seq):
                result.claims[chain] = WitnessClaim(
                    chain, seq, str(head.get("hash")), result.topic, result.partition,
                    _offset(checkpoint.offset, result.next_offset))


def _outside_validity(
    payload: Mapping[str, object], validity: Mapping[str, tuple[str, str]]
) -> str | None:
    key_id = str(payload.get("key_id"))
    valid_from, valid_until = validity.get(key_id, ("", ""))
    if not valid_from and not valid_until:
        return None
    try:
        signed = datetime.fromisoformat(str(payload.get("signed_at")))
        if valid_from and signed < datetime.fromisoformat(valid_from):
            return f"signed at {signed.isoformat()} by key {key_id}, valid only from {valid_from}"
        if valid_until and signed >= datetime.fromisoformat(valid_until):
            return f"signed at {signed.isoformat()} by key {key_id}, valid only until {valid_until}"
    except ValueError as exc:
        return f"cannot tell when key {key_id} signed: {exc}"
    return None


_catalog: dict[tuple[str, str], bool] = {}


def _in_catalog(service: str, event_type: str) -> bool:
    known = _catalog.get((service, event_type))
    if known is None:
        known = _catalog[(service, event_type)] = publishes(service, event_type)
    return known


def _check(
    task: PartitionTask,
    record: LogRecord,
    audit: PartitionChainAudit,
    writer: ProjectionWriter,
    types: Counter[str],
    fail: _Fail,
    result: PartitionResult,
) -> bool:
    """Check and project one record; True if it was an exact redelivery (not projected)."""
    offset = record.offset
    if record.value is None:
        fail(offset, "", "invalid_envelope", "empty record (a tombstone in an event topic)")
        return False
    try:
        raw, digest = load_canonical(record.value)
    except InvalidEnvelope as exc:
        fail(offset, "", "invalid_envelope", exc.reason)
        return False
    event_id = str(raw.get("event_id", ""))
    expected = task.expect.get(raw.get("chain_id")) if task.expect else None  # type: ignore[arg-type]
    if expected is not None and raw.get("chain_seq") == expected[0]:
        result.seen[str(raw["chain_id"])] = (str(raw.get("hash")), offset)
    for failure in audit.feed(offset, raw, digest):
        fail(_offset(failure.offset, offset), failure.event_id, str(failure.kind), failure.detail)
    if audit.last_was_duplicate:
        return True
    try:
        envelope = envelope_from_loaded(raw)
    except InvalidEnvelope as exc:
        fail(offset, event_id, "invalid_envelope", exc.reason)
        return False
    if envelope.service != task.service:
        fail(offset, event_id, "misplaced",
             f"an event of service {envelope.service!r} in the {task.service} topic")
    elif not _chain_fits(envelope.chain_id, task, record.partition):
        fail(offset, event_id, "misplaced",
             f"chain {envelope.chain_id!r} does not belong to {record.topic}[{record.partition}]")
    if not _in_catalog(task.service, envelope.type):
        fail(offset, event_id, "outside_catalog",
             f"{task.service} does not publish {envelope.type!r} (topics.PUBLISHES)")
        return False  # not projected: it would count as the other service's fact
    try:
        event = parse_payload(envelope)
    except UnknownEventType as exc:
        fail(offset, event_id, "unknown_type", exc.reason)
        return False
    except ContractError as exc:
        fail(offset, event_id, "invalid_payload", exc.reason)
        return False
    if isinstance(event, KeyRotated):
        rotation = _rotation(task.service, event, raw, audit)
        if isinstance(rotation, str):
            fail(offset, event_id, "forged_rotation", rotation)
        else:
            result.rotations.append(rotation)
    types[envelope.type] += 1
    writer.add(record.topic, record.partition, offset, envelope, event)
    return False


_fitting_chains: dict[tuple[str, str, str, int], frozenset[str]] = {}


def _chain_fits(chain: str, task: PartitionTask, partition: int) -> bool:
    # chain ids are service:topic:partition; the topic may or may not carry the prefix.
    key = (task.service, task.span.ref.topic, task.unprefixed_topic, partition)
    allowed = _fitting_chains.get(key)
    if allowed is None:
        allowed = _fitting_chains[key] = frozenset(
            f"{task.service}:{topic}:{partition}"
            for topic in (task.span.ref.topic, task.unprefixed_topic)
        )
    return chain in allowed
