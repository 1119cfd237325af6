"""Envelope ↔ bytes, canonical hashing, and the (type, version) → model registry."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from pydantic import JsonValue, ValidationError

from wastetrail_contracts.base import Event
from wastetrail_contracts.envelope import Envelope
from wastetrail_contracts.events import billing, collection, custody, epr, integrity
from wastetrail_contracts.events import transfer, treatment

E = TypeVar("E", bound=Event)
JsonObject = dict[str, JsonValue]
Upcaster = Callable[[JsonObject], JsonObject]


class ContractError(ValueError):
    """An event that cannot be accepted; ``reason`` is what a dead-letter record carries."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(ContractError):
    """No model is registered for this (type, schema version)."""


class InvalidEnvelope(ContractError):
    """The bytes are not a valid envelope (not JSON, a missing field, a bad value)."""


class InvalidPayload(ContractError):
    """The envelope is fine but its payload violates the event's schema."""


ALL_EVENTS: tuple[type[Event], ...] = (
    *collection.EVENTS,
    *transfer.EVENTS,
    *treatment.EVENTS,
    *custody.EVENTS,
    *billing.EVENTS,
    *epr.EVENTS,
    *integrity.EVENTS,
)

REGISTRY: dict[tuple[str, int], type[Event]] = {
    (cls.event_type, cls.schema_version): cls for cls in ALL_EVENTS
}
LATEST_VERSION: dict[str, int] = {}
for _cls in ALL_EVENTS:
    LATEST_VERSION[_cls.event_type] = max(LATEST_VERSION.get(_cls.event_type, 0), _cls.schema_version)

# (type, from_version) → function turning a payload of that version into from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def canonical_bytes(obj: Mapping[str, object]) -> bytes:
    """The canonical encoding: JSON, keys sorted, UTF-8, no insignificant whitespace."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def envelope_hash(envelope_fields: Mapping[str, object]) -> str:
    """SHA-256 (hex) over the canonical encoding of every envelope field except ``hash``."""
    body = {k: v for k, v in envelope_fields.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def envelope_to_json(envelope: Envelope) -> JsonObject:
    """The envelope as a JSON object (what is hashed and put on the wire)."""
    return envelope.model_dump(mode="json")


def encode(envelope: Envelope) -> bytes:
    """Envelope → wire bytes (canonical JSON)."""
    return canonical_bytes(envelope_to_json(envelope))


def decode(data: bytes) -> Envelope:
    """Wire bytes → envelope; raises InvalidEnvelope with the reason."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEnvelope(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidEnvelope("not a JSON object")
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEnvelope(f"envelope: {_first_error(exc)}") from exc


def payload_json(event: Event) -> JsonObject:
    """An event payload as a JSON object."""
    return event.model_dump(mode="json")


def model_for(event_type: str, schema_version: int) -> type[Event]:
    """The registered model; raises UnknownEventType for an unknown type or version."""
    latest = LATEST_VERSION.get(event_type)
    if latest is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    if schema_version > latest:
        raise UnknownEventType(
            f"{event_type} schema version {schema_version} is newer than this reader ({latest})"
        )
    return REGISTRY[(event_type, latest)]


def parse_payload(envelope: Envelope) -> Event:
    """The envelope's payload as its (latest) model, upcasting older versions."""
    cls = model_for(envelope.type, envelope.schema_version)
    payload: JsonObject = dict(envelope.payload)
    version = envelope.schema_version
    while version < cls.schema_version:
        upcast = UPCASTERS.get((envelope.type, version))
        if upcast is None:
            raise UnknownEventType(
                f"{envelope.type} schema version {version} has no upcaster to {version + 1}"
            )
        payload = upcast(payload)
        version += 1
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        raise InvalidPayload(f"{envelope.type}: {_first_error(exc)}") from exc


def payload_as(envelope: Envelope, cls: type[E]) -> E:
    """Parse the payload and check it is of the expected class."""
    event = parse_payload(envelope)
    if not isinstance(event, cls):
        raise InvalidPayload(f"expected {cls.event_type}, got {envelope.type}")
    return event


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def event_types(events: Iterable[type[Event]] = ALL_EVENTS) -> list[str]:
    """Every registered event type name."""
    return sorted({cls.event_type for cls in events})
