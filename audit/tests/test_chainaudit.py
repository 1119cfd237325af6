"""Each kind of chain tampering is named and placed at its exact offset (no broker)."""

from __future__ import annotations

from _auditlog import LogBuilder, keyring, load, make_keys, rehash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wastetrail_audit.chainaudit import PartitionChainAudit
from wastetrail_contracts.events.collection import CollectorRegistered


def _chain(n: int = 30) -> tuple[list[dict[str, object]], dict[str, Ed25519PrivateKey]]:
    keys = make_keys()
    log = LogBuilder(keys, checkpoint_every=10)
    for i in range(n):
        log.emit(CollectorRegistered(collector_id=f"col-{i}", name=f"C{i}"), "stream-1")
    log.seal()
    ((_, records),) = log.records.items()
    return [load(v) for _, v in records], keys


def _audit(
    records: list[dict[str, object]], keys: dict[str, Ed25519PrivateKey]
) -> set[tuple[int, str]]:
    ring = keyring(keys)
    audit = PartitionChainAudit(ring.public_keys, ring.services)
    found = []
    for offset, fields in enumerate(records):
        found += audit.feed(offset, fields)
    found += audit.finish()
    return {(f.offset, f.kind) for f in found}


def test_clean_chain_has_no_findings_and_is_fully_signed() -> None:
    records, keys = _chain()
    ring = keyring(keys)
    audit = PartitionChainAudit(ring.public_keys, ring.services)
    for offset, fields in enumerate(records):
        assert audit.feed(offset, fields) == []
    assert audit.finish() == []
    (progress,) = audit.progress().values()
    assert progress.checkpoints == 3  # 30 events, one checkpoint every 10
    assert progress.unsigned_tail == 0


def test_modified_payload_is_caught_at_its_offset() -> None:
    records, keys = _chain()
    payload = dict(records[5]["payload"])  # type: ignore[arg-type]
    payload["name"] = "forged"
    records[5] = {**records[5], "payload": payload}
    assert _audit(records, keys) == {(5, "modified")}


def test_deleted_event_is_caught_at_the_offset_after_the_gap() -> None:
    records, keys = _chain()
    del records[7]
    assert _audit(records, keys) == {(7, "deleted")}


def test_swapped_events_are_reordered_at_the_first_of_the_pair() -> None:
    records, keys = _chain()
    records[3], records[4] = records[4], records[3]
    assert _audit(records, keys) == {(3, "reordered")}


def test_event_moved_far_back_is_reordered() -> None:
    records, keys = _chain()
    moved = records.pop(2)
    records.insert(6, moved)
    assert _audit(records, keys) == {(6, "reordered")}


def test_carefully_inserted_event_is_caught_at_its_own_offset() -> None:
    records, keys = _chain()
    # A forger who knows the hash scheme: right seq, right prev_hash, recomputed hash.
    fake = rehash({**records[4], "event_id": "00000000-0000-4000-8000-000000000001",
                   "payload": {"collector_id": "col-fake", "name": "Fake"},
                   "chain_seq": records[4]["chain_seq"], "prev_hash": records[4]["prev_hash"]})
    records.insert(4, fake)
    assert _audit(records, keys) == {(4, "inserted")}


def test_insert_after_the_original_is_caught_at_its_own_offset() -> None:
    records, keys = _chain()
    fake = rehash({**records[4], "event_id": "00000000-0000-4000-8000-000000000002",
                   "payload": {"collector_id": "col-fake", "name": "Fake"}})
    records.insert(5, fake)
    assert _audit(records, keys) == {(5, "inserted")}


def test_redelivered_copy_is_a_duplicate_not_a_failure() -> None:
    records, keys = _chain()
    records.insert(12, records[11])  # the relay published the same event twice
    ring = keyring(keys)
    audit = PartitionChainAudit(ring.public_keys, ring.services)
    duplicates = []
    for offset, fields in enumerate(records):
        assert audit.feed(offset, fields) == []
        duplicates.append(audit.last_was_duplicate)
    assert audit.finish() == []
    assert [i for i, d in enumerate(duplicates) if d] == [12]
    (progress,) = audit.progress().values()
    assert progress.duplicates == 1


def test_old_event_copied_under_a_new_identity_is_inserted() -> None:
    records, keys = _chain()
    records.insert(12, rehash({**records[3], "event_id": "00000000-0000-4000-8000-0000000000aa"}))
    assert _audit(records, keys) == {(12, "inserted")}


def test_rewritten_chain_is_caught_by_the_next_checkpoint() -> None:
    records, keys = _chain()
    # Alter event 2 and recompute every hash after it: the chain itself is consistent
    # again, but the checkpoint at offset 10 cannot be re-signed without the key.
    forger = Ed25519PrivateKey.generate()
    from wastetrail_contracts.integrity import sign_checkpoint

    prev = records[1]["hash"]
    for i in range(2, len(records)):
        fields = dict(records[i])
        if i == 2:
            fields["payload"] = {"collector_id": "col-2", "name": "Rewritten"}
        fields["prev_hash"] = prev
        if fields["type"] == "integrity.chain_checkpoint":
            payload = dict(fields["payload"])  # type: ignore[arg-type]
            payload["head_hash"] = prev
            payload["signature"] = sign_checkpoint(
                forger, str(payload["chain_id"]), int(payload["chain_seq"]), str(prev)
            )
            fields["payload"] = payload
        records[i] = rehash(fields)
        prev = records[i]["hash"]
    checkpoints = {i for i, r in enumerate(records) if r["type"] == "integrity.chain_checkpoint"}
    assert _audit(records, keys) == {(i, "forged_checkpoint") for i in checkpoints}


def test_resuming_from_progress_continues_the_chain() -> None:
    records, keys = _chain()
    ring = keyring(keys)
    first = PartitionChainAudit(ring.public_keys, ring.services)
    for offset, fields in enumerate(records[:15]):
        assert first.feed(offset, fields) == []
    second = PartitionChainAudit(ring.public_keys, ring.services, start=first.progress())
    for offset, fields in enumerate(records[15:], start=15):
        assert second.feed(offset, fields) == []
    # a resumed verifier still notices a gap right at the resume point
    third = PartitionChainAudit(ring.public_keys, ring.services, start=first.progress())
    assert {(f.offset, f.kind) for f in third.feed(16, records[16]) + third.finish()} == {
        (16, "deleted")
    }
