"""Signed checkpoints over hash-chain heads: proof of which service wrote what."""

from __future__ import annotations

from pydantic import Field, StringConstraints
from typing import Annotated

from wastetrail_contracts.base import Code, Event, Sha256Hex, UtcDatetime

Ed25519SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]


class ChainCheckpoint(Event):
    """An Ed25519 signature by the producing service over its chain head.

    The checkpoint is itself the next event of the chain it signs: it covers every
    event up to ``chain_seq`` (the checkpoint's own predecessor) whose hash is
    ``head_hash``.
    """

    event_type = "integrity.chain_checkpoint"

    chain_id: Code
    chain_seq: int = Field(ge=1)
    head_hash: Sha256Hex
    key_id: Code
    signature: Ed25519SignatureHex
    signed_at: UtcDatetime


EVENTS: tuple[type[Event], ...] = (ChainCheckpoint,)
