"""The auditor's fast path (one parse, hash from the raw bytes) agrees with the strict path."""

from __future__ import annotations

import json

import pytest
from wastetrail_contracts import ChainWriter
from wastetrail_contracts.codec import (
    InvalidEnvelope,
    encode,
    envelope_from_json,
    envelope_from_loaded,
    envelope_hash,
    load_canonical,
    load_json_object,
)
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.envelope import Actor
from wastetrail_contracts.examples import EXAMPLES, at

ACTOR = Actor(kind=ActorKind.DEVICE, id="dev-1", role=Role.COLLECTOR)


def _records() -> list[bytes]:
    writer = ChainWriter("collection", "wastetrail.collection.events", 0)
    return [
        encode(writer.append(event, stream_id=f"s-{i}", stream_version=1, actor=ACTOR,
                             occurred_at=at(i), recorded_at=at(i), correlation_id="c-1"))
        for i, event in enumerate(EXAMPLES)
    ]


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_canonical_records_hash_the_same_on_both_paths(index: int) -> None:
    data = _records()[index]
    raw, digest = load_canonical(data)
    assert raw == load_json_object(data)
    assert digest == envelope_hash(raw) == raw["hash"]
    assert envelope_from_loaded(raw) == envelope_from_json(load_json_object(data))


def test_non_canonical_or_tampered_bytes_take_the_strict_path() -> None:
    data = _records()[0]
    spaced = json.dumps(json.loads(data), indent=1).encode()
    raw, digest = load_canonical(spaced)
    assert digest is None  # not canonical: the caller hashes the strict way
    assert envelope_hash(raw) == raw["hash"]
    tampered = data.replace(b'"dev-1"', b'"dev-2"')
    raw, digest = load_canonical(tampered)
    assert digest is not None and digest != raw["hash"]  # the change shows in the hash


@pytest.mark.parametrize(
    "actor",
    [
        {"kind": "system", "id": "dev-1", "role": "collector"},  # the model validator
        {"kind": "device", "id": "", "role": "collector"},  # a field constraint
        {"kind": "device", "id": "dev-1", "role": "collector", "extra": 1},  # extra field
        {"kind": "device", "id": ["dev-1"], "role": "collector"},  # not a string
    ],
)
def test_an_actor_seen_before_does_not_hide_a_bad_actor(actor: dict[str, object]) -> None:
    # The first record puts its (valid) actor in the validated-actor cache.
    raw = load_json_object(_records()[0])
    assert envelope_from_loaded(raw).actor == ACTOR
    bad = {**raw, "actor": actor}
    with pytest.raises(InvalidEnvelope) as fast:
        envelope_from_loaded(bad)
    with pytest.raises(InvalidEnvelope) as strict:
        envelope_from_json(bad)
    assert fast.value.reason == strict.value.reason
    assert fast.value.reason.startswith("envelope: actor")


def test_a_cached_actor_is_the_validated_actor() -> None:
    raws = [load_json_object(data) for data in _records()[:3]]
    fast = [envelope_from_loaded(raw) for raw in raws]
    assert fast == [envelope_from_json(raw) for raw in raws]
    assert all(env.actor == ACTOR for env in fast)
