"""Pinned keys and their rotation: the replay trusts a service's new key only when an
``integrity.key_rotated`` event in the service's own chains is signed by a key the trust
file pins for it; a verified rotation is pinned for the next replay."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from _auditlog import T0, LogBuilder, ProducedLog, load, make_keys, produce, write_public_keys
from _scenario import hand_scenario
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_absence import run, where
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.events.collection import CollectorRegistered
from wastetrail_contracts.events.integrity import KeyRotated
from wastetrail_contracts.integrity import rotation_message
from wastetrail_contracts.keys import key_id_for
from wastetrail_contracts.topics import EVENT_TOPICS

pytestmark = pytest.mark.integration
LATER = T0 + timedelta(days=1)


def rotate(log: LogBuilder, old: Ed25519PrivateKey, new: Ed25519PrivateKey,
           signer: Ed25519PrivateKey) -> None:
    """Collection announces ``new`` in each of its chains (signed by ``signer``), then
    signs with it, as wastetrail_runtime.signing does."""
    raw = new.public_key().public_bytes_raw().hex()
    old_id, new_id = key_id_for(old.public_key()), key_id_for(new.public_key())
    draft = KeyRotated(old_key_id=old_id, new_key_id=new_id, new_public_key=raw,
                       rotated_at=LATER, signature="0" * 128)
    stamp = str(draft.model_dump(mode="json")["rotated_at"])
    event = draft.model_copy(update={"signature": signer.sign(
        rotation_message("collection", old_id, new_id, raw, stamp)).hex()})
    for key in [k for k in list(log.records) if k[0] == "collection"]:
        writer = log._writer(key)
        log._record(key, writer.append(
            event, stream_id=f"key-rotation-collection-{key[1]}", stream_version=1,
            actor=SYSTEM_ACTOR, occurred_at=LATER, recorded_at=LATER,
            correlation_id=f"rot-{key[1]}"))
        writer.key, writer.key_id = new, new_id
    for i in range(12):
        log.emit(CollectorRegistered(collector_id=f"after-{i}", name="After"), f"after-{i}",
                 at=LATER + timedelta(minutes=1))
    log.seal(at=LATER + timedelta(minutes=2))


def rotated_log(bootstrap: str, prefix: str, tmp: Path, signer_is_old: bool
                ) -> tuple[ProducedLog, Path, Ed25519PrivateKey]:
    keys = make_keys()
    log = LogBuilder(dict(keys), checkpoint_every=8)
    hand_scenario(log)
    log.seal()
    new = Ed25519PrivateKey.generate()
    rotate(log, keys["collection"], new,
           keys["collection"] if signer_is_old else Ed25519PrivateKey.generate())
    produce(bootstrap, prefix, log.records)
    keys_dir = write_public_keys(keys, tmp / "keys")  # the keys before the rotation
    trust = tmp / "auditor" / "trust.json"
    assert run("trust", "pin", "--keys-dir", str(keys_dir), "--trust", str(trust))[0] == 0
    return ProducedLog(log, prefix, keys_dir, bootstrap), trust, new


def replay(log: ProducedLog, trust: Path, work: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, out, _ = run("replay", "--bootstrap", log.bootstrap, "--topic-prefix", log.prefix,
                       "--trust", str(trust), "--work-dir", str(work), "--json", "--quiet")
    return code, json.loads(out)


def test_a_rotation_signed_by_the_pinned_key_is_verified_and_pinned(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log, trust, new = rotated_log(kafka_bootstrap, f"{topic_prefix}rot-ok.", tmp_path, True)
    code, summary = replay(log, trust, tmp_path / "a")
    assert code == 0, summary["failures"]
    pinned = json.loads(trust.read_text())["keys"]
    entry = next(k for k in pinned if k["key_id"] == key_id_for(new.public_key()))
    assert entry["owner"] == "collection" and entry["valid_from"].startswith("2025-03-02T01")
    assert replay(log, trust, tmp_path / "b")[0] == 0  # the next replay trusts it directly


def test_a_rotation_not_signed_by_the_pinned_key_is_refused(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log, trust, new = rotated_log(kafka_bootstrap, f"{topic_prefix}rot-bad.", tmp_path, False)
    code, summary = replay(log, trust, tmp_path / "a")
    assert code == 1
    topic = EVENT_TOPICS["collection"].qualified(log.prefix)
    expected: set[tuple[str, int, int, str]] = set()
    for (service, partition), records in log.log.records.items():
        if service != "collection":
            continue
        rotated = False
        for offset, (_, value) in enumerate(records):
            fields = load(value)
            if fields["type"] == "integrity.key_rotated":
                expected.add((topic, partition, offset, "forged_rotation"))
                rotated = True
            elif rotated and fields["type"] == "integrity.chain_checkpoint":
                expected.add((topic, partition, offset, "unknown_key"))
    assert where(summary) == expected
    assert key_id_for(new.public_key()) not in trust.read_text()
