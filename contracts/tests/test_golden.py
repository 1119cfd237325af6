"""Golden vectors: the canonical encoding, the envelope hash and Kafka's murmur2.

These bytes and digests are written out literally. If one of these tests fails, the wire
format changed: every hash chain already written would stop verifying. Do not "fix" the
vector; find out what changed the encoding.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from wastetrail_contracts import (
    Actor,
    ChainVerifier,
    canonical_bytes,
    decode,
    encode,
    envelope_hash,
)
from wastetrail_contracts.chain import ChainHead, hash_is_valid, next_envelope, seal_envelope
from wastetrail_contracts.codec import InvalidEnvelope
from wastetrail_contracts.enums import ActorKind, RefusalReason, Role
from wastetrail_contracts.events.collection import LoadRefused
from wastetrail_contracts.topics import murmur2, partition_for

CHAIN = "collection:wastetrail.collection.events:2"
DEVICE = Actor(kind=ActorKind.DEVICE, id="dev-1", role=Role.COLLECTOR)
REFUSED_AT = datetime(2026, 3, 3, 0, 35, tzinfo=UTC)

GOLDEN_OBJECT_BYTES = (
    b'{"a":[true,null,"H\xe1\xbb\x99 \xc3\xb4ng \xc3\x82n"],"b":1,"c":{"y":0.5,"z":-2}}'
)
GOLDEN_OBJECT_SHA256 = "9ab612088c8a547e15d81a6277f9f861a0020577a3f28be959eb9175a7720a31"

GOLDEN_ENVELOPE_BYTES = (
    b'{"actor":{"id":"dev-1","kind":"device","role":"collector"},"causation_id":null,'
    b'"chain_id":"collection:wastetrail.collection.events:2","chain_seq":1,'
    b'"correlation_id":"corr-1","event_id":"019cb0e8-a880-7000-8000-000000000001",'
    b'"hash":"1916c0b9f2dee5c13787d6e948730882eea1bd1c5dcf36f275403ca796773ae4",'
    b'"occurred_at":"2026-03-03T00:35:00Z","payload":{"category":null,"commune":"an-hoa",'
    b'"device_id":"dev-1","generator_id":"gen-1","idempotency_key":"dev-1:7",'
    b'"note":"R\xc3\xa1c ch\xc6\xb0a ph\xc3\xa2n lo\xe1\xba\xa1i","photo_sha256":null,'
    b'"reason":"unsorted","refusal_id":"ref-1","refused_at":"2026-03-03T00:35:00Z",'
    b'"trip_id":null},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"recorded_at":"2026-03-03T00:35:01.250000Z","schema_version":1,"service":"collection",'
    b'"stream_id":"ref-1","stream_version":1,"type":"collection.load_refused"}'
)
GOLDEN_HASH_1 = "1916c0b9f2dee5c13787d6e948730882eea1bd1c5dcf36f275403ca796773ae4"
GOLDEN_HASH_2 = "6eb3ef2beab961efe0a94c522689b11ba6dfcc5fab05b456481ec6c1a85e407e"


def _refusal() -> LoadRefused:
    return LoadRefused(
        refusal_id="ref-1",
        generator_id="gen-1",
        commune="an-hoa",
        reason=RefusalReason.UNSORTED,
        note="Rác chưa phân loại",
        refused_at=REFUSED_AT,
        device_id="dev-1",
        idempotency_key="dev-1:7",
    )


def _golden_pair() -> tuple[bytes, bytes]:
    first = next_envelope(
        ChainHead(CHAIN),
        _refusal(),
        service="collection",
        stream_id="ref-1",
        stream_version=1,
        actor=DEVICE,
        occurred_at=REFUSED_AT,
        recorded_at=datetime(2026, 3, 3, 0, 35, 1, 250000, tzinfo=UTC),
        correlation_id="corr-1",
        event_id="019cb0e8-a880-7000-8000-000000000001",
    )
    second = next_envelope(
        ChainHead(CHAIN, 1, first.hash),
        _refusal(),
        service="collection",
        stream_id="ref-1",
        stream_version=2,
        actor=DEVICE,
        occurred_at=REFUSED_AT,
        recorded_at=datetime(2026, 3, 3, 0, 36, tzinfo=UTC),
        correlation_id="corr-1",
        causation_id="019cb0e8-a880-7000-8000-000000000001",
        event_id="019cb0e8-a880-7000-8000-000000000002",
    )
    return encode(first), encode(second)


def test_canonical_bytes_sort_keys_use_utf8_and_no_whitespace() -> None:
    obj = {"b": 1, "a": [True, None, "Hộ ông Ân"], "c": {"z": -2, "y": 0.5}}

    assert canonical_bytes(obj) == GOLDEN_OBJECT_BYTES
    assert hashlib.sha256(canonical_bytes(obj)).hexdigest() == GOLDEN_OBJECT_SHA256


def test_canonical_bytes_refuse_nan() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"x": float("nan")})


def test_envelope_encoding_and_hash_are_the_golden_vector() -> None:
    first, second = _golden_pair()

    assert first == GOLDEN_ENVELOPE_BYTES
    assert json.loads(first)["hash"] == GOLDEN_HASH_1
    assert envelope_hash(json.loads(first)) == GOLDEN_HASH_1
    # The second event's hash covers the first one's through prev_hash.
    assert json.loads(second)["prev_hash"] == GOLDEN_HASH_1
    assert json.loads(second)["hash"] == GOLDEN_HASH_2


def test_golden_envelope_decodes_and_reencodes_to_the_same_bytes() -> None:
    envelope = decode(GOLDEN_ENVELOPE_BYTES)

    assert encode(envelope) == GOLDEN_ENVELOPE_BYTES
    assert hash_is_valid(envelope)


def test_golden_chain_verifies_and_a_one_byte_change_does_not() -> None:
    first, second = _golden_pair()
    verifier = ChainVerifier({})
    assert verifier.check(json.loads(first)) == []
    assert verifier.check(json.loads(second)) == []

    tampered = GOLDEN_ENVELOPE_BYTES.replace(b'"dev-1:7"', b'"dev-1:8"')
    failures = ChainVerifier({}).check(json.loads(tampered))
    assert [(f.kind, f.chain_seq) for f in failures] == [("modified", 1)]


def test_seal_envelope_computes_the_hash_and_refuses_a_given_one() -> None:
    fields = json.loads(GOLDEN_ENVELOPE_BYTES)
    fields.pop("hash")

    assert seal_envelope(fields).hash == GOLDEN_HASH_1
    with pytest.raises(InvalidEnvelope, match="hash"):
        seal_envelope({**fields, "hash": GOLDEN_HASH_1})


def test_hash_of_non_utc_offset_time_is_the_hash_of_its_utc_form() -> None:
    # Times are normalised before hashing, so "+00:00" and "Z" inputs seal identically.
    fields = json.loads(GOLDEN_ENVELOPE_BYTES)
    fields.pop("hash")
    fields["occurred_at"] = "2026-03-03T00:35:00+00:00"

    assert seal_envelope(fields).hash == GOLDEN_HASH_1


# Kafka's own vectors: org.apache.kafka.common.utils.UtilsTest.testMurmur2.
KAFKA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_MURMUR2)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_for_is_kafkas_positive_murmur2_modulo() -> None:
    # toPositive(murmur2("21")) % 4 = (-973932308 & 0x7fffffff) % 4
    assert partition_for("21", 4) == (-973932308 & 0x7FFFFFFF) % 4 == 0
    assert partition_for("foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    assert partition_for("abc", 1) == 0
