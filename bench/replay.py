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

import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
from wastetrail_contracts.topics import EVENT_TOPICS

from bench.common import MB, PeakRss, Result, median, result

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


def generate(bootstrap: str, prefix: str, events: int, *, checkpoint_every: int = 1000
             ) -> GeneratedLog:
    """Write ``events`` hash-chained envelopes (checkpoints included) under ``prefix``."""
    services = list(EVENT_TOPICS)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
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
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                             batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
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
                   checkpoint_every: int) -> list[tuple[bytes, bytes]]:
    """``count`` records of one chain: events with a checkpoint after every N of them."""
    event = _example_for(service)
    writer = ChainWriter(service, EVENT_TOPICS[service].name, partition, key)
    first = writer.append(event, stream_id=f"s-{service}-{partition}-0", stream_version=1,
                          actor=SYSTEM_ACTOR, occurred_at=T0, recorded_at=T0,
                          correlation_id=f"s-{service}-{partition}-0")
    template = envelope_to_json(first)
    out: list[tuple[bytes, bytes]] = [(first.stream_id.encode(), encode(first))]
    seq, head = first.chain_seq, first.hash
    since = 1
    while len(out) < count:
        if checkpoint_every and since >= checkpoint_every:
            writer.head = ChainHead(writer.chain_id, seq, head)
            cp = writer.checkpoint(T0)
            out.append((cp.stream_id.encode(), encode(cp)))
            seq, head, since = cp.chain_seq, cp.hash, 0
            continue
        stream = f"s-{service}-{partition}-{len(out)}"
        fields = dict(template)
        fields.pop("hash")
        fields.update(event_id=uuid7(), stream_id=stream, correlation_id=stream,
                      chain_seq=seq + 1, prev_hash=head)
        digest = envelope_hash(fields)
        fields["hash"] = digest
        out.append((stream.encode(), canonical_bytes(fields)))
        seq, head = seq + 1, digest
        since += 1
    # Seal the chain like a service does on shutdown, so the replay has no unsigned tail.
    if since and checkpoint_every:
        writer.head = ChainHead(writer.chain_id, seq, head)
        cp = writer.checkpoint(T0)
        out.append((cp.stream_id.encode(), encode(cp)))
    return out


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
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
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


def replay_once(bootstrap: str, log: GeneratedLog, workers: int | None = None
                ) -> tuple[int, float, int, bool]:
    """One full replay: (records, seconds, peak RSS of the replay's process tree, ok)."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as work:
        rss = PeakRss([os.getpid()])
        with rss:
            started = time.perf_counter()
            summary = replay(ReplayOptions(source=KafkaLog(bootstrap, log.prefix),
                                           keys=log.keys, work_dir=Path(work), workers=workers))
            elapsed = time.perf_counter() - started
        return summary.records, elapsed, rss.peak_total, summary.ok


def run(bootstrap: str, *, events: int, runs: int, small_events: int | None = None,
        results_dir: Path | None = None, log: bool = True) -> list[Result]:
    """The replay throughput and memory benchmarks; returns their results."""
    check_fast_path()
    tag = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    big = generate(bootstrap, f"bench{tag}.replay.", events)
    if log:
        print(f"  generated {big.records:,} records in {time.perf_counter() - started:.1f}s")
    ours: list[float] = []
    bare: list[float] = []
    rss_big: list[float] = []
    for _ in range(runs):
        count, secs = bare_read(bootstrap, big.prefix)
        if count != big.records:
            raise AssertionError(f"bare consumer read {count} of {big.records} records")
        bare.append(count / secs)
        records, secs, peak, ok = replay_once(bootstrap, big)
        if not ok or records != big.records:
            raise AssertionError(f"replay not clean: ok={ok} records={records}/{big.records}")
        ours.append(records / secs)
        rss_big.append(peak / MB)
        if log:
            print(f"  replay {records / secs:,.0f} ev/s (peak {peak / MB:.0f} MB), "
                  f"bare {bare[-1]:,.0f} ev/s")
    results = [result("audit_replay_throughput", median(ours), "events/s",
                      target=median(bare),
                      baseline=median(bare), results_dir=results_dir)]
    # Memory: the same replay on a log 1/5 the size; RSS must not grow with the log.
    small = generate(bootstrap, f"bench{tag}.replaysmall.", small_events or max(events // 5, 1))
    rss_small = [replay_once(bootstrap, small)[2] / MB for _ in range(runs)]
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
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([s.qualified(p) for p in prefixes for s in EVENT_TOPICS.values()])
    except Exception:  # noqa: S110 — leftover benchmark topics are harmless
        pass
    finally:
        admin.close()
