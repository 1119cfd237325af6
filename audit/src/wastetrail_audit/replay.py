"""Replay the whole log: verify every record and build the SQLite projection.

Each partition is one task, verified by one worker process from start to end (a chain
must be read in order); up to ``workers`` partitions run at once. Workers write their
own part files under ``<work_dir>/parts``; the parent merges them into
``<work_dir>/projection.sqlite``, prints progress (events/s) and failures as partitions
finish, and saves a checkpoint file (per partition: next offset and chain heads) from
which a later replay can continue with ``--from-checkpoint``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wastetrail_audit import projection
from wastetrail_audit.chainaudit import ChainProgress
from wastetrail_audit.export import (
    manifest_digest,
    manifest_services,
    service_of,
    verify_manifest,
    verify_manifest_signature,
)
from wastetrail_audit.heads import (
    DEFAULT_MAX_UNSIGNED,
    KnownHeads,
    check_heads,
    check_unsigned,
    check_witnesses,
    read_heads,
    write_heads,
)
from wastetrail_audit.keys import KeyRing
from wastetrail_audit.records import Failure, PartitionRef
from wastetrail_audit.retries import verify_retry_topics
from wastetrail_audit.source import (
    ExportLog,
    KafkaLog,
    LogSource,
    SourceError,
    event_topics,
    manifest_prefix,
    plan,
    read_format_file,
    read_manifest,
    write_format_file,
)
from wastetrail_audit.worker import (
    PartitionResult,
    PartitionTask,
    Rotation,
    init_worker,
    verify_partition,
)

CHECKPOINT_FORMAT = "wastetrail-audit-checkpoint/1"
MAX_FAILURES_KEPT = 10_000

# forkserver: workers start from a clean, preloaded process — fast to fork and safe even
# when the caller runs threads (an HTTP stub, a web server).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["wastetrail_audit.worker"])


@dataclass(frozen=True)
class Progress:
    """A progress sample for the progress line."""

    done: int
    total: int
    elapsed: float
    partitions_done: int
    partitions: int

    @property
    def rate(self) -> float:
        """Events (records) per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """``replay: 1,200/5,000 records (24.0 %), 8,100 events/s, 3/16 partitions``."""
        share = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"replay: {self.done:,}/{self.total:,} records ({share:.1f} %), "
            f"{self.rate:,.0f} events/s, {self.partitions_done}/{self.partitions} partitions"
        )


@dataclass
class ReplaySummary:
    """The outcome of one replay."""

    source: str
    projection: Path
    partitions: list[PartitionResult]
    failures: list[Failure]
    failure_count: int
    warnings: list[str]
    elapsed: float
    manifest_sha256: str | None = None
    checkpoint_file: Path | None = None
    resumed: bool = False
    type_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    retry_records: int = 0

    @property
    def rotations(self) -> list[Rotation]:
        """Verified key rotations, once each (every chain of the service announces it)."""
        return list({r.new_key_id: r for p in self.partitions for r in p.rotations}.values())

    @property
    def events(self) -> int:
        """Events that decoded and passed the schema."""
        return sum(p.events for p in self.partitions)

    @property
    def records(self) -> int:
        """Records read."""
        return sum(p.records for p in self.partitions)

    @property
    def ok(self) -> bool:
        """No failure at all."""
        return self.failure_count == 0

    @property
    def chains(self) -> dict[str, ChainProgress]:
        """Every chain's progress."""
        return {c: p for part in self.partitions for c, p in part.chains.items()}

    def to_json(self) -> dict[str, object]:
        """The ``--json`` summary."""
        chains = self.chains
        return {
            "ok": self.ok,
            "source": self.source,
            "manifest_sha256": self.manifest_sha256,
            "resumed_from_checkpoint": self.resumed,
            "records": self.records,
            "events": self.events,
            "duplicates": sum(p.duplicates for p in self.partitions),
            "retry_records": self.retry_records,
            "elapsed_seconds": round(self.elapsed, 3),
            "events_per_second": round(self.records / self.elapsed, 1) if self.elapsed else 0.0,
            "topics": {
                topic: {"events": sum(types.values()), "types": dict(sorted(types.items()))}
                for topic, types in sorted(self.type_counts.items())
            },
            "partitions": [
                {"topic": p.topic, "partition": p.partition, "start_offset": p.start_offset,
                 "next_offset": p.next_offset, "records": p.records, "events": p.events,
                 "duplicates": p.duplicates, "failures": p.failures, "error": p.error}
                for p in sorted(self.partitions, key=lambda p: (p.topic, p.partition))
            ],
            "chains": {c: p.as_json() for c, p in sorted(chains.items())},
            "checkpoints_verified": sum(p.checkpoints for p in chains.values()),
            "unsigned_events": sum(p.unsigned_tail for p in chains.values()),
            "failure_count": self.failure_count,
            "failures": [f.as_json() for f in self.failures],
            "failures_truncated": self.failure_count > len(self.failures),
            "warnings": self.warnings,
            "projection": str(self.projection),
            "checkpoint_file": str(self.checkpoint_file) if self.checkpoint_file else None,
        }


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay."""

    source: LogSource
    keys: KeyRing
    work_dir: Path
    workers: int | None = None
    from_checkpoint: Path | None = None
    save_checkpoint: Path | None = None
    on_progress: Callable[[Progress], None] | None = None
    on_failure: Callable[[Failure], None] | None = None
    progress_interval: float = 1.0
    heads: Path | None = None  # the auditor's heads file: read, checked, updated on success
    max_unsigned: int = DEFAULT_MAX_UNSIGNED


def replay(options: ReplayOptions) -> ReplaySummary:
    """Verify every record of the log and build the projection; see the module docstring."""
    started = time.monotonic()
    source = options.source
    manifest_sha: str | None = None
    services: dict[str, tuple[str, str]]
    if isinstance(source, ExportLog):
        problems = verify_manifest(source.directory)
        if problems:
            raise SourceError("the export does not match its manifest:\n  " + "\n  ".join(problems))
        unsigned = verify_manifest_signature(source.directory, options.keys.owned_by("audit"))
        if unsigned is not None:
            raise SourceError(unsigned)
        manifest_sha = manifest_digest(source.directory)
        services = manifest_services(source.directory)
    start_offsets, start_chains, saved_source = _read_checkpoint(options.from_checkpoint)
    known = read_heads(options.heads) if options.heads is not None else KnownHeads()
    spans, missing = plan(source, start_offsets, known.offsets)
    warnings: list[str] = []
    if not spans:
        # Most likely a wrong --topic-prefix: saying "OK, 0 events" would be a false all-clear.
        raise SourceError(f"no event topic found ({source.describe()})")
    if saved_source is not None and saved_source != source.describe():
        warnings.append(f"the checkpoint was saved reading {saved_source}, "
                        f"this replay reads {source.describe()}")
    if isinstance(source, KafkaLog):
        services = {s.ref.topic: service_of(s.ref.topic, source.topic_prefix) for s in spans}
    if not options.keys.public_keys:
        warnings.append("no public keys loaded: every checkpoint will be an unknown key")

    work = options.work_dir
    parts_dir = work / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    target = work / "projection.sqlite"
    resumed = options.from_checkpoint is not None
    if not resumed and target.exists():
        target.unlink()
    for stale in parts_dir.glob("*.sqlite"):
        stale.unlink()

    raw_keys = {
        kid: key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        for kid, key in options.keys.public_keys.items()
    }
    tasks = [
        PartitionTask(
            index=i, source=source, span=span,
            service=services[span.ref.topic][0], unprefixed_topic=services[span.ref.topic][1],
            public_keys=raw_keys, key_services=dict(options.keys.services),
            start_chains=start_chains.get(span.ref) or (
                known.progress(span.ref) if span.start > 0 else {}),
            parts_dir=parts_dir, expect=known.expect(span.ref),
            key_validity=dict(options.keys.validity),
        )
        for i, span in enumerate(spans)
    ]
    summary = ReplaySummary(
        source=source.describe(), projection=target, partitions=[], failures=[],
        failure_count=0, warnings=warnings, elapsed=0.0, manifest_sha256=manifest_sha,
        resumed=resumed,
    )
    total = sum(s.size for s in spans)
    _run(tasks, options, summary, total, started)
    _absence(options, known, missing, summary)
    projection.merge(sorted(parts_dir.glob("*.sqlite")), target)
    failed_views = projection.finalize(target)
    summary.warnings.extend(f"view {v} could not be created" for v in failed_views)
    summary.failures.sort()
    types: dict[str, Counter[str]] = {}
    for part in summary.partitions:
        types.setdefault(part.topic, Counter()).update(part.type_counts)
    summary.type_counts = {t: dict(c) for t, c in types.items()}
    summary.elapsed = time.monotonic() - started
    if options.heads is not None and summary.ok:
        write_heads(options.heads, summary.partitions)
    checkpoint_path = options.save_checkpoint or (work / "checkpoint.json")
    _write_checkpoint(checkpoint_path, summary)
    summary.checkpoint_file = checkpoint_path
    return summary


def _run(
    tasks: list[PartitionTask], options: ReplayOptions, summary: ReplaySummary,
    total: int, started: float,
) -> None:
    if not tasks:
        return
    workers = options.workers or min(len(tasks), os.cpu_count() or 1)
    workers = max(1, min(workers, len(tasks)))
    counters = _CONTEXT.Array("q", len(tasks), lock=False)
    finished: dict[int, int] = {}
    last_report = 0.0

    def report(force: bool = False) -> None:
        nonlocal last_report
        now = time.monotonic()
        if options.on_progress is None:
            return
        if not force and now - last_report < options.progress_interval:
            return
        last_report = now
        done = sum(finished.get(i, counters[i]) for i in range(len(tasks)))
        options.on_progress(Progress(done, total, now - started, len(finished), len(tasks)))

    # ProcessPoolExecutor, not Pool: a worker that dies (or cannot even start) breaks the
    # pool with an error instead of being respawned forever.
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=_CONTEXT, initializer=init_worker, initargs=(counters,)
    ) as pool:
        pending = {pool.submit(verify_partition, task) for task in tasks}
        while pending:
            done, pending = wait(
                pending, timeout=options.progress_interval, return_when=FIRST_COMPLETED
            )
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool as exc:
                    raise SourceError(f"a replay worker process died: {exc}") from exc
                finished[result.index] = result.records
                summary.partitions.append(result)
                _collect_failures(result, options, summary)
            report()
    report(force=True)


def _absence(options: ReplayOptions, known: KnownHeads, missing: list[Failure],
             summary: ReplaySummary) -> None:
    """What is missing, once every partition is verified (heads.py): missing topics and
    deleted heads, chains shorter than the heads file or than another service's signed
    statement, unsigned tails over the bound, and forged records on the retry topics."""
    source = options.source
    if isinstance(source, KafkaLog):
        prefix = source.topic_prefix
        summary.retry_records, forged = verify_retry_topics(source)
    else:
        prefix, forged = manifest_prefix(read_manifest(source.directory)), []
    topics = event_topics(prefix)
    found = [
        *missing,
        *check_heads(known, summary.partitions),
        *check_witnesses(summary.partitions, topics.get),
        *check_unsigned(summary.partitions, options.max_unsigned),
        *forged,
    ]
    summary.failure_count += len(found)
    for failure in sorted(found):
        if len(summary.failures) < MAX_FAILURES_KEPT:
            summary.failures.append(failure)
        if options.on_failure is not None:
            options.on_failure(failure)


def _collect_failures(
    result: PartitionResult, options: ReplayOptions, summary: ReplaySummary
) -> None:
    summary.failure_count += result.failures
    for failure in sorted(result.failure_list):
        if len(summary.failures) < MAX_FAILURES_KEPT:
            summary.failures.append(failure)
        if options.on_failure is not None:
            options.on_failure(failure)
    if result.failures > len(result.failure_list):
        summary.warnings.append(
            f"{result.topic}[{result.partition}]: only the first {len(result.failure_list)} "
            f"of {result.failures} failures are listed; all are in the projection's _failures"
        )
    result.failure_list = []


def _read_checkpoint(
    path: Path | None,
) -> tuple[dict[PartitionRef, int], dict[PartitionRef, dict[str, ChainProgress]], str | None]:
    if path is None:
        return {}, {}, None
    data = read_format_file(path, CHECKPOINT_FORMAT, "checkpoint file")
    offsets: dict[PartitionRef, int] = {}
    chains: dict[PartitionRef, dict[str, ChainProgress]] = {}
    for item in data.get("partitions", []):
        ref = PartitionRef(str(item["topic"]), int(item["partition"]))
        offsets[ref] = int(item["next_offset"])
        chains[ref] = {
            str(c): ChainProgress.from_json(p) for c, p in dict(item.get("chains", {})).items()
        }
    return offsets, chains, str(data.get("source"))


def _write_checkpoint(path: Path, summary: ReplaySummary) -> None:
    data = {
        "format": CHECKPOINT_FORMAT,
        "saved_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "source": summary.source,
        "partitions": [
            {"topic": p.topic, "partition": p.partition, "next_offset": p.next_offset,
             "chains": {c: cp.as_json() for c, cp in sorted(p.chains.items())}}
            for p in sorted(summary.partitions, key=lambda p: (p.topic, p.partition))
        ],
    }
    write_format_file(path, data)
