"""Building hash-chained envelopes: the one implementation the event store and tests share.

``seal_envelope`` turns envelope fields into an Envelope whose ``hash`` is computed over
exactly the JSON that ``codec.encode`` puts on the wire. ``next_envelope`` links an event
to a chain head. ``ChainWriter`` keeps the head of one chain in memory, for tests, the
simulator and tools; the runtime's event store keeps the head in its database and calls
the same two functions.

A checkpoint is the next event of the chain it signs, so it must be produced to the
chain's own partition: the relay sends every record to the partition recorded at append
time rather than letting the client re-hash the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from wastetrail_contracts.base import Event
from wastetrail_contracts.codec import (
    InvalidEnvelope,
    describe_error,
    envelope_hash_finite,
    envelope_to_json,
    payload_json,
)
from wastetrail_contracts.envelope import GENESIS_HASH, SYSTEM_ACTOR, Actor, Envelope, uuid7
from wastetrail_contracts.events.integrity import ChainCheckpoint, WitnessedHead
from wastetrail_contracts.integrity import chain_id as make_chain_id
from wastetrail_contracts.integrity import sign_checkpoint
from wastetrail_contracts.keys import key_id_for

# A placeholder that passes the hash pattern while the real hash is being computed.
_UNSEALED = "f" * 64


@dataclass(frozen=True)
class ChainHead:
    """The last event of a chain: its sequence number and hash (0 and zeros when empty)."""

    chain_id: str
    seq: int = 0
    hash: str = GENESIS_HASH

    def after(self, envelope: Envelope) -> ChainHead:
        """The head once ``envelope`` is appended (it must be the next one)."""
        if envelope.chain_id != self.chain_id or envelope.chain_seq != self.seq + 1:
            raise ValueError(
                f"envelope {envelope.chain_id}#{envelope.chain_seq} does not follow "
                f"{self.chain_id}#{self.seq}"
            )
        return ChainHead(self.chain_id, envelope.chain_seq, envelope.hash)


def seal_envelope(fields: Mapping[str, object]) -> Envelope:
    """Validate envelope fields (without ``hash``) and return the envelope with its hash.

    The hash is SHA-256 over the canonical JSON of the validated envelope minus ``hash``,
    i.e. over the same normalised values (UTC ``Z`` times, enum strings) that ``encode``
    writes, so ``envelope_hash(json.loads(encode(env))) == env.hash`` always holds.
    Raises InvalidEnvelope when a field is invalid or ``hash`` is given.
    """
    if "hash" in fields:
        raise InvalidEnvelope("hash: computed by seal_envelope, do not pass it")
    try:
        draft = Envelope.model_validate({**fields, "hash": _UNSEALED})
    except ValidationError as exc:
        raise InvalidEnvelope(f"envelope: {describe_error(exc)}") from exc
    return draft.model_copy(update={"hash": envelope_hash_finite(envelope_to_json(draft))})


def hash_is_valid(envelope: Envelope) -> bool:
    """Whether the envelope's ``hash`` matches its content."""
    return envelope_hash_finite(envelope_to_json(envelope)) == envelope.hash


def next_envelope(
    head: ChainHead,
    event: Event,
    *,
    service: str,
    stream_id: str,
    stream_version: int,
    actor: Actor,
    occurred_at: datetime,
    recorded_at: datetime,
    correlation_id: str,
    causation_id: str | None = None,
    event_id: str | None = None,
) -> Envelope:
    """The envelope carrying ``event`` as the next link after ``head``."""
    return seal_envelope(
        {
            "event_id": event_id or uuid7(),
            "type": event.event_type,
            "schema_version": event.schema_version,
            "service": service,
            "stream_id": stream_id,
            "stream_version": stream_version,
            "occurred_at": occurred_at,
            "recorded_at": recorded_at,
            "actor": actor,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "payload": payload_json(event),
            "chain_id": head.chain_id,
            "chain_seq": head.seq + 1,
            "prev_hash": head.hash,
        }
    )


def checkpoint_event(
    key: Ed25519PrivateKey, head: ChainHead, signed_at: datetime, key_id: str | None = None,
    witnessed: Sequence[WitnessedHead] = (),
) -> ChainCheckpoint:
    """A ChainCheckpoint signing ``head`` and the ``witnessed`` heads of other services'
    chains (to be appended right after ``head``)."""
    if head.seq < 1:
        raise ValueError("an empty chain has no head to sign")
    return ChainCheckpoint(
        chain_id=head.chain_id,
        chain_seq=head.seq,
        head_hash=head.hash,
        key_id=key_id or key_id_for(key.public_key()),
        signature=sign_checkpoint(key, head.chain_id, head.seq, head.hash,
                                  [w.model_dump() for w in witnessed]),
        signed_at=signed_at,
        witnessed=tuple(witnessed),
    )


def checkpoint_stream_id(service: str, partition: int) -> str:
    """The stream a chain's checkpoints belong to (their stream_version is their chain_seq)."""
    return f"checkpoint-{service}-{partition}"


class ChainWriter:
    """Appends events to one chain (service, topic, partition) and signs checkpoints.

    ``topic`` is the full topic name (with any test prefix), so that chains of different
    deployments never share a name.
    """

    def __init__(
        self,
        service: str,
        topic: str,
        partition: int,
        key: Ed25519PrivateKey | None = None,
        key_id: str | None = None,
        *,
        head: ChainHead | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.partition = partition
        self.key = key
        self.key_id = key_id or (key_id_for(key.public_key()) if key is not None else None)
        self.chain_id = make_chain_id(service, topic, partition)
        if head is not None and head.chain_id != self.chain_id:
            raise ValueError(f"head of {head.chain_id} given for chain {self.chain_id}")
        self.head = head or ChainHead(self.chain_id)
        self.envelopes: list[Envelope] = []

    def append(
        self,
        event: Event,
        *,
        stream_id: str,
        stream_version: int,
        actor: Actor,
        occurred_at: datetime,
        recorded_at: datetime,
        correlation_id: str,
        causation_id: str | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """Seal ``event`` as the chain's next envelope and advance the head."""
        envelope = next_envelope(
            self.head,
            event,
            service=self.service,
            stream_id=stream_id,
            stream_version=stream_version,
            actor=actor,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=event_id,
        )
        self.head = self.head.after(envelope)
        self.envelopes.append(envelope)
        return envelope

    def checkpoint(
        self, signed_at: datetime, *, event_id: str | None = None,
        witnessed: Sequence[WitnessedHead] = (),
    ) -> Envelope:
        """Sign the current head (and ``witnessed`` heads of other services' chains) and
        append the ChainCheckpoint as the next event."""
        if self.key is None:
            raise ValueError(f"chain {self.chain_id} has no signing key")
        event = checkpoint_event(self.key, self.head, signed_at, self.key_id, witnessed)
        new_id = event_id or uuid7()
        return self.append(
            event,
            stream_id=checkpoint_stream_id(self.service, self.partition),
            stream_version=self.head.seq + 1,
            actor=SYSTEM_ACTOR,
            occurred_at=signed_at,
            recorded_at=signed_at,
            correlation_id=new_id,
            event_id=new_id,
        )
