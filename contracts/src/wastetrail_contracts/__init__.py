"""WasteTrail event contracts: envelope, payloads, codec, integrity and topic catalog."""

from wastetrail_contracts.base import Event, Value
from wastetrail_contracts.chain import (
    ChainHead,
    ChainWriter,
    hash_is_valid,
    next_envelope,
    seal_envelope,
)
from wastetrail_contracts.codec import (
    ALL_EVENTS,
    REGISTRY,
    ContractError,
    InvalidEnvelope,
    InvalidPayload,
    UnknownEventType,
    canonical_bytes,
    decode,
    decode_event,
    encode,
    envelope_hash,
    parse_payload,
    payload_as,
    register_upcaster,
)
from wastetrail_contracts.envelope import SYSTEM_ACTOR, Actor, Envelope, uuid7
from wastetrail_contracts.integrity import ChainFailure, ChainVerifier, FailureKind
from wastetrail_contracts.keys import (
    key_id_for,
    load_key_owners,
    load_or_create_signing_key,
    load_public_keys,
)

__all__ = [
    "ALL_EVENTS",
    "REGISTRY",
    "SYSTEM_ACTOR",
    "Actor",
    "ChainFailure",
    "ChainHead",
    "ChainVerifier",
    "ChainWriter",
    "ContractError",
    "Envelope",
    "Event",
    "FailureKind",
    "InvalidEnvelope",
    "InvalidPayload",
    "UnknownEventType",
    "Value",
    "canonical_bytes",
    "decode",
    "decode_event",
    "encode",
    "envelope_hash",
    "hash_is_valid",
    "key_id_for",
    "load_key_owners",
    "load_or_create_signing_key",
    "load_public_keys",
    "next_envelope",
    "parse_payload",
    "payload_as",
    "register_upcaster",
    "seal_envelope",
    "uuid7",
]
