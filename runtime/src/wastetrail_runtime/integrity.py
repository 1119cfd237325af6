"""Consumers verify a record before they apply it, and remember the heads they verified.

Anyone who can write to a topic could otherwise make a service apply a made-up event. A
record is admitted only when its envelope hashes to its stored ``hash`` (nothing altered
since it was sealed), its ``service`` is the producer of the topic the consumer reads (the
retry topic carries the source's original records untouched, so the same rule holds), and
its type is one that service publishes (``wastetrail_contracts.topics.PUBLISHES``). A
record that fails is dead-lettered with reason ``integrity`` and changes nothing.

What a consumer cannot check — whether the record belongs to the producer's chain — the
audit does. To help it, each admitted checkpoint of the source's chains is remembered in a
``HeadWitness``; the service's own checkpoints carry those heads, signed, so that cutting
the source's log contradicts this service's signed statement (see audit/README).
"""

from __future__ import annotations

from collections.abc import Mapping

from wastetrail_contracts.events.integrity import WitnessedHead
from wastetrail_contracts.integrity import CHECKPOINT_TYPE, admission_problem

INTEGRITY_REASON = "integrity"


class HeadWitness:
    """The latest verified checkpoint of every chain a service consumed, by chain id."""

    def __init__(self) -> None:
        self._heads: dict[str, WitnessedHead] = {}

    def saw(self, chain_id: str, chain_seq: int, hash_: str) -> None:
        """Remember a checkpoint of another service's chain (the higher seq wins)."""
        known = self._heads.get(chain_id)
        if known is None or chain_seq > known.seq:
            self._heads[chain_id] = WitnessedHead(chain=chain_id, seq=chain_seq, hash=hash_)

    def heads(self) -> tuple[WitnessedHead, ...]:
        """Every witnessed head, ordered by chain id (the order the signature covers)."""
        return tuple(self._heads[c] for c in sorted(self._heads))


class SourceIntegrity:
    """The checks of one consumer's records: their producer is ``source``."""

    def __init__(self, source: str, witness: HeadWitness | None = None) -> None:
        self.source = source
        self.witness = witness

    def problem(self, raw: Mapping[str, object], digest: str | None) -> str | None:
        """Why the record must not be applied, or None. ``digest`` is the envelope hash
        computed while parsing (``codec.load_canonical``), None when it was not."""
        problem = admission_problem(raw, self.source, digest)
        if problem is None and raw.get("type") == CHECKPOINT_TYPE and self.witness is not None:
            chain, seq, stored = raw.get("chain_id"), raw.get("chain_seq"), raw.get("hash")
            if isinstance(chain, str) and isinstance(seq, int) and isinstance(stored, str):
                self.witness.saw(chain, seq, stored)
        return problem
