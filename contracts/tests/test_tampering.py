"""Each kind of tampering with a hash chain is detected, at the right place.

The log is built with ChainWriter exactly as a service would write it, read back as the
raw JSON objects an auditor gets from Kafka, tampered with, and verified.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from wastetrail_contracts import Actor, ChainVerifier, ChainWriter, encode, envelope_hash
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.examples import example_of
from wastetrail_contracts.integrity import ChainFailure, sign_checkpoint, verify_records
from wastetrail_contracts.keys import key_id_for

Record = dict[str, object]
T0 = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)
TOPIC = "wastetrail.collection.events"
KEY = Ed25519PrivateKey.generate()
KEY_ID = key_id_for(KEY.public_key())
PUBLIC = {KEY_ID: KEY.public_key()}
DEVICE = Actor(kind=ActorKind.DEVICE, id="dev-0042", role=Role.COLLECTOR)


def build_log(
    events: int = 8,
    checkpoint_after: tuple[int, ...] = (4, 8),
    key: Ed25519PrivateKey = KEY,
    partition: int = 0,
) -> list[Record]:
    """``events`` loads, with a checkpoint appended after the given counts of loads."""
    writer = ChainWriter("collection", TOPIC, partition, key)
    base = example_of(LoadCollected)
    for i in range(1, events + 1):
        load = base.model_copy(update={"load_id": f"load-{partition}-{i}", "grams": 1000 + i})
        writer.append(
            load,
            stream_id=f"load-{partition}-{i}",
            stream_version=1,
            actor=DEVICE,
            occurred_at=T0 + timedelta(minutes=i),
            recorded_at=T0 + timedelta(minutes=i, seconds=5),
            correlation_id=f"scan-{i}",
        )
        if i in checkpoint_after:
            writer.checkpoint(T0 + timedelta(minutes=i, seconds=30))
    # What an auditor reads: the raw JSON objects of the wire bytes.
    return [json.loads(encode(envelope)) for envelope in writer.envelopes]


def where(failures: list[ChainFailure]) -> list[tuple[str, int, str]]:
    return [(f.kind, f.chain_seq, f.event_id) for f in failures]


def rehash(record: Record) -> None:
    record["hash"] = envelope_hash(record)


def relink(records: list[Record], start: int) -> None:
    """What a careful forger does after changing records[start]: fix every later link."""
    rehash(records[start])
    for i in range(start + 1, len(records)):
        records[i]["prev_hash"] = records[i - 1]["hash"]
        if records[i]["type"] == "integrity.chain_checkpoint":
            records[i]["payload"]["head_hash"] = records[i - 1]["hash"]  # type: ignore[index]
        rehash(records[i])


def ids(log: list[Record]) -> list[str]:
    return [str(r["event_id"]) for r in log]


def test_an_untouched_log_verifies_with_every_checkpoint_valid() -> None:
    log = build_log()
    verifier = ChainVerifier(PUBLIC)

    failures = [f for record in log for f in verifier.check(record)] + verifier.finish()

    assert failures == []
    chain = str(log[0]["chain_id"])
    assert verifier.chains[chain].checkpoints == 2
    assert verifier.unsigned_tail(chain) == 0
    assert [r["chain_seq"] for r in log] == list(range(1, 11))


def test_modified_payload_is_reported_at_the_modified_event() -> None:
    log = build_log()
    log[2]["payload"]["grams"] = 999_999  # type: ignore[index]

    assert where(verify_records(log, PUBLIC)) == [("modified", 3, ids(log)[2])]


def test_modified_payload_with_recomputed_hash_is_reported_at_the_modified_event() -> None:
    log = build_log()
    log[2]["payload"]["grams"] = 999_999  # type: ignore[index]
    rehash(log[2])

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [("modified", 3, ids(log)[2])]
    assert "links to a different hash" in failures[0].detail


def test_rewriting_the_rest_of_the_chain_is_caught_by_the_next_checkpoint() -> None:
    log = build_log()
    log[2]["payload"]["grams"] = 999_999  # type: ignore[index]
    relink(log, 2)  # every hash is consistent again, but no signature can be redone

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [
        ("forged_checkpoint", 5, ids(log)[4]),
        ("forged_checkpoint", 10, ids(log)[9]),
    ]
    assert {f.detail for f in failures} == {"signature does not verify"}


def test_deleted_event_is_reported_at_the_missing_sequence_number() -> None:
    log = build_log()
    deleted = log.pop(2)

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [("deleted", 3, ids(log)[2])]
    assert deleted["event_id"] not in ids(log)


def test_deleted_event_is_reported_without_finish_once_the_window_is_exceeded() -> None:
    log = build_log(events=12, checkpoint_after=())
    del log[2]
    verifier = ChainVerifier(PUBLIC, window=3)

    failures = [f for record in log for f in verifier.check(record)]

    assert where(failures) == [("deleted", 3, ids(log)[2])]
    assert verifier.finish() == []


def _forged_load(log: list[Record], seq: int) -> Record:
    """A well-formed event a forger slips in as chain_seq ``seq``, linked to its predecessor."""
    forged = copy.deepcopy(log[seq - 1])
    forged["event_id"] = "019cb0e8-a880-7000-8000-0000000000ff"
    forged["payload"]["grams"] = 50_000  # type: ignore[index]
    forged["prev_hash"] = log[seq - 2]["hash"]
    rehash(forged)
    return forged


def test_inserted_event_before_the_genuine_one_is_reported_at_the_inserted_event() -> None:
    log = build_log()
    forged = _forged_load(log, 3)
    log.insert(2, forged)

    assert where(verify_records(log, PUBLIC)) == [("inserted", 3, forged["event_id"])]


def test_inserted_event_after_the_genuine_one_is_reported_at_the_inserted_event() -> None:
    log = build_log()
    forged = _forged_load(log, 3)
    log.insert(3, forged)

    assert where(verify_records(log, PUBLIC)) == [("inserted", 3, forged["event_id"])]


def test_inserted_unlinked_event_is_reported_as_inserted_not_as_a_modification() -> None:
    log = build_log()
    forged = _forged_load(log, 3)
    forged["prev_hash"] = "ab" * 32
    rehash(forged)
    log.insert(2, forged)

    assert where(verify_records(log, PUBLIC)) == [("inserted", 3, forged["event_id"])]


def test_exact_copy_of_an_earlier_event_is_a_duplicate_delivery_not_tampering() -> None:
    log = build_log()
    log.insert(6, copy.deepcopy(log[1]))

    assert verify_records(log, PUBLIC) == []
    verifier = ChainVerifier(PUBLIC)
    for record in log:
        verifier.check(record)
    assert sum(state.duplicates for state in verifier.chains.values()) == 1


def test_a_copy_with_another_event_id_at_a_taken_place_is_inserted() -> None:
    log = build_log()
    rival = copy.deepcopy(log[1])
    rival["event_id"] = "01a20000-0000-7000-8000-000000000001"
    rehash(rival)
    log.insert(6, rival)

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [("inserted", 2, rival["event_id"])]


def test_swapped_events_are_reported_as_reordered() -> None:
    log = build_log()
    log[2], log[3] = log[3], log[2]

    assert where(verify_records(log, PUBLIC)) == [("reordered", 4, ids(log)[2])]


def test_event_moved_later_is_reported_at_the_moved_event() -> None:
    log = build_log()
    moved = log.pop(1)
    log.insert(6, moved)

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [("reordered", 2, moved["event_id"])]
    assert "arrived after chain_seq 7" in failures[0].detail


def test_event_moved_earlier_is_reported_at_the_moved_event() -> None:
    log = build_log()
    moved = log.pop(6)
    log.insert(1, moved)

    assert where(verify_records(log, PUBLIC)) == [("reordered", 7, moved["event_id"])]


def test_forged_checkpoint_signature_is_rejected() -> None:
    log = build_log(checkpoint_after=(4,))
    checkpoint = log[4]
    assert checkpoint["type"] == "integrity.chain_checkpoint"
    other_key = Ed25519PrivateKey.generate()
    payload = checkpoint["payload"]
    payload["signature"] = sign_checkpoint(  # type: ignore[index]
        other_key, str(checkpoint["chain_id"]), 4, str(log[3]["hash"])
    )
    relink(log, 4)  # a careful forger keeps the links intact

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [("forged_checkpoint", 5, checkpoint["event_id"])]
    assert failures[0].detail == "signature does not verify"


def test_checkpoint_signing_another_head_is_rejected() -> None:
    log = build_log(checkpoint_after=(4,))
    checkpoint = log[4]
    chain = str(checkpoint["chain_id"])
    payload = checkpoint["payload"]
    # A genuine signature, but over an older head: it does not vouch for events 3 and 4.
    payload["chain_seq"] = 2  # type: ignore[index]
    payload["head_hash"] = log[1]["hash"]  # type: ignore[index]
    payload["signature"] = sign_checkpoint(KEY, chain, 2, str(log[1]["hash"]))  # type: ignore[index]
    relink(log, 4)  # a careful forger keeps the links intact

    assert where(verify_records(log, PUBLIC)) == [
        ("forged_checkpoint", 5, checkpoint["event_id"])
    ]


def test_checkpoint_signed_by_an_unknown_key_is_reported() -> None:
    stranger = Ed25519PrivateKey.generate()
    log = build_log(key=stranger)

    failures = verify_records(log, PUBLIC)

    assert where(failures) == [
        ("unknown_key", 5, ids(log)[4]),
        ("unknown_key", 10, ids(log)[9]),
    ]
    assert key_id_for(stranger.public_key()) in failures[0].detail


def test_checkpoint_signed_with_another_services_key_is_rejected() -> None:
    log = build_log()

    failures = verify_records(log, PUBLIC, key_services={KEY_ID: "billing"})

    assert [f.kind for f in failures] == ["forged_checkpoint", "forged_checkpoint"]
    assert "belongs to 'billing'" in failures[0].detail


def test_event_of_another_service_in_the_chain_is_reported() -> None:
    log = build_log(checkpoint_after=())
    log[1]["service"] = "billing"
    relink(log, 1)

    assert where(verify_records(log, PUBLIC)) == [("foreign", 2, ids(log)[1])]


def test_record_without_integrity_fields_or_not_json_is_malformed() -> None:
    log = build_log(events=2, checkpoint_after=())
    del log[1]["chain_seq"]

    failures = verify_records([*log, b"\xff not json"], PUBLIC)

    assert [(f.kind, f.offset) for f in failures] == [("malformed", 1), ("malformed", 2)]


def test_chains_of_different_partitions_are_verified_independently() -> None:
    left, right = build_log(partition=0), build_log(partition=1)
    left[5]["payload"]["grams"] = 1  # type: ignore[index]
    interleaved = [r for pair in zip(left, right, strict=True) for r in pair]

    failures = verify_records(interleaved, PUBLIC)

    assert [(f.kind, f.chain_id, f.chain_seq) for f in failures] == [
        ("modified", str(left[0]["chain_id"]), 6)
    ]


def test_failures_carry_the_kafka_offset_given_by_the_reader() -> None:
    log = build_log()
    log[2]["payload"]["grams"] = 7  # type: ignore[index]
    verifier = ChainVerifier(PUBLIC)

    failures = [f for offset, r in enumerate(log, start=1000) for f in verifier.check(r, offset)]

    assert [(f.kind, f.offset) for f in failures] == [("modified", 1002)]


def test_events_after_the_last_checkpoint_are_counted_as_unsigned() -> None:
    log = build_log(events=6, checkpoint_after=(4,))
    verifier = ChainVerifier(PUBLIC)
    for record in log:
        assert verifier.check(record) == []

    assert verifier.unsigned_tail(str(log[0]["chain_id"])) == 2


def test_verification_can_start_from_a_trusted_checkpointed_head() -> None:
    log = build_log()
    verifier = ChainVerifier(PUBLIC)
    chain = str(log[0]["chain_id"])
    verifier.trust_head(chain, 5, str(log[4]["hash"]))

    failures = [f for r in log[5:] for f in verifier.check(r)] + verifier.finish()

    assert failures == []
    assert verifier.chains[chain].checkpoints == 1


LOG = build_log(events=9, checkpoint_after=(3, 7))


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["modify", "modify_rehash", "delete", "swap", "move"]),
    data=st.data(),
)
def test_any_single_tampering_is_detected_where_it_happened(kind: str, data: st.DataObject) -> None:
    log = copy.deepcopy(LOG)
    # The last event has no successor to contradict it; only a later checkpoint could.
    i = data.draw(st.integers(0, len(log) - 2), label="position")
    target = str(log[i]["event_id"])
    if kind == "modify":
        log[i]["correlation_id"] = "forged"
    elif kind == "modify_rehash":
        log[i]["correlation_id"] = "forged"
        rehash(log[i])
    elif kind == "delete":
        del log[i]
        target = str(log[i]["event_id"])  # reported at the event after the hole
    elif kind == "swap":
        log[i], log[i + 1] = log[i + 1], log[i]
        target = str(log[i]["event_id"])  # the one that came first is blamed
    else:
        j = data.draw(st.integers(0, len(log) - 1).filter(lambda j: j != i), label="move to")
        log.insert(j, log.pop(i))
        if j == i + 1:  # moving one place later is a swap: the one now first is blamed
            target = str(log[i]["event_id"])

    failures = verify_records(log, PUBLIC)

    assert failures, f"{kind} at {i} went unnoticed"
    assert failures[0].event_id == target, (kind, i, failures)
    expected_kind = {
        "modify": "modified", "modify_rehash": "modified", "delete": "deleted",
        "swap": "reordered", "move": "reordered",
    }[kind]
    assert {f.kind for f in failures} == {expected_kind}, failures


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_redelivered_copies_anywhere_later_are_never_failures(data: st.DataObject) -> None:
    log = copy.deepcopy(LOG)
    i = data.draw(st.integers(0, len(log) - 1), label="position")
    j = data.draw(st.integers(i + 1, len(log)), label="copy to")
    log.insert(j, copy.deepcopy(log[i]))

    assert verify_records(log, PUBLIC) == []
