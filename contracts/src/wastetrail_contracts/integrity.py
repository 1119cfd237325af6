"""Hash chains and signed checkpoints: how an auditor proves the log was not altered.

One chain per (producing service, topic, partition). Each event carries the hash of
its predecessor; each service periodically appends a ``ChainCheckpoint`` event signed
with its Ed25519 key over the chain head. A verifier reads one partition in offset
order with O(1) memory and reports the first position where the chain breaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wastetrail_contracts.codec import envelope_hash
from wastetrail_contracts.envelope import GENESIS_HASH


def chain_id(service: str, topic: str, partition: int) -> str:
    """The name of one hash chain."""
    return f"{service}:{topic}:{partition}"


def checkpoint_message(chain: str, chain_seq: int, head_hash: str) -> bytes:
    """The bytes a checkpoint signs."""
    return f"wastetrail-checkpoint-v1|{chain}|{chain_seq}|{head_hash}".encode()


def sign_checkpoint(key: Ed25519PrivateKey, chain: str, chain_seq: int, head_hash: str) -> str:
    """Sign a chain head; returns the signature as hex."""
    return key.sign(checkpoint_message(chain, chain_seq, head_hash)).hex()


def verify_checkpoint(
    public_key: Ed25519PublicKey, chain: str, chain_seq: int, head_hash: str, signature: str
) -> bool:
    """Whether the signature over the chain head is the service's."""
    try:
        public_key.verify(bytes.fromhex(signature), checkpoint_message(chain, chain_seq, head_hash))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class ChainFailure:
    """Where and why the chain broke."""

    kind: str  # modified | deleted | inserted | reordered | forged_checkpoint | ...
    chain_id: str
    chain_seq: int
    event_id: str
    detail: str


@dataclass
class ChainState:
    """What a verifier keeps per chain: the last seq and hash."""

    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    checkpoints: int = 0


@dataclass
class ChainVerifier:
    """Verify events of one or more chains, fed in log order.

    ``public_keys`` maps a service's key id to its Ed25519 public key.
    """

    public_keys: Mapping[str, Ed25519PublicKey]
    chains: dict[str, ChainState] = field(default_factory=dict)

    def check(self, fields: Mapping[str, object]) -> list[ChainFailure]:
        """Check the next envelope (as its raw JSON object) of its chain."""
        failures: list[ChainFailure] = []
        chain = str(fields.get("chain_id"))
        seq = int(str(fields.get("chain_seq")))
        event_id = str(fields.get("event_id"))
        state = self.chains.setdefault(chain, ChainState())
        computed = envelope_hash(fields)
        own_hash_ok = computed == fields.get("hash")
        prev = fields.get("prev_hash")
        if not own_hash_ok:
            failures.append(
                ChainFailure("modified", chain, seq, event_id, "hash does not match the content")
            )
        if seq == state.last_seq + 1:
            if prev != state.last_hash:
                failures.append(
                    ChainFailure("modified", chain, seq, event_id,
                                 "prev_hash is not the previous event's hash")
                )
        elif seq <= state.last_seq:
            kind = "inserted" if prev == state.last_hash else "reordered"
            failures.append(
                ChainFailure(kind, chain, seq, event_id,
                             f"chain_seq {seq} after {state.last_seq}")
            )
        else:
            kind = "reordered" if seq > state.last_seq + 1 and prev != state.last_hash else "deleted"
            failures.append(
                ChainFailure(kind, chain, seq, event_id,
                             f"chain_seq jumps from {state.last_seq} to {seq}")
            )
        if fields.get("type") == "integrity.chain_checkpoint":
            failures.extend(self._check_checkpoint(fields, chain, seq, event_id, state))
        # Continue from what the log says, so one fault is reported once, not forever.
        state.last_seq = max(state.last_seq, seq)
        state.last_hash = computed if own_hash_ok else str(fields.get("hash"))
        return failures

    def _check_checkpoint(
        self, fields: Mapping[str, object], chain: str, seq: int, event_id: str, state: ChainState
    ) -> list[ChainFailure]:
        payload = fields.get("payload")
        if not isinstance(payload, Mapping):
            return [ChainFailure("forged_checkpoint", chain, seq, event_id, "no payload")]
        key = self.public_keys.get(str(payload.get("key_id")))
        if key is None:
            return [ChainFailure("forged_checkpoint", chain, seq, event_id,
                                 f"unknown key id {payload.get('key_id')!r}")]
        head_seq = int(str(payload.get("chain_seq")))
        head_hash = str(payload.get("head_hash"))
        if payload.get("chain_id") != chain or head_seq != seq - 1 or head_hash != state.last_hash:
            return [ChainFailure("forged_checkpoint", chain, seq, event_id,
                                 "checkpoint does not cover the chain head before it")]
        if not verify_checkpoint(key, chain, head_seq, head_hash, str(payload.get("signature"))):
            return [ChainFailure("forged_checkpoint", chain, seq, event_id,
                                 "signature does not verify")]
        state.checkpoints += 1
        return []
