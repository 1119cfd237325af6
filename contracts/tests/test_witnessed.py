"""Checkpoints that witness other chains' heads sign them too; checkpoints of logs written
before the field existed (no ``witnessed``, the v1 signed message) still verify."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.codec import envelope_hash, envelope_to_json, parse_payload
from wastetrail_contracts.envelope import Envelope
from wastetrail_contracts.events.collection import CollectorRegistered
from wastetrail_contracts.events.integrity import ChainCheckpoint, WitnessedHead
from wastetrail_contracts.integrity import ChainVerifier, sign_checkpoint
from wastetrail_contracts.keys import key_id_for

AT = datetime(2026, 1, 1, tzinfo=UTC)
HEAD = WitnessedHead(chain="collection:wastetrail.collection.events:1", seq=9, hash="a" * 64)


def _chain(witnessed: tuple[WitnessedHead, ...] = ()) -> tuple[list[dict[str, object]],
                                                                Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    writer = ChainWriter("transfer", "wastetrail.transfer.events", 0, key)
    writer.append(CollectorRegistered(collector_id="c", name="C"), stream_id="c",
                  stream_version=1, actor=SYSTEM_ACTOR, occurred_at=AT, recorded_at=AT,
                  correlation_id="c")
    writer.checkpoint(AT, witnessed=witnessed)
    return [envelope_to_json(e) for e in writer.envelopes], key


def _kinds(records: list[dict[str, object]], key: Ed25519PrivateKey) -> list[str]:
    verifier = ChainVerifier({key_id_for(key.public_key()): key.public_key()})
    found = [str(f.kind) for r in records for f in verifier.check(r)]
    return found + [str(f.kind) for f in verifier.finish()]


def test_witnessed_heads_are_signed() -> None:
    records, key = _chain((HEAD,))
    assert _kinds(records, key) == []
    payload = records[1]["payload"]
    assert isinstance(payload, dict)
    forged = {**records[1], "payload": {**payload, "witnessed": [
        {**HEAD.model_dump(), "seq": 3}]}}  # claim the other chain was shorter
    forged["hash"] = envelope_hash(forged)
    assert _kinds([records[0], forged], key) == ["forged_checkpoint"]


def test_a_checkpoint_written_before_witnessed_heads_still_verifies() -> None:
    records, key = _chain()
    head = records[0]
    old_payload = {  # what the checkpointer wrote then: no "witnessed" member at all
        "chain_id": head["chain_id"], "chain_seq": 1, "head_hash": head["hash"],
        "key_id": key_id_for(key.public_key()), "signed_at": "2026-01-01T00:00:00Z",
        "signature": sign_checkpoint(key, str(head["chain_id"]), 1, str(head["hash"])),
    }
    old = {**records[1], "payload": old_payload}
    old["hash"] = envelope_hash(old)
    assert _kinds([head, old], key) == []
    event = parse_payload(Envelope.model_validate(old))
    assert isinstance(event, ChainCheckpoint) and event.witnessed == ()
