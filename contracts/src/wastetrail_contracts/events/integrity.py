"""Signed checkpoints over hash-chain heads: proof of which service wrote what."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, StringConstraints

from wastetrail_contracts.base import ChainId, Event, Sha256Hex, UtcDatetime

Ed25519SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
# The first 16 hex digits of SHA-256 over the raw 32-byte public key (see keys.key_id_for).
KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]



class ChainCheckpoint(Event):
    """An Ed25519 signature by the producing service over its chain head.

    The checkpoint is itself the next event of the chain it signs: it covers every
    event up to ``chain_seq`` (the checkpoint's own predecessor) whose hash is
    ``head_hash``.
    """

    event_type = "integrity.chain_checkpoint"

    chain_id: ChainId
    chain_seq: Annotated[int, Strict(), Field(ge=1, le=2**53)]
    head_hash: Sha256Hex
    key_id: KeyId
    signature: Ed25519SignatureHex
    signed_at: UtcDatetime


EVENTS: tuple[type[Event], ...] = (ChainCheckpoint,)
