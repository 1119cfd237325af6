"""Envelope ↔ bytes, canonical hashing, and the (type, version) → model registry."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import orjson
from pydantic import JsonValue, ValidationError

from wastetrail_contracts.base import Event
from wastetrail_contracts.envelope import Actor, Envelope
from wastetrail_contracts.events import (
    billing,
    collection,
    custody,
    epr,
    integrity,
    transfer,
    treatment,
)

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
    LATEST_VERSION[_cls.event_type] = max(
        LATEST_VERSION.get(_cls.event_type, 0), _cls.schema_version
    )

# (type, from_version) → function turning a payload of that version into from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register the function that turns ``from_version`` payloads into the next.

    When a model's ``schema_version`` is raised, its module registers one upcaster per older
    version, so consumers keep reading events written years ago.
    """

    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


_encode_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

# orjson writes what the reference encoder above writes — same key order (code points),
# same escapes (only '"', '\\' and controls; everything else as UTF-8), same integers, same
# shortest round-trip floats — except floats of magnitude below 1e-4, which Python writes
# as "1e-05" and orjson as "0.00001" or "1e-5", and NaN/infinities, which orjson writes as
# null where the reference refuses them. tests/contracts check this over every code point
# and a million floats. A number that starts like a tiny float sends the object to the
# reference encoder (a string that merely looks like one costs only time).
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
_NULL_VALUE = re.compile(rb"[:,\[]null")
_NUMBER_CHARS = frozenset(b"0123456789.")
_VALUE_STARTS = frozenset(b":,[")


def _may_hold_tiny_float(out: bytes) -> bool:
    """Whether orjson's output may hold a float below 1e-4 (written "0.0000…" or "…e-…").

    Cheap on what the log holds: ``find`` skips ahead in C, and an "e-" only counts when
    the digits before it start a JSON value (so "vehicle-1" or a UUID's "8e-" do not).
    """
    if b"0.0000" in out:
        return True
    at = out.find(b"e-")
    while at != -1:
        start = at - 1
        while start >= 0 and out[start] in _NUMBER_CHARS:
            start -= 1
        if start < at - 1:  # at least one digit before the exponent
            if start >= 0 and out[start] == 0x2D:  # a minus sign
                start -= 1
            if start < 0 or out[start] in _VALUE_STARTS:
                return True
        at = out.find(b"e-", at + 2)
    return False


def _reference_bytes(obj: object) -> bytes:
    return _encode_canonical(obj).encode("utf-8")


def canonical_bytes_finite(obj: Mapping[str, object]) -> bytes:
    """``canonical_bytes`` for an object whose floats are known to be finite.

    For what a validated model dumped (every model refuses NaN and infinities) or what a
    strict parser read: skips the scan for a NaN that orjson would have written as null.
    """
    try:
        out = orjson.dumps(obj, option=_ORJSON_OPTIONS)
    except TypeError:  # a big integer, a lone surrogate, a non-JSON type: the reference decides
        return _reference_bytes(obj)
    if _may_hold_tiny_float(out):
        return _reference_bytes(obj)
    return out


def canonical_bytes(obj: Mapping[str, object]) -> bytes:
    """The canonical encoding: JSON, keys sorted, UTF-8, no insignificant whitespace.

    Non-ASCII text is written as UTF-8, not as ``\\u`` escapes; integers as digits;
    floats in Python's shortest round-trip form. NaN and infinities are refused.
    The reference is ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``; orjson produces the same bytes ten times
    faster and is used whenever it provably agrees (see ``_may_hold_tiny_float``).
    """
    out = canonical_bytes_finite(obj)
    if _NULL_VALUE.search(out) is not None and _has_non_finite(obj):
        return _reference_bytes(obj)  # raises ValueError, as the reference always did
    return out


def _has_non_finite(obj: Mapping[str, object]) -> bool:
    stack: list[Iterable[object]] = [obj.values()]
    while stack:
        for value in stack.pop():
            if isinstance(value, float):
                if not math.isfinite(value):
                    return True
            elif isinstance(value, Mapping):
                stack.append(value.values())
            elif isinstance(value, list | tuple):
                stack.append(value)
    return False


def envelope_hash(envelope_fields: Mapping[str, object]) -> str:
    """SHA-256 (hex) over the canonical encoding of every envelope field except ``hash``."""
    body = {k: v for k, v in envelope_fields.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def envelope_hash_finite(envelope_fields: Mapping[str, object]) -> str:
    """``envelope_hash`` for fields whose floats are known to be finite (validated ones)."""
    body = {k: v for k, v in envelope_fields.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes_finite(body)).hexdigest()


def envelope_to_json(envelope: Envelope) -> JsonObject:
    """The envelope as a JSON object (what is hashed and put on the wire)."""
    return envelope.model_dump(mode="json")


def encode(envelope: Envelope) -> bytes:
    """Envelope → wire bytes (canonical JSON)."""
    return canonical_bytes_finite(envelope_to_json(envelope))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as infinity, which JSON cannot carry back
        raise ValueError(f"number {text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # Parsers disagree on which of two equal keys wins; a tamper-evident log must not be
    # read differently by the producer, the consumer and the auditor.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def load_json_object(data: bytes) -> JsonObject:
    """Wire bytes → the raw JSON object (no schema check); what auditors hash.

    Raises InvalidEnvelope for bytes that are not one strict JSON object: invalid UTF-8,
    NaN/Infinity, duplicate keys, or text that cannot be re-encoded as UTF-8.
    """
    try:
        raw: object = json.loads(
            data,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEnvelope(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidEnvelope("not a JSON object")
    if b"\\u" in data:
        # Escapes may smuggle in a lone surrogate, which has no UTF-8 form and so no hash.
        try:
            canonical_bytes(raw)
        except ValueError as exc:
            raise InvalidEnvelope(f"not encodable as UTF-8: {exc}") from exc
    return raw


def load_canonical(data: bytes) -> tuple[JsonObject, str | None]:
    """Wire bytes → (raw JSON object, its ``envelope_hash``) — one parse, one encoding.

    When the bytes are exactly the canonical encoding of the object they parse to (what
    every producer writes), they cannot hold a duplicate key or a lone surrogate, and the
    canonical encoding of every field but ``hash`` is the bytes minus the ``hash`` member:
    its SHA-256 is the envelope hash. Any other bytes take the strict path
    (``load_json_object``: same object, same errors) and the hash is None (the caller
    computes ``envelope_hash`` as before). Raises InvalidEnvelope like load_json_object.
    """
    try:
        # orjson's parser: fast; whatever it reads differently (a duplicate key, 1e400, a
        # non-shortest float) fails the canonical comparison below.
        raw: object = orjson.loads(data)
    except ValueError:  # not UTF-8 or not JSON: let the strict path word the reason
        return load_json_object(data), None
    if isinstance(raw, dict):
        digest = _canonical_digest(data, raw)
        if digest is not None:
            return raw, digest
    return load_json_object(data), None


def _canonical_digest(data: bytes, raw: JsonObject) -> str | None:
    try:
        # The object came from a parser, so its floats are finite or compare unequal.
        if canonical_bytes_finite(raw) != data:
            return None
    except ValueError:  # a lone surrogate has no UTF-8 form: the strict path reports it
        return None
    if "hash" not in raw:
        return hashlib.sha256(data).hexdigest()
    # The bytes are canonical, so the body is them minus the top-level hash member and one
    # comma next to it. A key "hash" followed by this exact value can only be found once if
    # it is the top-level member (inside strings quotes are escaped, so the pattern cannot
    # occur there); when a nested object carries the same member, encode the body instead.
    stored = raw["hash"]
    # A string that came out of canonical bytes: orjson writes it as the reference does.
    member = b'"hash":' + (
        orjson.dumps(stored) if isinstance(stored, str) else _reference_bytes(stored)
    )
    if data.count(member) != 1:
        return hashlib.sha256(
            canonical_bytes_finite({k: v for k, v in raw.items() if k != "hash"})
        ).hexdigest()
    start = data.find(member)
    end = start + len(member)
    digest = hashlib.sha256()
    if data[start - 1:start] == b",":
        digest.update(data[:start - 1])
        digest.update(data[end:])
    elif data[end:end + 1] == b",":
        digest.update(data[:start])
        digest.update(data[end + 1:])
    else:
        digest.update(data[:start])
        digest.update(data[end:])
    return digest.hexdigest()


def envelope_from_json(raw: Mapping[str, object]) -> Envelope:
    """A raw JSON object → a validated envelope; raises InvalidEnvelope with the reason."""
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEnvelope(f"envelope: {describe_error(exc)}") from exc


_NO_PAYLOAD: JsonObject = {}
# Validated actors by (kind, id, role): a log holds few distinct actors (devices, operators,
# the system), and an Actor instance is accepted as it is by the envelope's validation.
_ACTORS: dict[tuple[str, str, str], Actor] = {}
_ACTORS_SIZE = 4096


def _known_actor(actor: object) -> Actor | None:
    """The validated Actor for a raw actor object, or None (the full validation decides)."""
    if type(actor) is not dict or len(actor) != 3:
        return None
    kind, id_, role = actor.get("kind"), actor.get("id"), actor.get("role")
    if type(kind) is not str or type(id_) is not str or type(role) is not str:
        return None
    key = (kind, id_, role)
    known = _ACTORS.get(key)
    if known is None:
        try:
            known = Actor.model_validate(actor)
        except ValidationError:
            return None
        if len(_ACTORS) >= _ACTORS_SIZE:
            _ACTORS.clear()
        _ACTORS[key] = known
    return known


def envelope_from_loaded(raw: JsonObject) -> Envelope:
    """Like envelope_from_json, for an object straight from ``load_json_object`` or
    ``load_canonical``: its payload is JSON by construction, so the envelope's fields are
    validated with the payload set aside (checking each of its values to be JSON again is
    most of the cost) and the payload dict is put back as is. Same envelope, same errors.
    """
    payload = raw.get("payload")
    if isinstance(payload, dict):
        fields: dict[str, object] = {**raw, "payload": _NO_PAYLOAD}
        actor = _known_actor(raw.get("actor"))
        if actor is not None:
            fields["actor"] = actor
        try:
            envelope = Envelope.model_validate(fields)
        except ValidationError:
            pass  # the full validation words the errors exactly as before
        else:
            # The envelope was just built here and nobody else holds it: putting the payload
            # in place directly is what model_copy(update=...) does, minus copying the rest.
            envelope.__dict__["payload"] = payload
            return envelope
    return envelope_from_json(raw)


def decode(data: bytes) -> Envelope:
    """Wire bytes → envelope; raises InvalidEnvelope with the reason.

    The payload is not parsed here (see parse_payload), so a consumer can route an
    unknown type to its dead-letter topic with the envelope's identity intact.
    """
    return envelope_from_json(load_json_object(data))


def decode_event(data: bytes) -> tuple[Envelope, Event]:
    """Wire bytes → (envelope, payload model); raises a ContractError subclass."""
    envelope = decode(data)
    return envelope, parse_payload(envelope)


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


def upcast(event_type: str, schema_version: int, payload: Mapping[str, JsonValue]) -> JsonObject:
    """Bring an older payload up to the latest version through the registered upcasters."""
    cls = model_for(event_type, schema_version)
    current: JsonObject = dict(payload)
    version = schema_version
    while version < cls.schema_version:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UnknownEventType(
                f"{event_type} schema version {version} has no upcaster to {version + 1}"
            )
        try:
            current = step(dict(current))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidPayload(
                f"{event_type}: upcasting version {version} failed: {exc!r}"
            ) from exc
        version += 1
    return current


def parse_payload(envelope: Envelope) -> Event:
    """The envelope's payload as its (latest) model, upcasting older versions."""
    cls = model_for(envelope.type, envelope.schema_version)
    payload: Mapping[str, JsonValue] = envelope.payload
    if envelope.schema_version != cls.schema_version:
        # Only older payloads need the upcasters (and the copy they work on).
        payload = upcast(envelope.type, envelope.schema_version, payload)
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        raise InvalidPayload(f"{envelope.type}: {describe_error(exc)}") from exc


def payload_as(envelope: Envelope, cls: type[E]) -> E:
    """Parse the payload and check it is of the expected class."""
    event = parse_payload(envelope)
    if not isinstance(event, cls):
        raise InvalidPayload(f"expected {cls.event_type}, got {envelope.type}")
    return event


def describe_error(exc: ValidationError) -> str:
    """The first errors as ``field: message`` (cross-field errors already name their field)."""
    parts = []
    for err in exc.errors()[:3]:
        msg = err["msg"].removeprefix("Value error, ")
        if err["loc"]:
            loc = ".".join(str(p) for p in err["loc"])
            parts.append(f"{loc}: {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts)


def event_types(events: Iterable[type[Event]] = ALL_EVENTS) -> list[str]:
    """Every registered event type name."""
    return sorted({cls.event_type for cls in events})
