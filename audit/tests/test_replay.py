"""`wastetrail audit replay` on logs produced to the real broker: a clean log verifies,
and every kind of tampering is caught at its exact offset."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from _auditlog import (
    LogBuilder,
    ProducedLog,
    dump,
    load,
    make_keys,
    produce,
    rehash,
    write_public_keys,
)
from _scenario import filler, hand_scenario
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner
from wastetrail_audit.cli import app
from wastetrail_contracts.integrity import sign_checkpoint
from wastetrail_contracts.topics import EVENT_TOPICS

pytestmark = pytest.mark.integration
Records = list[tuple[bytes, bytes]]


# T1 was weighed at 102 kg and 100 kg of it allocated (see _scenario).
HAND_NOTE = "trip T1: 2000 g of its food share were not allocated to any batch"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def replay_json(log: ProducedLog, prefix: str, work: Path, *extra: str) -> tuple[int, dict]:
    code, out, _ = run("replay", "--bootstrap", log.bootstrap, "--topic-prefix", prefix,
                       "--keys-dir", str(log.keys_dir), "--work-dir", str(work), "--json",
                       "--quiet", *extra)
    return code, json.loads(out)


def test_clean_log_verifies(bulk_log: ProducedLog, tmp_path: Path) -> None:
    code, summary = replay_json(bulk_log, bulk_log.prefix, tmp_path)
    assert code == 0
    assert summary["ok"] is True
    assert summary["failures"] == []
    envelopes = bulk_log.log.envelopes
    assert summary["events"] == len(envelopes)
    checkpoints = sum(1 for e in envelopes if e["type"] == "integrity.chain_checkpoint")
    assert summary["checkpoints_verified"] == checkpoints
    assert summary["unsigned_events"] == 0  # the builder sealed every chain
    assert len(summary["chains"]) == len(bulk_log.log.records)
    topic = EVENT_TOPICS["collection"].qualified(bulk_log.prefix)
    expected = Counter(str(e["type"]) for e in envelopes if e["service"] == "collection")
    assert summary["topics"][topic]["types"] == dict(expected)
    assert summary["events_per_second"] > 0
    assert summary["warnings"] == []
    assert Path(summary["projection"]).is_file()


def test_a_wrong_topic_prefix_is_an_error_not_an_all_clear(
    bulk_log: ProducedLog, tmp_path: Path
) -> None:
    code, _, err = run("replay", "--bootstrap", bulk_log.bootstrap,
                       "--topic-prefix", "no-such-prefix.", "--keys-dir", str(bulk_log.keys_dir),
                       "--work-dir", str(tmp_path), "--quiet")
    assert code == 2
    assert "no event topic found" in err


def test_text_output_and_progress(bulk_log: ProducedLog, tmp_path: Path) -> None:
    code, out, err = run("replay", "--bootstrap", bulk_log.bootstrap,
                         "--topic-prefix", bulk_log.prefix, "--keys-dir", str(bulk_log.keys_dir),
                         "--work-dir", str(tmp_path))
    assert code == 0
    assert out.startswith("OK: ")
    assert "events/s" in err and "16/16 partitions" in err


# -- tampering ---------------------------------------------------------------------------


def _longest(log: LogBuilder) -> tuple[str, int]:
    return max(log.records, key=lambda k: len(log.records[k]))


def _modified(records: Records) -> set[tuple[int, str]]:
    index = next(i for i, (_, v) in enumerate(records)
                 if i >= 10 and load(v)["type"] == "collection.load_collected")
    fields = load(records[index][1])
    fields["payload"] = {**fields["payload"], "grams": fields["payload"]["grams"] + 5_000}  # type: ignore[dict-item]
    records[index] = (records[index][0], dump(fields))
    return {(index, "modified")}


def _deleted(records: Records) -> set[tuple[int, str]]:
    del records[12]
    return {(12, "deleted")}


def _inserted(records: Records) -> set[tuple[int, str]]:
    # A forger who knows the hash scheme: a made-up load in the right chain position,
    # with the right prev_hash and a correctly recomputed hash.
    original = load(records[14][1])
    fake = rehash({**original, "event_id": "00000000-0000-4000-8000-00000000f00d",
                   "type": "collection.collector_registered",
                   "payload": {"collector_id": "col-fake", "name": "Ghost collector"}})
    records.insert(14, (records[14][0], dump(fake)))
    return {(14, "inserted")}


def _reordered(records: Records) -> set[tuple[int, str]]:
    records[16], records[17] = records[17], records[16]
    return {(16, "reordered")}


def _forged_checkpoint(records: Records) -> set[tuple[int, str]]:
    # Rewrite one event and every hash after it: the chain is consistent again, but the
    # checkpoints after it cannot be re-signed without the service's key.
    forger = Ed25519PrivateKey.generate()
    target = 5
    prev = load(records[target - 1][1])["hash"]
    forged: set[tuple[int, str]] = set()
    for i in range(target, len(records)):
        fields = load(records[i][1])
        if i == target:
            fields["payload"] = {**fields["payload"], "grams": 99_999}  # type: ignore[dict-item]
        fields["prev_hash"] = prev
        if fields["type"] == "integrity.chain_checkpoint":
            payload = dict(fields["payload"])  # type: ignore[arg-type]
            payload["head_hash"] = prev
            payload["signature"] = sign_checkpoint(
                forger, str(payload["chain_id"]), int(payload["chain_seq"]), str(prev))
            fields["payload"] = payload
            forged.add((i, "forged_checkpoint"))
        fields = rehash(fields)
        records[i] = (records[i][0], dump(fields))
        prev = fields["hash"]
    assert load(records[target][1])["type"] == "collection.load_collected"
    return forged


TAMPERING: dict[str, Callable[[Records], set[tuple[int, str]]]] = {
    "modified": _modified,
    "deleted": _deleted,
    "inserted": _inserted,
    "reordered": _reordered,
    "forged_checkpoint": _forged_checkpoint,
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_is_caught_at_its_exact_offset(
    kind: str, bulk_log: ProducedLog, tmp_path: Path
) -> None:
    service, partition = _longest(bulk_log.log)
    records = {k: list(v) for k, v in bulk_log.log.records.items()}
    expected = TAMPERING[kind](records[(service, partition)])
    prefix = f"{bulk_log.prefix}tamper-{kind.replace('_', '-')}."
    produce(bulk_log.bootstrap, prefix, records)

    code, summary = replay_json(bulk_log, prefix, tmp_path)

    assert code == 1
    topic = EVENT_TOPICS[service].qualified(prefix)
    found = {(f["offset"], f["kind"]) for f in summary["failures"]}
    assert found == expected
    assert {(f["topic"], f["partition"]) for f in summary["failures"]} == {(topic, partition)}
    tampered = records[(service, partition)]
    for failure in summary["failures"]:
        # the event id printed is the one of the record at that offset
        assert failure["event_id"] == load(tampered[failure["offset"]][1])["event_id"]

    # the text form prints every failure with topic, partition, offset, event id and kind
    code, out, _ = run("replay", "--bootstrap", bulk_log.bootstrap, "--topic-prefix", prefix,
                       "--keys-dir", str(bulk_log.keys_dir), "--work-dir", str(tmp_path / "t"),
                       "--quiet")
    assert code == 1
    offset, fkind = min(expected)
    line = next(x for x in out.splitlines() if x.startswith(f"FAIL {fkind} "))
    assert f"topic={topic} partition={partition} offset={offset} " in line
    assert any(x.startswith("FAILED: ") for x in out.splitlines())


def test_checkpoint_signed_by_an_unknown_key_is_reported(
    bulk_log: ProducedLog, tmp_path: Path
) -> None:
    # The auditor's key directory lacks the treatment service's key.
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    for pem in bulk_log.keys_dir.iterdir():
        if not pem.name.startswith("treatment"):
            (keys_dir / pem.name).write_bytes(pem.read_bytes())
    code, out, _ = run("replay", "--bootstrap", bulk_log.bootstrap,
                       "--topic-prefix", bulk_log.prefix, "--keys-dir", str(keys_dir),
                       "--work-dir", str(tmp_path / "w"), "--json", "--quiet")
    assert code == 1
    failures = json.loads(out)["failures"]
    assert failures and {f["kind"] for f in failures} == {"unknown_key"}
    assert {f["topic"] for f in failures} == {EVENT_TOPICS["treatment"].qualified(bulk_log.prefix)}


def test_resume_from_checkpoint_verifies_only_new_events(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    keys = make_keys()
    keys_dir = write_public_keys(keys, tmp_path / "keys")
    log = LogBuilder(keys, checkpoint_every=5)
    filler(log, trips=4, loads_per_trip=3)
    log.seal()
    prefix = f"{topic_prefix}resume."
    produce(kafka_bootstrap, prefix, log.records)
    sent = {k: len(v) for k, v in log.records.items()}
    first = ProducedLog(log, prefix, keys_dir, kafka_bootstrap)
    code, summary = replay_json(first, prefix, tmp_path / "w")
    assert code == 0
    checkpoint = tmp_path / "first-checkpoint.json"
    checkpoint.write_bytes(Path(summary["checkpoint_file"]).read_bytes())

    hand_scenario(log)  # the services keep writing: the same chains continue
    produce(kafka_bootstrap, prefix, {k: v[sent.get(k, 0):] for k, v in log.records.items()})
    new = sum(len(v) - sent.get(k, 0) for k, v in log.records.items())

    code, resumed = replay_json(first, prefix, tmp_path / "w", "--from-checkpoint",
                                str(checkpoint))
    assert code == 0, resumed["failures"]
    assert resumed["records"] == new
    assert resumed["resumed_from_checkpoint"] is True

    # The chain heads travel in the checkpoint file: a wrong head is caught at the first
    # record read after it.
    data = json.loads(checkpoint.read_text())
    part = next(p for p in data["partitions"]
                if p["chains"] and p["next_offset"] < len(log.records[_key(p, prefix)]))
    (chain,) = part["chains"]
    part["chains"][chain]["last_hash"] = "f" * 64
    forged = tmp_path / "forged-checkpoint.json"
    forged.write_text(json.dumps(data))
    code, bad = replay_json(first, prefix, tmp_path / "w2", "--from-checkpoint", str(forged))
    assert code == 1
    assert [(f["topic"], f["partition"], f["offset"], f["kind"]) for f in bad["failures"]] == [
        (part["topic"], part["partition"], part["next_offset"], "modified")
    ]


def _key(part: dict, prefix: str) -> tuple[str, int]:
    service = next(s for s, spec in EVENT_TOPICS.items() if spec.qualified(prefix) == part["topic"])
    return service, part["partition"]


def test_a_redelivered_event_is_verified_but_counted_once(
    hand_log: ProducedLog, tmp_path: Path
) -> None:
    records = {k: list(v) for k, v in hand_log.log.records.items()}
    key, index = next((k, i) for k, items in records.items() for i, (_, v) in enumerate(items)
                      if load(v)["type"] == "collection.load_collected"
                      and load(v)["payload"]["load_id"] == "L1")  # type: ignore[index]
    records[key].insert(index + 1, records[key][index])  # the relay published L1 twice
    prefix = f"{hand_log.prefix}redelivered."
    produce(hand_log.bootstrap, prefix, records)

    code, summary = replay_json(hand_log, prefix, tmp_path / "w")
    assert code == 0
    assert (summary["duplicates"], summary["events"]) == (1, len(hand_log.log.envelopes))
    # the projection holds L1 once: its trip still scans 100 kg, not 130 kg
    code, out, _ = run("trace", "L1", "--json", "--projection", summary["projection"])
    assert code == 0
    trace = json.loads(out)
    assert trace["trip"]["scanned_grams_in_log"] == 100_000
    assert trace["notes"] == [HAND_NOTE] and trace["grams"] == 30_600
