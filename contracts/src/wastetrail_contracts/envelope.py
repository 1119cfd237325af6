"""The envelope every event travels in, on Kafka and in each service's event store."""

from __future__ import annotations

import os
import time
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    StringConstraints,
    model_validator,
)

from wastetrail_contracts.base import ChainId, Code, Sha256Hex, UtcDatetime
from wastetrail_contracts.enums import ActorKind, Role

GENESIS_HASH = "0" * 64
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]
Version = Annotated[int, Strict(), Field(ge=1, le=2**53)]
UuidStr = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]


_MILLIS = (1 << 48) - 1
# A random hex digit → the UUID variant digit "10xx" with the same two low bits.
_VARIANT = str.maketrans("0123456789abcdef", "89ab89ab89ab89ab")


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sorts by time."""
    return uuid7_many(1)[0]


def uuid7_many(count: int) -> list[str]:
    """``count`` UUIDv7s (48-bit Unix milliseconds, version 7, 12 + 62 random bits, variant
    10) from one clock read and one read of the random source: the event store numbers a
    commit's events with it."""
    stamp = f"{(time.time_ns() // 1_000_000) & _MILLIS:012x}"
    prefix = f"{stamp[:8]}-{stamp[8:]}-7"
    digits = os.urandom(10 * count).hex()  # 19 of every 20 hex digits are used
    return [
        f"{prefix}{digits[at:at + 3]}-{digits[at + 3].translate(_VARIANT)}"
        f"{digits[at + 4:at + 7]}-{digits[at + 7:at + 19]}"
        for at in range(0, 20 * count, 20)
    ]


class Actor(BaseModel):
    """Who caused the event: a device, an operator or the system, with a role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActorKind
    id: Code
    role: Role

    @model_validator(mode="after")
    def _system_is_system(self) -> Actor:
        # The system never acts in a person's role (it would pass for one in the audit trail).
        # The converse is allowed: a service token may carry the system role on an operator.
        if self.kind is ActorKind.SYSTEM and self.role is not Role.SYSTEM:
            raise ValueError("role: a system actor acts in the system role")
        return self


SYSTEM_ACTOR = Actor(kind=ActorKind.SYSTEM, id="system", role=Role.SYSTEM)


class Envelope(BaseModel):
    """One event with its identity, provenance, ordering and integrity fields.

    ``stream_id``/``stream_version`` order the events of one aggregate. The integrity
    fields form a hash chain per (service, topic, partition): ``chain_seq`` counts from 1,
    ``prev_hash`` is the previous event's ``hash`` (or 64 zeros), and ``hash`` is SHA-256
    over the canonical encoding of every other field (see codec.canonical_bytes).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_id: UuidStr
    type: EventType
    schema_version: Version
    service: ServiceName
    stream_id: Code
    stream_version: Version
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    actor: Actor
    correlation_id: Code
    causation_id: Code | None = None
    payload: dict[str, JsonValue]
    chain_id: ChainId
    chain_seq: Version
    prev_hash: Sha256Hex
    hash: Sha256Hex

    @model_validator(mode="after")
    def _chain_fields(self) -> Envelope:
        if (self.chain_seq == 1) != (self.prev_hash == GENESIS_HASH):
            raise ValueError("prev_hash: is the genesis hash exactly when chain_seq is 1")
        # A chain belongs to the service that writes it (integrity.chain_id).
        if not self.chain_id.startswith(f"{self.service}:"):
            raise ValueError("chain_id: must be a chain of the producing service")
        return self
