"""Decoding errors a consumer routes to its dead-letter topic, and upcasting old versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from wastetrail_contracts import (
    SYSTEM_ACTOR,
    ContractError,
    Event,
    InvalidEnvelope,
    InvalidPayload,
    UnknownEventType,
    codec,
    decode,
    decode_event,
    encode,
    parse_payload,
    register_upcaster,
)
from wastetrail_contracts.base import Grams
from wastetrail_contracts.chain import seal_envelope
from wastetrail_contracts.codec import JsonObject, payload_json
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.examples import example_of


def wire(event_type: str, version: int, payload: dict[str, Any]) -> bytes:
    return encode(
        seal_envelope(
            {
                "event_id": "019cb0e8-a880-7000-8000-000000000001",
                "type": event_type,
                "schema_version": version,
                "service": "collection",
                "stream_id": "s-1",
                "stream_version": 1,
                "occurred_at": datetime(2026, 3, 3, tzinfo=UTC),
                "recorded_at": datetime(2026, 3, 3, tzinfo=UTC),
                "actor": SYSTEM_ACTOR,
                "correlation_id": "c-1",
                "payload": payload,
                "chain_id": "collection:wastetrail.collection.events:0",
                "chain_seq": 1,
                "prev_hash": "0" * 64,
            }
        )
    )


LOAD = payload_json(example_of(LoadCollected))
GOOD = wire("collection.load_collected", 1, LOAD)


def test_a_valid_envelope_decodes_to_its_event() -> None:
    envelope, event = decode_event(GOOD)
    assert envelope.type == "collection.load_collected"
    assert event == example_of(LoadCollected)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
        (b'{"event_id": "x"}', "envelope: event_id"),
        (GOOD.replace(b'"chain_seq":1', b'"chain_seq":1.0'), "envelope: chain_seq"),
        (GOOD.replace(b'"chain_seq":1', b'"chain_seq":NaN'), "not JSON"),
        (GOOD.replace(b'"chain_seq":1', b'"chain_seq":1e400'), "not JSON"),
        (GOOD.replace(b'"stream_id":"s-1"', b'"stream_id":"s-1","stream_id":"s-2"'),
         "duplicate key 'stream_id'"),
        (GOOD.replace(b'"stream_id":"s-1"', b'"stream_id":"s-\\ud800"'), "UTF-8"),
        (GOOD.replace(b'"service":"collection"', b'"service":"billing"'), "chain_id"),
        (GOOD.replace(b'"occurred_at":"2026-03-03T00:00:00Z"',
                      b'"occurred_at":"2026-03-03T07:00:00"'), "occurred_at"),
        (GOOD[:-1] + b',"extra":1}', "extra"),
    ],
    ids=[
        "invalid utf-8", "empty", "truncated", "array", "string", "missing fields",
        "float seq", "NaN", "infinite number", "duplicate key", "lone surrogate",
        "foreign chain", "naive time", "extra field",
    ],
)
def test_garbage_bytes_raise_invalid_envelope_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidEnvelope) as caught:
        decode(data)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ContractError)


def test_unknown_event_type_raises_unknown_event_type() -> None:
    envelope = decode(wire("collection.load_teleported", 1, LOAD))  # the envelope is fine

    with pytest.raises(UnknownEventType, match=r"unknown event type 'collection\.load_teleported'"):
        parse_payload(envelope)


def test_newer_schema_version_raises_unknown_event_type() -> None:
    data = wire("collection.load_collected", 2, LOAD)

    with pytest.raises(UnknownEventType, match="version 2 is newer than this reader"):
        decode_event(data)


def test_invalid_payload_raises_invalid_payload() -> None:
    with pytest.raises(InvalidPayload, match="grams"):
        decode_event(wire("collection.load_collected", 1, {**LOAD, "grams": -1}))


class Widget(Event):
    """A test-only event at version 2: version 1 carried kilograms as ``kg``."""

    event_type: ClassVar[str] = "test.widget"
    schema_version: ClassVar[int] = 2

    grams: Grams
    label: str


@pytest.fixture
def widget_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register Widget v2 for one test only; monkeypatch restores the real registry."""
    monkeypatch.setattr(codec, "REGISTRY", {**codec.REGISTRY, ("test.widget", 2): Widget})
    monkeypatch.setattr(codec, "LATEST_VERSION", {**codec.LATEST_VERSION, "test.widget": 2})
    monkeypatch.setattr(codec, "UPCASTERS", dict(codec.UPCASTERS))


@pytest.mark.usefixtures("widget_registry")
def test_older_version_is_upcast_to_the_latest_model() -> None:
    @register_upcaster("test.widget", 1)
    def kg_to_grams(payload: JsonObject) -> JsonObject:
        kg = payload.pop("kg")
        assert isinstance(kg, int)
        return {**payload, "grams": kg * 1000}

    _, event = decode_event(wire("test.widget", 1, {"kg": 3, "label": "bin"}))

    assert event == Widget(grams=3000, label="bin")
    # The current version needs no upcasting.
    assert decode_event(wire("test.widget", 2, {"grams": 5, "label": "x"}))[1] == Widget(
        grams=5, label="x"
    )


@pytest.mark.usefixtures("widget_registry")
def test_older_version_without_an_upcaster_is_unknown() -> None:
    with pytest.raises(UnknownEventType, match="version 1 has no upcaster to 2"):
        decode_event(wire("test.widget", 1, {"kg": 3, "label": "bin"}))


@pytest.mark.usefixtures("widget_registry")
def test_upcaster_failing_on_a_bad_old_payload_is_an_invalid_payload() -> None:
    register_upcaster("test.widget", 1)(lambda payload: {"grams": payload["kg"]})

    with pytest.raises(InvalidPayload, match="upcasting version 1 failed"):
        decode_event(wire("test.widget", 1, {"label": "no kg"}))


def test_the_test_upcasters_did_not_leak_into_the_registry() -> None:
    assert "test.widget" not in codec.LATEST_VERSION
    assert ("test.widget", 1) not in codec.UPCASTERS


def test_every_registered_type_is_unique_and_dotted() -> None:
    names = [cls.event_type for cls in codec.ALL_EVENTS]
    assert len(names) == len(set(names))
    assert all(name.count(".") == 1 for name in names)
    assert sorted(codec.REGISTRY) == sorted((n, 1) for n in names)


def test_encode_is_canonical_json() -> None:
    data = json.loads(GOOD)
    assert json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode() == GOOD
