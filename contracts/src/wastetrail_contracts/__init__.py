"""WasteTrail event contracts: envelope, payloads, codec, integrity and topic catalog."""

from wastetrail_contracts.base import Event, Value
from wastetrail_contracts.codec import (
    ALL_EVENTS,
    ContractError,
    InvalidEnvelope,
    InvalidPayload,
    UnknownEventType,
    decode,
    encode,
    parse_payload,
    payload_as,
)
from wastetrail_contracts.envelope import SYSTEM_ACTOR, Actor, Envelope, uuid7

__all__ = [
    "ALL_EVENTS",
    "SYSTEM_ACTOR",
    "Actor",
    "ContractError",
    "Envelope",
    "Event",
    "InvalidEnvelope",
    "InvalidPayload",
    "UnknownEventType",
    "Value",
    "decode",
    "encode",
    "parse_payload",
    "payload_as",
    "uuid7",
]
