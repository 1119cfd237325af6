"""What the auditors' tool reads and reports: log records, partitions and integrity failures."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Every kind of failure replay can report. The chain kinds come from
# wastetrail_contracts.integrity.ChainVerifier; the others are checks of this tool.
FAILURE_KINDS = (
    "modified",  # content does not match its hash, or prev_hash does not link
    "deleted",  # chain_seq jumps: events are missing before this offset
    "inserted",  # an event that takes a chain position already taken
    "reordered",  # events of the chain are out of order
    "forged_checkpoint",  # a checkpoint whose signature or head does not verify
    "unknown_key",  # a checkpoint signed by a key not in --keys-dir
    "foreign",  # an event of another service inside this service's chain
    "malformed",  # the record lacks the integrity fields or cannot be hashed
    "invalid_envelope",  # not JSON or not a valid envelope
    "unknown_type",  # no payload model for this (type, schema_version)
    "invalid_payload",  # the payload breaks its event's schema
    "misplaced",  # the envelope's service / chain does not belong in this topic-partition
    "corrupt_record",  # the broker record failed its CRC or could not be read
    # Absence is a failure (see replay.py): what is missing is named where it should be.
    "missing_topic",  # a catalog event topic (or one of its partitions) does not exist
    "truncated_head",  # the partition no longer starts where the auditor last saw it
    "truncated",  # a chain or partition ends before a head the auditor already saw
    "rewritten",  # a chain holds another event at a head the auditor already saw
    "contradicted",  # a chain ends before (or differs from) a head another service signed
    "unsigned_tail",  # more events after the last signed checkpoint than allowed
    "outside_catalog",  # an event type its service does not publish
    "forged_rotation",  # a key rotation not signed by a trusted key of its service
    "retry_forged",  # a retry-topic record that is not the original record it claims to be
)


@dataclass(frozen=True, order=True)
class PartitionRef:
    """One partition of one topic."""

    topic: str
    partition: int

    @property
    def label(self) -> str:
        """``topic[partition]``, as printed in progress and failure lines."""
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True)
class LogRecord:
    """One record as the broker (or an export) holds it; ``value`` is the raw bytes."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, order=True)
class Failure:
    """An integrity or schema failure at one offset."""

    topic: str
    partition: int
    offset: int
    event_id: str
    kind: str
    detail: str

    def line(self) -> str:
        """The one-line form printed by every command."""
        return (
            f"FAIL {self.kind} topic={self.topic} partition={self.partition} "
            f"offset={self.offset} event_id={self.event_id or '-'}: {self.detail}"
        )

    def as_json(self) -> dict[str, str | int]:
        """The failure as a JSON object."""
        return dict(asdict(self))
