"""The envelope every event travels in, on Kafka and in each service's event store."""

from __future__ import annotations

import os
import time
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from wastetrail_contracts.base import Code, Sha256Hex, UtcDatetime
from wastetrail_contracts.enums import ActorKind, Role

GENESIS_HASH = "0" * 64
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]
UuidStr = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sorts by time."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


class Actor(BaseModel):
    """Who caused the event: a device, an operator or the system, with a role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActorKind
    id: Code
    role: Role


SYSTEM_ACTOR = Actor(kind=ActorKind.SYSTEM, id="system", role=Role.SYSTEM)


class Envelope(BaseModel):
    """One event with its identity, provenance, ordering and integrity fields.

    ``stream_id``/``stream_version`` order the events of one aggregate. The integrity
    fields form a hash chain per (service, topic, partition): ``chain_seq`` counts from 1,
    ``prev_hash`` is the previous event's ``hash`` (or 64 zeros), and ``hash`` is SHA-256
    over the canonical encoding of every other field (see codec.canonical_bytes).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UuidStr
    type: EventType
    schema_version: int = Field(ge=1)
    service: ServiceName
    stream_id: Code
    stream_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    actor: Actor
    correlation_id: Code
    causation_id: Code | None = None
    payload: dict[str, JsonValue]
    chain_id: Code
    chain_seq: int = Field(ge=1)
    prev_hash: Sha256Hex
    hash: Sha256Hex
