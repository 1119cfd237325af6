"""Build small, valid event logs (envelopes, hash chains, signed checkpoints) for the tests,
produce them to the real broker, and tamper with copies of them.

Envelopes are built with the contracts' ChainWriter, as a service does: one chain per
(service, topic, partition), a signed checkpoint every N events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from wastetrail_audit.keys import KeyRing
from wastetrail_contracts.base import Event
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.codec import canonical_bytes, encode, envelope_hash, envelope_to_json
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.envelope import Actor, Envelope
from wastetrail_contracts.events.integrity import WitnessedHead
from wastetrail_contracts.keys import key_id_for, public_key_pem
from wastetrail_contracts.topics import EVENT_TOPICS, kafka_client_options, partition_for

SERVICES = ("collection", "transfer", "treatment", "billing")
OWNER = {"collection": "collection", "transfer": "transfer", "treatment": "treatment",
         "billing": "billing", "epr": "billing"}
T0 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)


def actor(role: Role = Role.SYSTEM, ident: str = "system", kind: ActorKind | None = None) -> Actor:
    """An event's actor."""
    if kind is None:
        kind = ActorKind.SYSTEM if role is Role.SYSTEM else ActorKind.OPERATOR
    return Actor(kind=kind, id=ident, role=role)


def make_keys() -> dict[str, Ed25519PrivateKey]:
    """One signing key per service."""
    return {s: Ed25519PrivateKey.generate() for s in SERVICES}


def keyring(keys: Mapping[str, Ed25519PrivateKey]) -> KeyRing:
    """The public side of the services' keys, by key id."""
    ring = KeyRing()
    for service, key in keys.items():
        kid = key_id_for(key.public_key())
        ring.public_keys[kid] = key.public_key()
        ring.services[kid] = service
    return ring


def write_public_keys(keys: Mapping[str, Ed25519PrivateKey], directory: Path) -> Path:
    """The services' public keys as PEM files, as the auditor gets them."""
    directory.mkdir(parents=True, exist_ok=True)
    for service, key in keys.items():
        (directory / f"{service}.pub").write_bytes(public_key_pem(key.public_key()))
    return directory


@dataclass
class LogBuilder:
    """Append events to per-partition chains (contracts' ChainWriter); ``records`` holds
    the wire bytes per (service, partition), ``envelopes`` every envelope as JSON."""

    keys: Mapping[str, Ed25519PrivateKey]
    checkpoint_every: int = 8
    partitions: int = 4
    records: dict[tuple[str, int], list[tuple[bytes, bytes]]] = field(default_factory=dict)
    envelopes: list[dict[str, object]] = field(default_factory=list)
    _writers: dict[tuple[str, int], ChainWriter] = field(default_factory=dict)
    _since: dict[tuple[str, int], int] = field(default_factory=dict)
    _versions: dict[str, int] = field(default_factory=dict)

    def emit(
        self,
        event: Event,
        stream_id: str,
        at: datetime = T0,
        by: Actor | None = None,
        service: str | None = None,
    ) -> dict[str, object]:
        """Append one event to its service's chain (partition from the stream id)."""
        service = service or OWNER[event.event_type.split(".")[0]]
        key = (service, partition_for(stream_id, self.partitions))
        version = self._versions.get(stream_id, 0) + 1
        self._versions[stream_id] = version
        envelope = self._writer(key).append(
            event, stream_id=stream_id, stream_version=version, actor=by or actor(),
            occurred_at=at, recorded_at=at, correlation_id=stream_id,
        )
        fields = self._record(key, envelope)
        self._since[key] = self._since.get(key, 0) + 1
        if self.checkpoint_every and self._since[key] >= self.checkpoint_every:
            self.checkpoint(*key, at=at)
        return fields

    def checkpoint(
        self, service: str, partition: int, at: datetime = T0,
        witnessed: Iterable[WitnessedHead] = (),
    ) -> dict[str, object]:
        """Sign the chain head of one (service, partition) with the service's key (and the
        heads of other services' chains it ``witnessed``)."""
        key = (service, partition)
        self._since[key] = 0
        return self._record(key, self._writer(key).checkpoint(at, witnessed=tuple(witnessed)))

    def seal(self, at: datetime = T0) -> None:
        """A last checkpoint on every chain with unsigned events, as a service does on shutdown."""
        for key, count in list(self._since.items()):
            if count:
                self.checkpoint(*key, at=at)

    def _writer(self, key: tuple[str, int]) -> ChainWriter:
        service, partition = key
        if key not in self._writers:
            # The chain id carries the catalog topic name, so the same records can be
            # produced under several test prefixes (the auditor accepts either form).
            self._writers[key] = ChainWriter(
                service, EVENT_TOPICS[service].name, partition, self.keys[service])
        return self._writers[key]

    def _record(self, key: tuple[str, int], envelope: Envelope) -> dict[str, object]:
        self.records.setdefault(key, []).append((envelope.stream_id.encode(), encode(envelope)))
        fields = envelope_to_json(envelope)
        self.envelopes.append(fields)
        return fields


@dataclass
class ProducedLog:
    """A generated log on the broker under ``prefix``, with the auditor's key directory."""

    log: LogBuilder
    prefix: str
    keys_dir: Path
    bootstrap: str


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rehash(fields: dict[str, object]) -> dict[str, object]:
    """Recompute an envelope's hash after changing it (what a careful forger does)."""
    fields = dict(fields)
    fields["hash"] = envelope_hash(fields)
    return fields


def load(value: bytes) -> dict[str, object]:
    """A record's envelope as a dict."""
    data = json.loads(value)
    assert isinstance(data, dict)
    return data


def dump(fields: Mapping[str, object]) -> bytes:
    """An envelope back to wire bytes."""
    return canonical_bytes(fields)


def create_topics(bootstrap: str, prefix: str, partitions: int = 4) -> None:
    """The four event topics under a prefix."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())
    try:
        admin.create_topics(
            [NewTopic(spec.qualified(prefix), partitions, 1) for spec in EVENT_TOPICS.values()]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def produce(
    bootstrap: str,
    prefix: str,
    records: Mapping[tuple[str, int], Iterable[tuple[bytes, bytes]]],
) -> None:
    """Create the prefixed event topics and write each partition's records in order."""
    create_topics(bootstrap, prefix)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        **kafka_client_options(), acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        for (service, partition), items in sorted(records.items()):
            topic = EVENT_TOPICS[service].qualified(prefix)
            for key, value in items:
                producer.send(topic, key=key, value=value, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()
