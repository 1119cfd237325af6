"""Audit replay with full verification vs one bare kafka-python consumer (same topics, same run).

The log is generated straight to Kafka: every event topic of the catalog, every partition,
one hash chain per (service, partition) with a signed checkpoint every
``checkpoint_every`` events, exactly as a service's ChainWriter writes it. To generate
hundreds of thousands of envelopes quickly, the first envelope of each chain is built by
the contracts' ChainWriter and the following ones are derived from it by changing the ids
and chain links and recomputing the hash with the contracts' own ``envelope_hash`` and
``canonical_bytes`` (the bytes are identical to ``codec.encode``; checked at the start).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from wastetrail_audit.keys import KeyRing
from wastetrail_audit.replay import ReplayOptions, replay
from wastetrail_audit.source import KafkaLog
from wastetrail_contracts.base import Event
from wastetrail_contracts.chain import ChainHead, ChainWriter
from wastetrail_contracts.codec import canonical_bytes, encode, envelope_hash, envelope_to_json
from wastetrail_contracts.envelope import SYSTEM_ACTOR, uuid7
from wastetrail_contracts.examples import EXAMPLES
from wastetrail_contracts.keys import key_id_for
from wastetrail_contracts.topics import EVENT_TOPICS, kafka_client_options

from bench.common import MB, PeakRss, Result, median, result, table
from wastetrail.devstack.infra import KAFKA_BOOTSTRAP

T0 = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)


@dataclass(frozen=True)
class GeneratedLog:
    """A log on the broker: its topic prefix, size and the auditor's key ring."""

    prefix: str
    records: int
    keys: KeyRing


def _example_for(service: str) -> Event:
    # The owner of epr.* events is billing; any example whose type starts with the
    # service name will do (the first one is a registration, a realistic bulk event).
    for event in EXAMPLES:
        if event.event_type.split(".")[0] == service:
            return event
    raise LookupError(service)


def _generate_raw(bootstrap: str, prefix: str, events: int
                  ) -> tuple[int, dict[str, bytes], dict[str, str]]:
    log = generate(bootstrap, prefix, events)
    raw = {kid: key.public_bytes(Encoding.Raw, PublicFormat.Raw)
           for kid, key in log.keys.public_keys.items()}
    return log.records, raw, dict(log.keys.services)


def generate_apart(bootstrap: str, prefix: str, events: int) -> GeneratedLog:
    """``generate`` in a child process: the replay's peak RSS is measured over this process
    and its workers, and must not include what generating the log left behind here."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        records, raw, services = pool.apply(_generate_raw, (bootstrap, prefix, events))
    keys = KeyRing(public_keys={kid: Ed25519PublicKey.from_public_bytes(b)
                                for kid, b in raw.items()}, services=services)
    return GeneratedLog(prefix, records, keys)


def generate(bootstrap: str, prefix: str, events: int, *, checkpoint_every: int = 1000
             ) -> GeneratedLog:
    """Write ``events`` hash-chained envelopes (checkpoints included) under ``prefix``."""
    services = list(EVENT_TOPICS)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())
    try:
        admin.create_topics([NewTopic(s.qualified(prefix), s.partitions, 1)
                             for s in EVENT_TOPICS.values()])
    finally:
        admin.close()
    chains = [(s, p) for s in services for p in range(EVENT_TOPICS[s].partitions)]
    keys = {s: Ed25519PrivateKey.generate() for s in services}
    ring = KeyRing()
    for service, key in keys.items():
        ring.public_keys[key_id_for(key.public_key())] = key.public_key()
        ring.services[key_id_for(key.public_key())] = service
    # Idempotent, like the services' relay: a batch retried on a busy broker (the topics
    # were just created; their leaders may still be moving) must not land after the next
    # one, or the replay rightly reports the chain reordered.
    producer = KafkaProducer(bootstrap_servers=bootstrap,
                             **kafka_client_options(), acks="all", enable_idempotence=True,
                             linger_ms=20, batch_size=512 * 1024,
                             max_request_size=4 * 1024 * 1024)
    per_chain, extra = divmod(events, len(chains))
    written = 0
    try:
        for index, (service, partition) in enumerate(chains):
            count = per_chain + (1 if index < extra else 0)
            topic = EVENT_TOPICS[service].qualified(prefix)
            for record_key, value in _chain_records(service, partition, keys[service], count,
                                                    checkpoint_every):
                producer.send(topic, key=record_key, value=value, partition=partition)
                written += 1
        producer.flush(timeout=120)
    finally:
        producer.close()
    return GeneratedLog(prefix, written, ring)


def _chain_records(service: str, partition: int, key: Ed25519PrivateKey, count: int,
                   checkpoint_every: int) -> Iterator[tuple[bytes, bytes]]:
    """``count`` records of one chain: events with a checkpoint after every N of them.

    Streamed: at 5 M events a chain's records would take hundreds of MB, which would stay
    in the benchmark process's heap and be counted in the replay's peak RSS.
    """
    event = _example_for(service)
    writer = ChainWriter(service, EVENT_TOPICS[service].name, partition, key)
    first = writer.append(event, stream_id=f"s-{service}-{partition}-0", stream_version=1,
                          actor=SYSTEM_ACTOR, occurred_at=T0, recorded_at=T0,
                          correlation_id=f"s-{service}-{partition}-0")
    template = envelope_to_json(first)
    yield first.stream_id.encode(), encode(first)
    written = 1
    seq, head = first.chain_seq, first.hash
    since = 1
    while written < count:
        written += 1
        if checkpoint_every and since >= checkpoint_every:
            writer.head = ChainHead(writer.chain_id, seq, head)
            cp = writer.checkpoint(T0)
            yield cp.stream_id.encode(), encode(cp)
            seq, head, since = cp.chain_seq, cp.hash, 0
            continue
        stream = f"s-{service}-{partition}-{written - 1}"
        fields = dict(template)
        fields.pop("hash")
        fields.update(event_id=uuid7(), stream_id=stream, correlation_id=stream,
                      chain_seq=seq + 1, prev_hash=head)
        digest = envelope_hash(fields)
        fields["hash"] = digest
        yield stream.encode(), canonical_bytes(fields)
        seq, head = seq + 1, digest
        since += 1
    # Seal the chain like a service does on shutdown, so the replay has no unsigned tail.
    if since and checkpoint_every:
        writer.head = ChainHead(writer.chain_id, seq, head)
        cp = writer.checkpoint(T0)
        yield cp.stream_id.encode(), encode(cp)


def check_fast_path() -> None:
    """The derived envelopes are byte-identical to ChainWriter + codec.encode."""
    key = Ed25519PrivateKey.generate()
    writer = ChainWriter("collection", EVENT_TOPICS["collection"].name, 0, key)
    event = _example_for("collection")
    first = writer.append(event, stream_id="a", stream_version=1, actor=SYSTEM_ACTOR,
                          occurred_at=T0, recorded_at=T0, correlation_id="a")
    second = writer.append(event, stream_id="b", stream_version=1, actor=SYSTEM_ACTOR,
                           occurred_at=T0, recorded_at=T0, correlation_id="b",
                           event_id="0190a000-0000-7000-8000-000000000001")
    fields = envelope_to_json(first)
    fields.pop("hash")
    fields.update(event_id="0190a000-0000-7000-8000-000000000001", stream_id="b",
                  correlation_id="b", chain_seq=2, prev_hash=first.hash)
    fields["hash"] = envelope_hash(fields)
    if canonical_bytes(fields) != encode(second):
        raise AssertionError("the fast envelope path does not match codec.encode")


def bare_read(bootstrap: str, prefix: str) -> tuple[int, float]:
    """One kafka-python consumer (CRC checks on) reading every event topic to its end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **kafka_client_options(), group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             check_crcs=True, max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        started = time.perf_counter()
        tps = [TopicPartition(s.qualified(prefix), p)
               for s in EVENT_TOPICS.values() for p in range(s.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        count = 0
        while remaining:
            batches = consumer.poll(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                count += len(records)
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        return count, time.perf_counter() - started
    finally:
        consumer.close()


class ReplayRun(NamedTuple):
    """One replay's measurements; RSS in bytes."""

    records: int
    seconds: float
    peak: int  # the largest sum over the process tree (this process + workers) at one instant
    ok: bool
    rss_before: int  # this process's RSS when the replay started (generation's leftovers)
    peak_worker: int  # the largest RSS of one child process (a worker, the forkserver)
    problems: tuple[str, ...] = ()  # the first failures and warnings when not ok


def replay_once(bootstrap: str, log: GeneratedLog, workers: int | None = None) -> ReplayRun:
    """One full replay: records, seconds, peak RSS of the replay's process tree, ok."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as work:
        me = os.getpid()
        rss = PeakRss([me])
        rss.sample()
        before = rss.peak_each.get(me, 0)
        with rss:
            started = time.perf_counter()
            summary = replay(ReplayOptions(source=KafkaLog(bootstrap, log.prefix),
                                           keys=log.keys, work_dir=Path(work), workers=workers))
            elapsed = time.perf_counter() - started
        children = [v for pid, v in rss.peak_each.items() if pid != me]
        problems = tuple([f.line() for f in summary.failures[:5]] + summary.warnings[:5])
        return ReplayRun(summary.records, elapsed, rss.peak_total, summary.ok, before,
                         max(children, default=0), problems)


def run(bootstrap: str, *, events: int, runs: int, small_events: int | None = None,
        results_dir: Path | None = None, log: bool = True) -> list[Result]:
    """The replay throughput and memory benchmarks; returns their results."""
    check_fast_path()
    tag = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    big = generate_apart(bootstrap, f"bench{tag}.replay.", events)
    if log:
        print(f"  generated {big.records:,} records in {time.perf_counter() - started:.1f}s")
    ours, bare, rss_big = _measure(bootstrap, big, runs, "" if log else None)
    results = [result("audit_replay_throughput", median(ours), "events/s",
                      target=median(bare),
                      baseline=median(bare), results_dir=results_dir)]
    # Memory: the same replay on a log 1/5 the size; RSS must not grow with the log.
    small = generate_apart(bootstrap, f"bench{tag}.replaysmall.",
                           small_events or max(events // 5, 1))
    rss_small = [replay_once(bootstrap, small).peak / MB for _ in range(runs)]
    if log:
        print(f"  RSS at {small.records:,} records: {median(rss_small):.0f} MB; "
              f"at {big.records:,}: {median(rss_big):.0f} MB")
    # value = RSS at the big log, baseline = RSS at the small one; target: at most 10 %
    # growth for a log 5x larger.
    results.append(result("audit_replay_peak_rss", median(rss_big), "MB", higher_is_better=False,
                          target=round(median(rss_small) * 1.10, 1), baseline=median(rss_small),
                          results_dir=results_dir))
    _delete_topics(bootstrap, [big.prefix, small.prefix])
    return results


def _delete_topics(bootstrap: str, prefixes: list[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())
    try:
        admin.delete_topics([s.qualified(p) for p in prefixes for s in EVENT_TOPICS.values()])
    except Exception:  # noqa: S110 — leftover benchmark topics are harmless
        pass
    finally:
        admin.close()


def size_label(events: int) -> str:
    """``1m`` for 1,000,000 events, ``5m``, ``200k``, ``400``: the suffix of a result name."""
    if events % 1_000_000 == 0:
        return f"{events // 1_000_000}m"
    if events % 1_000 == 0:
        return f"{events // 1_000}k"
    return str(events)


def run_sizes(bootstrap: str, sizes: Sequence[int], *, runs: int,
              results_dir: Path | None = None, log: bool = True) -> list[Result]:
    """Throughput and peak RSS at each log size, as results named after the size.

    ``audit_replay_throughput_<size>`` (baseline: the bare consumer on the same log, in the
    same run) and ``audit_replay_peak_rss_<size>`` per size; then ``audit_replay_rss_growth``:
    the peak RSS at the largest size against the smallest (target: at most 10 % more).
    Each log is generated, measured and deleted before the next one (disk: ~1.2 KB/event).
    """
    check_fast_path()
    tag = uuid.uuid4().hex[:6]
    results: list[Result] = []
    rss_at: dict[int, float] = {}
    for events in sorted(sizes):
        label = size_label(events)
        started = time.perf_counter()
        log_ = generate_apart(bootstrap, f"bench{tag}.replay{label}.", events)
        if log:
            print(f"  {label}: generated {log_.records:,} records in "
                  f"{time.perf_counter() - started:.1f}s", flush=True)
        try:
            ours, bare, rss = _measure(bootstrap, log_, runs, label if log else None)
        finally:
            _delete_topics(bootstrap, [log_.prefix])
        rss_at[events] = median(rss)
        results.append(result(f"audit_replay_throughput_{label}", median(ours), "events/s",
                              target=median(bare), baseline=median(bare),
                              results_dir=results_dir))
        results.append(result(f"audit_replay_peak_rss_{label}", median(rss), "MB",
                              higher_is_better=False, target=None, baseline=None,
                              results_dir=results_dir))
    if len(rss_at) > 1:
        small, big = min(rss_at), max(rss_at)
        results.append(result("audit_replay_rss_growth", rss_at[big], "MB",
                              higher_is_better=False, target=round(rss_at[small] * 1.10, 1),
                              baseline=rss_at[small], results_dir=results_dir))
    return results


def _measure(bootstrap: str, log_: GeneratedLog, runs: int, label: str | None
             ) -> tuple[list[float], list[float], list[float]]:
    """``runs`` × (bare read, replay) on one log: (ours ev/s, bare ev/s, peak RSS MB)."""
    ours: list[float] = []
    bare: list[float] = []
    rss: list[float] = []
    for _ in range(runs):
        count, secs = bare_read(bootstrap, log_.prefix)
        if count != log_.records:
            raise AssertionError(f"bare consumer read {count} of {log_.records} records")
        bare.append(count / secs)
        run = replay_once(bootstrap, log_)
        if not run.ok or run.records != log_.records:
            raise AssertionError(
                f"replay not clean: ok={run.ok} records={run.records}/{log_.records}: "
                + "; ".join(run.problems))
        ours.append(run.records / run.seconds)
        rss.append(run.peak / MB)
        if label is not None:
            where = f"{label}: " if label else ""
            print(f"  {where}replay {ours[-1]:,.0f} ev/s (peak {rss[-1]:.0f} MB: this process "
                  f"{run.rss_before / MB:.0f} MB before, largest child {run.peak_worker / MB:.0f}"
                  f" MB), bare {bare[-1]:,.0f} ev/s, ratio {ours[-1] / bare[-1]:.3f}", flush=True)
    return ours, bare, rss


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.replay --events 1000000 --events 5000000``: results per size."""
    p = argparse.ArgumentParser(prog="python -m bench.replay", description=main.__doc__)
    p.add_argument("--events", type=int, action="append", required=True,
                   help="a log size (repeatable)")
    p.add_argument("--runs", type=int, default=1, help="runs per size (median reported)")
    args = p.parse_args(argv)
    results = run_sizes(KAFKA_BOOTSTRAP, args.events, runs=args.runs)
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
