"""Signed checkpoints over hash-chain heads: proof of which service wrote what."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints

from wastetrail_contracts.base import ChainId, Event, Sha256Hex, UtcDatetime

Ed25519SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
# The first 16 hex digits of SHA-256 over the raw 32-byte public key (see keys.key_id_for).
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]

ChainSeq = Annotated[int, Strict(), Field(ge=1, le=2**53)]


class WitnessedHead(BaseModel):
    """The latest checkpoint of another service's chain that a consumer of this service
    read and verified: ``chain`` reached ``seq`` with this ``hash`` (the checkpoint
    envelope's own). Signed by the witness, so cutting that chain contradicts the witness."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: ChainId
    seq: ChainSeq
    hash: Sha256Hex


class ChainCheckpoint(Event):
    """An Ed25519 signature by the producing service over its chain head.

    The checkpoint is itself the next event of the chain it signs: it covers every
    event up to ``chain_seq`` (the checkpoint's own predecessor) whose hash is
    ``head_hash``. ``witnessed`` (added later, empty in older logs) lists the heads of the
    chains this service consumed from the others; the signature covers them too.
    """

    event_type = "integrity.chain_checkpoint"

    chain_id: ChainId
    chain_seq: ChainSeq
    head_hash: Sha256Hex
    key_id: KeyId
    signature: Ed25519SignatureHex
    signed_at: UtcDatetime
    witnessed: tuple[WitnessedHead, ...] = ()


Ed25519PublicKeyHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class KeyRotated(Event):
    """A service's new signing key, announced under the old one: written first in each of
    the service's chains, so an auditor who trusts the old key learns to trust the new one
    from the log (``integrity.rotation_message`` is what ``signature`` signs)."""

    event_type = "integrity.key_rotated"

    old_key_id: KeyId
    new_key_id: KeyId
    new_public_key: Ed25519PublicKeyHex  # the raw 32 bytes
    rotated_at: UtcDatetime
    signature: Ed25519SignatureHex  # by the old key


EVENTS: tuple[type[Event], ...] = (ChainCheckpoint, KeyRotated)
