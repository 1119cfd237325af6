"""Absence is a failure: what a replay checks once every partition is verified.

A hash chain proves that what is there was not altered; it cannot tell that its end was
cut off. Three witnesses can:

* the auditor's own **heads file** (``audit replay --heads FILE``): every chain head and
  partition end of the last replay that passed. Each later replay must extend them: a
  partition that ends earlier, a chain that ends before its known head, or another event
  at that head is ``truncated`` / ``rewritten``. Updated only when the replay passes.
* the other services' **signed checkpoints**, which carry the heads of the chains their
  consumers verified (``ChainCheckpoint.witnessed``): a chain that ends before, or differs
  from, what another service signed is ``contradicted``.
* the **unsigned tail** bound: events after the last signed checkpoint of a chain are
  nobody's statement yet; more of them than ``--max-unsigned`` fail (``unsigned_tail``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from wastetrail_audit.chainaudit import ChainProgress
from wastetrail_audit.records import Failure, PartitionRef
from wastetrail_audit.source import read_format_file, write_format_file
from wastetrail_audit.worker import PartitionResult, WitnessClaim

HEADS_FORMAT = "wastetrail-audit-heads/1"
DEFAULT_MAX_UNSIGNED = 5_000


@dataclass(frozen=True)
class KnownHeads:
    """What the auditor verified before: partition ends and chain heads."""

    saved_at: str = ""
    offsets: dict[PartitionRef, int] = field(default_factory=dict)
    chains: dict[PartitionRef, dict[str, tuple[int, str]]] = field(default_factory=dict)

    def expect(self, ref: PartitionRef) -> dict[str, tuple[int, str]]:
        """chain → (seq, hash) of one partition."""
        return self.chains.get(ref, {})

    def progress(self, ref: PartitionRef) -> dict[str, ChainProgress]:
        """The heads of one partition as trusted starting points (to resume after them)."""
        return {
            chain: ChainProgress(last_seq=seq, last_hash=digest, last_checkpoint_seq=seq)
            for chain, (seq, digest) in self.expect(ref).items()
        }


def read_heads(path: Path) -> KnownHeads:
    """The heads file; an absent file is the first replay (nothing known yet)."""
    if not path.exists():
        return KnownHeads()
    data = read_format_file(path, HEADS_FORMAT, "heads file")
    known = KnownHeads(saved_at=str(data.get("saved_at", "")))
    for item in data.get("partitions", []):
        ref = PartitionRef(str(item["topic"]), int(item["partition"]))
        known.offsets[ref] = int(item["next_offset"])
        known.chains[ref] = {
            str(chain): (int(head["seq"]), str(head["hash"]))
            for chain, head in dict(item.get("chains", {})).items()
        }
    return known


def write_heads(path: Path, partitions: Sequence[PartitionResult]) -> None:
    """Save the heads of a replay that passed (atomically)."""
    data = {
        "format": HEADS_FORMAT,
        "saved_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "partitions": [
            {"topic": p.topic, "partition": p.partition, "next_offset": p.next_offset,
             "chains": {c: {"seq": cp.last_seq, "hash": cp.last_hash}
                        for c, cp in sorted(p.chains.items())}}
            for p in sorted(partitions, key=lambda p: (p.topic, p.partition))
        ],
    }
    write_format_file(path, data)


def check_heads(known: KnownHeads, partitions: Sequence[PartitionResult]) -> list[Failure]:
    """Every way the log fails to extend what the auditor verified before."""
    by_ref = {PartitionRef(p.topic, p.partition): p for p in partitions}
    failures: list[Failure] = []
    when = f"on {known.saved_at}" if known.saved_at else "before"
    for ref, until in sorted(known.offsets.items()):
        part = by_ref.get(ref)
        if part is None:
            continue  # the partition is gone: plan() reported it as missing
        if part.next_offset < until:
            failures.append(Failure(
                ref.topic, ref.partition, part.next_offset, "", "truncated",
                f"the partition ends at offset {part.next_offset}, but the auditor verified "
                f"it up to offset {until} {when}"))
        for chain, (seq, digest) in sorted(known.expect(ref).items()):
            progress = part.chains.get(chain)
            last = 0 if progress is None else progress.last_seq
            if last < seq:
                failures.append(Failure(
                    ref.topic, ref.partition, part.next_offset, "", "truncated",
                    f"chain {chain} ends at seq {last}, but the auditor verified it up to "
                    f"seq {seq} {when}"))
                continue
            seen = part.seen.get(chain)
            if part.start_offset > 0 and seen is None:
                continue  # resumed after that head: it is where the chain started from
            if seen is None or seen[0] != digest:
                offset = part.next_offset if seen is None else seen[1]
                failures.append(Failure(
                    ref.topic, ref.partition, offset, "", "rewritten",
                    f"chain {chain} holds another event at seq {seq} "
                    f"({'none' if seen is None else seen[0]}) than the one the auditor "
                    f"verified {when} ({digest})"))
    return failures


def check_witnesses(
    partitions: Sequence[PartitionResult], topic_of: Callable[[str], str | None]
) -> list[Failure]:
    """Every chain that ends before, or differs from, a head another service signed.

    ``topic_of(service)`` names a service's event topic (for a chain with no record left).
    """
    claims: dict[str, WitnessClaim] = {}
    for result in partitions:
        for chain, claim in result.claims.items():
            known = claims.get(chain)
            if known is None or claim.chain_seq > known.chain_seq:
                claims[chain] = claim
    owner: dict[str, PartitionResult] = {c: p for p in partitions for c in p.chains}
    failures: list[Failure] = []
    for chain, claim in sorted(claims.items()):
        part = owner.get(chain)
        witness = (f"{claim.witness_topic}[{claim.witness_partition}] offset "
                   f"{claim.witness_offset}")
        if part is None:
            topic, partition = _location(chain, topic_of)
            failures.append(Failure(
                topic, partition, 0, "", "contradicted",
                f"chain {chain} has no event left, but the signed checkpoint at {witness} "
                f"witnessed it up to seq {claim.chain_seq}"))
            continue
        progress = part.chains[chain]
        if progress.last_seq < claim.chain_seq:
            failures.append(Failure(
                part.topic, part.partition, part.next_offset, "", "contradicted",
                f"chain {chain} ends at seq {progress.last_seq}, but the signed checkpoint "
                f"at {witness} witnessed it up to seq {claim.chain_seq}"))
            continue
        hashes = part.checkpoint_hashes.get(chain, {})
        if claim.chain_seq not in hashes and part.start_offset > 0:
            continue  # before where this replay resumed: the heads file vouched for it
        if hashes.get(claim.chain_seq) != claim.hash:
            failures.append(Failure(
                part.topic, part.partition, part.next_offset, "", "contradicted",
                f"chain {chain} has no verified checkpoint {claim.hash} at seq "
                f"{claim.chain_seq}, which the signed checkpoint at {witness} witnessed"))
    return failures


def _location(chain: str, topic_of: Callable[[str], str | None]) -> tuple[str, int]:
    service, _, rest = chain.partition(":")
    _, _, partition = rest.rpartition(":")
    topic = topic_of(service) or rest.rpartition(":")[0]
    return topic, int(partition) if partition.isdigit() else -1


def check_unsigned(partitions: Sequence[PartitionResult], bound: int) -> list[Failure]:
    """Chains with more than ``bound`` events after their last signed checkpoint."""
    return [
        Failure(part.topic, part.partition, max(part.next_offset - 1, 0), "", "unsigned_tail",
                f"chain {chain}: {progress.unsigned_tail} events after its last signed "
                f"checkpoint (seq {progress.last_checkpoint_seq + 1}..{progress.last_seq}), "
                f"more than the bound {bound}")
        for part in partitions
        for chain, progress in sorted(part.chains.items())
        if progress.unsigned_tail > bound
    ]
