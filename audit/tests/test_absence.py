"""Absence is a failure: `audit replay` on the real broker catches what was removed — a
topic, the head of a partition, a tail cut back to a checkpoint — and what was slipped in
where the chain cannot see it: a retry topic, a type outside the catalog, a replaced key.
Each failure is named at its topic, partition and offset."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _auditlog import (
    T0,
    LogBuilder,
    ProducedLog,
    create_topics,
    dump,
    load,
    make_keys,
    produce,
    rehash,
    write_public_keys,
)
from _scenario import hand_scenario
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from typer.testing import CliRunner
from wastetrail_audit.cli import app
from wastetrail_contracts.enums import Category, PaymentChannel
from wastetrail_contracts.events.billing import PaymentSucceeded
from wastetrail_contracts.events.collection import CollectorRegistered
from wastetrail_contracts.events.integrity import WitnessedHead
from wastetrail_contracts.events.transfer import StationRegistered
from wastetrail_contracts.topics import EVENT_TOPICS, kafka_client_options, retry_topic

pytestmark = pytest.mark.integration
Location = tuple[str, int, int, str]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def produced(bootstrap: str, prefix: str, tmp: Path,
             build: Callable[[LogBuilder], object] = hand_scenario) -> ProducedLog:
    keys = make_keys()
    log = LogBuilder(keys, checkpoint_every=8)
    build(log)
    log.seal()
    produce(bootstrap, prefix, log.records)
    return ProducedLog(log, prefix, write_public_keys(keys, tmp / "keys"), bootstrap)


def replay(log: ProducedLog, work: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, out, _ = run("replay", "--bootstrap", log.bootstrap, "--topic-prefix", log.prefix,
                       "--keys-dir", str(log.keys_dir), "--work-dir", str(work), "--json",
                       "--quiet", *extra)
    return code, json.loads(out)


def where(summary: dict) -> set[Location]:  # type: ignore[type-arg]
    return {(f["topic"], f["partition"], f["offset"], f["kind"]) for f in summary["failures"]}


def topic(log: ProducedLog, service: str) -> str:
    return EVENT_TOPICS[service].qualified(log.prefix)


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())


def delete_topic(bootstrap: str, name: str) -> None:
    client = admin(bootstrap)
    try:
        client.delete_topics([name])
        deadline = time.monotonic() + 30
        while name in client.list_topics():
            assert time.monotonic() < deadline, f"{name} was not deleted"
            time.sleep(0.2)
    finally:
        client.close()


def recreate_topic(bootstrap: str, name: str, partitions: int = 4) -> None:
    client = admin(bootstrap)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_topics([NewTopic(name, partitions, 1)])
                return
            except TopicAlreadyExistsError:  # the deletion is still being carried out
                assert time.monotonic() < deadline
                time.sleep(0.3)
    finally:
        client.close()


@pytest.fixture
def prefix(topic_prefix: str, request: pytest.FixtureRequest) -> str:
    return f"{topic_prefix}{request.node.name[5:25]}."


def test_a_deleted_topic_fails_at_every_partition(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    log = produced(kafka_bootstrap, prefix, tmp_path)
    assert replay(log, tmp_path / "before")[0] == 0
    delete_topic(kafka_bootstrap, topic(log, "transfer"))
    code, summary = replay(log, tmp_path / "after")
    assert code == 1
    assert where(summary) == {(topic(log, "transfer"), p, 0, "missing_topic") for p in range(4)}


def test_records_deleted_from_the_head_of_a_partition_fail_where_it_now_starts(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    log = produced(kafka_bootstrap, prefix, tmp_path)
    name = topic(log, "billing")
    partition = max((p for s, p in log.log.records if s == "billing"),
                    key=lambda p: len(log.log.records[("billing", p)]))
    client = admin(kafka_bootstrap)
    try:
        client.delete_records({TopicPartition(name, partition): 3})
    finally:
        client.close()
    code, summary = replay(log, tmp_path / "w")
    assert code == 1
    # Where the partition starts now, and where its chain starts (seq 4, not 1).
    assert where(summary) == {(name, partition, 3, "truncated_head"),
                              (name, partition, 3, "deleted")}


def test_a_topic_recreated_with_its_tail_cut_back_to_a_checkpoint(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    """The cut log is a valid chain ending in a signed checkpoint: only what the auditor saw
    before (its heads file) and what another service signed (its witnessed heads) show it."""
    keys = make_keys()
    log = LogBuilder(keys, checkpoint_every=4)
    for i in range(12):  # 12 events, a checkpoint after every 4: seq 5, 10 and 15
        log.emit(CollectorRegistered(collector_id=f"col-{i}", name=f"C{i}"), "stream-1")
    ((_, partition), records) = next(iter(log.records.items()))
    chain = load(records[-1][1])
    # Transfer's consumer verified collection's last checkpoint, and signs that it did.
    log.emit(StationRegistered(station_id="st-1", name="S", commune="U1",
                               capacity_grams=1_000_000, categories=(Category.FOOD,)), "st-1")
    witnessed = WitnessedHead(chain=str(chain["chain_id"]), seq=int(str(chain["chain_seq"])),
                              hash=str(chain["hash"]))
    log.checkpoint("transfer", next(p for s, p in log.records if s == "transfer"),
                   witnessed=[witnessed])
    produce(kafka_bootstrap, prefix, log.records)
    pl = ProducedLog(log, prefix, write_public_keys(keys, tmp_path / "keys"), kafka_bootstrap)
    heads = tmp_path / "auditor" / "heads.json"
    code, summary = replay(pl, tmp_path / "first", "--heads", str(heads))
    assert code == 0, summary["failures"]
    assert heads.is_file()

    name = topic(pl, "collection")
    delete_topic(kafka_bootstrap, name)
    recreate_topic(kafka_bootstrap, name)
    cut = records[:10]  # up to and including the checkpoint at seq 10
    assert load(cut[-1][1])["type"] == "integrity.chain_checkpoint"
    produce(kafka_bootstrap, prefix, {("collection", partition): cut})

    code, summary = replay(pl, tmp_path / "second", "--heads", str(heads))
    assert code == 1
    assert where(summary) == {
        (name, partition, 10, "truncated"),  # the partition ends before offset 15
        (name, partition, 10, "contradicted"),  # transfer signed seq 15
    }
    details = " ".join(f["detail"] for f in summary["failures"])
    assert "ends at seq 10, but the auditor verified it up to seq 15" in details
    assert "but the signed checkpoint at " in details
    # Without the auditor's heads file, transfer's signed statement still catches it.
    code, summary = replay(pl, tmp_path / "third")
    assert where(summary) == {(name, partition, 10, "contradicted")}
    # A failed replay leaves the heads file as it was: the next one must still extend it.
    assert json.loads(heads.read_text())["partitions"]


def test_the_heads_file_is_extended_by_every_later_replay(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    log = produced(kafka_bootstrap, prefix, tmp_path)
    heads = tmp_path / "heads.json"
    assert replay(log, tmp_path / "a", "--heads", str(heads))[0] == 0
    # Later events (a service kept working) extend the chains: still fine.
    more = log.log
    more.records = {}
    for i in range(5):
        more.emit(CollectorRegistered(collector_id=f"late-{i}", name="Late"), f"late-{i}")
    more.seal()
    produce(kafka_bootstrap, prefix, more.records)
    assert replay(log, tmp_path / "b", "--heads", str(heads))[0] == 0
    saved = json.loads(heads.read_text())
    assert sum(p["next_offset"] for p in saved["partitions"]) == len(log.log.envelopes)
    # A partition whose head was then deleted (retention, or an attacker) resumes from the
    # verified heads only if nothing unverified was deleted.
    name = topic(log, "collection")
    part = next(p for p in saved["partitions"] if p["topic"] == name and p["next_offset"] > 2)
    client = admin(kafka_bootstrap)
    try:
        client.delete_records({TopicPartition(name, part["partition"]): 2})
    finally:
        client.close()
    code, summary = replay(log, tmp_path / "c", "--heads", str(heads))
    assert code == 0, summary["failures"]
    assert summary["failures"] == []


def test_a_forged_record_in_a_retry_topic(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    log = produced(kafka_bootstrap, prefix, tmp_path)
    source = topic(log, "collection")
    retry = retry_topic("billing.collection", prefix)
    create_topics(kafka_bootstrap, prefix)
    client = admin(kafka_bootstrap)
    try:
        client.create_topics([NewTopic(retry, 1, 1)])
    finally:
        client.close()
    partition = next(p for s, p in log.log.records if s == "collection")
    offset, (key, genuine) = next(
        (i, r) for i, r in enumerate(log.log.records[("collection", partition)])
        if load(r[1])["type"] == "collection.load_collected")
    origin = [("dlq.topic", source.encode()), ("dlq.partition", str(partition).encode()),
              ("dlq.offset", str(offset).encode())]
    fields = load(genuine)
    fields["payload"] = {**fields["payload"], "grams": 99_000}  # type: ignore[dict-item]
    forged = dump(rehash(fields))  # a careful forger: the hash matches the new content
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap,
                             **kafka_client_options(), acks="all")
    try:
        producer.send(retry, key=key, value=genuine, headers=origin)  # dlq replay's copy
        producer.send(retry, key=key, value=forged, headers=origin)
        producer.flush()
    finally:
        producer.close()
    code, summary = replay(log, tmp_path / "w")
    assert code == 1
    assert summary["retry_records"] == 2
    assert where(summary) == {(retry, 0, 1, "retry_forged")}
    assert f"differs from its original at {source}[{partition}] offset {offset}" in (
        summary["failures"][0]["detail"])


def test_an_event_type_outside_its_services_catalog(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    def build(log: LogBuilder) -> None:
        hand_scenario(log)
        # A payment in collection's own chain, perfectly hashed and signed by collection.
        log.emit(PaymentSucceeded(payment_id="pay-x", account_id="A1", invoice_id="INV-1",
                                  amount=1_000_000, channel=PaymentChannel.CASH, paid_at=T0),
                 "pay-x", service="collection")

    log = produced(kafka_bootstrap, prefix, tmp_path, build)
    envelope = next(e for e in log.log.envelopes if e["type"] == "billing.payment_succeeded"
                    and e["service"] == "collection")
    partition = int(str(envelope["chain_id"]).rsplit(":", 1)[1])
    offset = next(i for i, (_, v) in enumerate(log.log.records[("collection", partition)])
                  if load(v)["event_id"] == envelope["event_id"])
    code, summary = replay(log, tmp_path / "w")
    assert code == 1
    assert where(summary) == {(topic(log, "collection"), partition, offset, "outside_catalog")}


def test_a_replaced_pub_is_refused_and_its_signatures_are_unknown(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    log = produced(kafka_bootstrap, prefix, tmp_path)
    trust = tmp_path / "auditor" / "trust.json"
    assert run("trust", "pin", "--keys-dir", str(log.keys_dir), "--trust", str(trust))[0] == 0
    # Someone with write access to the key store rewrites collection's chains with a key of
    # their own (every hash and signature valid) and replaces collection.pub.
    forger = Ed25519PrivateKey.generate()
    rebuilt = LogBuilder({**log.log.keys, "collection": forger}, checkpoint_every=8)
    hand_scenario(rebuilt)
    rebuilt.seal()
    forged_prefix = f"{prefix}forged."
    produce(kafka_bootstrap, forged_prefix, rebuilt.records)
    write_public_keys({"collection": forger}, log.keys_dir)

    code, _, err = run("replay", "--bootstrap", kafka_bootstrap, "--topic-prefix", forged_prefix,
                       "--trust", str(trust), "--keys-dir", str(log.keys_dir),
                       "--work-dir", str(tmp_path / "a"), "--quiet")
    assert code == 1
    assert f"{log.keys_dir / 'collection.pub'}: key " in err and "is not pinned" in err

    code, out, _ = run("replay", "--bootstrap", kafka_bootstrap, "--topic-prefix",
                       forged_prefix, "--trust", str(trust), "--work-dir", str(tmp_path / "b"),
                       "--json", "--quiet")
    assert code == 1
    name = EVENT_TOPICS["collection"].qualified(forged_prefix)
    expected = {
        (name, p, offset, "unknown_key")
        for (service, p), records in rebuilt.records.items() if service == "collection"
        for offset, (_, value) in enumerate(records)
        if load(value)["type"] == "integrity.chain_checkpoint"
    }
    assert expected and where(json.loads(out)) == expected


def test_an_unsigned_tail_longer_than_the_bound(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    keys = make_keys()
    log = LogBuilder(keys, checkpoint_every=0)  # a service that stopped signing
    for i in range(7):
        log.emit(CollectorRegistered(collector_id=f"col-{i}", name=f"C{i}"), "stream-1")
    produce(kafka_bootstrap, prefix, log.records)
    pl = ProducedLog(log, prefix, write_public_keys(keys, tmp_path / "keys"), kafka_bootstrap)
    ((_, partition),) = log.records
    assert replay(pl, tmp_path / "a", "--max-unsigned", "7")[0] == 0
    code, summary = replay(pl, tmp_path / "b", "--max-unsigned", "6")
    assert code == 1
    assert where(summary) == {(topic(pl, "collection"), partition, 6, "unsigned_tail")}
