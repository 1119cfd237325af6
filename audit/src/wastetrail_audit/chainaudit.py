"""Hash-chain verification of one partition, resumable from a saved progress file.

The verification itself is ``wastetrail_contracts.integrity.ChainVerifier`` (it places
each break at its offset and names it: modified, deleted, inserted, reordered,
forged_checkpoint, unknown_key, foreign, malformed). This module adds what a replay
needs around it: resuming from a saved chain head, telling the caller when a record was a
mere redelivery (so it is not projected twice), and reporting per chain how far it was
verified and how much of it no signed checkpoint covers yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from wastetrail_contracts.envelope import GENESIS_HASH
from wastetrail_contracts.integrity import ChainFailure, ChainVerifier, VerifiedCheckpoint

DEFAULT_WINDOW = 256


@dataclass(frozen=True)
class ChainProgress:
    """How far a chain was verified: what a replay checkpoint file keeps per chain."""

    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    checkpoints: int = 0
    last_checkpoint_seq: int = 0
    duplicates: int = 0

    @property
    def unsigned_tail(self) -> int:
        """Events after the last verified checkpoint: not yet covered by a signature."""
        return max(0, self.last_seq - self.last_checkpoint_seq)

    def as_json(self) -> dict[str, int | str]:
        """The progress as a JSON object (checkpoint file, --json summary)."""
        return {
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "checkpoints": self.checkpoints,
            "last_checkpoint_seq": self.last_checkpoint_seq,
            "unsigned_tail": self.unsigned_tail,
            "duplicates": self.duplicates,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ChainProgress:
        """Read back what ``as_json`` wrote."""
        return cls(
            last_seq=int(str(data["last_seq"])),
            last_hash=str(data["last_hash"]),
            checkpoints=int(str(data.get("checkpoints", 0))),
            last_checkpoint_seq=int(str(data.get("last_checkpoint_seq", 0))),
            duplicates=int(str(data.get("duplicates", 0))),
        )


class PartitionChainAudit:
    """Verify the chains of one partition, fed in offset order, with bounded memory."""

    def __init__(
        self,
        public_keys: Mapping[str, Ed25519PublicKey],
        key_services: Mapping[str, str] | None = None,
        start: Mapping[str, ChainProgress] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._keys = dict(public_keys)
        self._owners = dict(key_services or {})
        self._verifier = ChainVerifier(
            public_keys=self._keys,
            key_services=self._owners if key_services is not None else None, window=window,
        )
        for chain, progress in (start or {}).items():
            self._verifier.trust_head(chain, progress.last_seq, progress.last_hash)
            state = self._verifier.chains[chain]
            state.checkpoints = progress.checkpoints
            state.last_checkpoint_seq = progress.last_checkpoint_seq
            state.duplicates = progress.duplicates
        self.last_was_duplicate = False

    def feed(
        self, offset: int, fields: Mapping[str, object], computed_hash: str | None = None
    ) -> list[ChainFailure]:
        """Check the next record; returns the failures now known (possibly at earlier offsets).

        ``last_was_duplicate`` tells afterwards whether the record was an exact redelivery
        of an event already verified (the relay publishes at least once): not a failure,
        but it must not be counted twice either. ``computed_hash``: see ChainVerifier.check.
        """
        state = self._verifier.chains.get(str(fields.get("chain_id")))
        before = state.duplicates if state is not None else 0
        failures = self._verifier.check(fields, offset=offset, computed_hash=computed_hash)
        state = self._verifier.chains.get(str(fields.get("chain_id")))
        self.last_was_duplicate = state is not None and state.duplicates > before
        return failures

    def trusts(self, key_id: str, owner: str) -> Ed25519PublicKey | None:
        """The key ``key_id`` if it is trusted for ``owner``'s chains."""
        key = self._keys.get(key_id)
        return key if key is not None and self._owners.get(key_id, owner) == owner else None

    def trust_key(self, key_id: str, key: Ed25519PublicKey, owner: str) -> None:
        """Trust a new key of ``owner`` from now on (a verified key rotation)."""
        self._keys[key_id] = key
        self._owners[key_id] = owner

    def verified_checkpoints(self) -> list[VerifiedCheckpoint]:
        """The checkpoints verified since the last call (their signatures held)."""
        verified = self._verifier.verified
        if not verified:
            return []
        self._verifier.verified = []
        return verified

    def finish(self) -> list[ChainFailure]:
        """End of the partition: holes and unresolved rivals become final."""
        return self._verifier.finish()

    def progress(self) -> dict[str, ChainProgress]:
        """The state of every chain seen, to resume from or to report."""
        return {
            chain: ChainProgress(
                last_seq=state.last_seq,
                last_hash=state.last_hash,
                checkpoints=state.checkpoints,
                last_checkpoint_seq=state.last_checkpoint_seq,
                duplicates=state.duplicates,
            )
            for chain, state in self._verifier.chains.items()
        }
