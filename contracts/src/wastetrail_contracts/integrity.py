"""Hash chains and signed checkpoints: how an auditor proves the log was not altered.

One chain per (producing service, topic, partition). Each event carries the hash of
its predecessor; each service periodically appends a ``ChainCheckpoint`` event signed
with its Ed25519 key over the chain head. A verifier reads one partition in offset
order with bounded memory and reports where the chain breaks and how:

========================  ==============================================================
kind                      what the log shows
========================  ==============================================================
``modified``              an event's content no longer matches its hash, or its hash
                          was recomputed so its successor no longer links to it
``deleted``               chain_seq values are missing (reported by ``finish()``, or
                          once more than ``window`` events arrived past the hole)
``inserted``              an event that is not part of the chain: a second event with a
                          chain_seq already taken (an exact copy of an event already
                          verified is counted in ``duplicates`` instead: the relay
                          delivers at least once, and a copy changes nothing)
``reordered``             events arrived out of chain_seq order
``forged_checkpoint``     a checkpoint whose signature does not verify, or that does not
                          cover the chain head before it
``unknown_key``           a checkpoint signed by a key the auditor does not know
``foreign``               an event of another service inside this service's chain
``malformed``             the record lacks the integrity fields or cannot be hashed
========================  ==============================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wastetrail_contracts.codec import envelope_hash, envelope_to_json, load_json_object
from wastetrail_contracts.envelope import GENESIS_HASH, Envelope
from wastetrail_contracts.topics import publishes

CHECKPOINT_TYPE = "integrity.chain_checkpoint"


def chain_id(service: str, topic: str, partition: int) -> str:
    """The name of one hash chain."""
    return f"{service}:{topic}:{partition}"


Witnessed = Iterable[Mapping[str, object]]


def checkpoint_message(
    chain: str, chain_seq: int, head_hash: str, witnessed: Witnessed = ()
) -> bytes:
    """The bytes a checkpoint signs: v1 (its own head) when it witnesses nothing, so the
    checkpoints of older logs still verify; v2 adds every witnessed head, in order."""
    heads = "|".join(
        f"{w.get('chain')}#{w.get('seq')}={w.get('hash')}" for w in witnessed
    )
    if not heads:
        return f"wastetrail-checkpoint-v1|{chain}|{chain_seq}|{head_hash}".encode()
    return f"wastetrail-checkpoint-v2|{chain}|{chain_seq}|{head_hash}|{heads}".encode()


def sign_checkpoint(
    key: Ed25519PrivateKey, chain: str, chain_seq: int, head_hash: str, witnessed: Witnessed = ()
) -> str:
    """Sign a chain head (and the heads it witnesses); returns the signature as hex."""
    return key.sign(checkpoint_message(chain, chain_seq, head_hash, witnessed)).hex()


def verify_checkpoint(
    public_key: Ed25519PublicKey, chain: str, chain_seq: int, head_hash: str, signature: str,
    witnessed: Witnessed = (),
) -> bool:
    """Whether the signature over the chain head (and witnessed heads) is the service's."""
    try:
        public_key.verify(bytes.fromhex(signature),
                          checkpoint_message(chain, chain_seq, head_hash, witnessed))
    except (InvalidSignature, ValueError):
        return False
    return True


def admission_problem(
    raw: Mapping[str, object], producer: str, computed_hash: str | None = None
) -> str | None:
    """Why a record read from ``producer``'s topic (or a retry topic re-driving it) cannot
    be its event, or None: its content must match its hash, its service must be the
    producer, and its type one the producer publishes (``topics.PUBLISHES``). Consumers
    check this before applying a record; the audit checks it on the retry topics."""
    stored = raw.get("hash")
    try:
        computed = computed_hash if computed_hash is not None else envelope_hash(raw)
    except (TypeError, ValueError) as exc:
        return f"cannot be hashed: {exc}"
    if stored != computed:
        return f"hash {stored} does not match the content ({computed})"
    service = raw.get("service")
    if service != producer:
        return f"written by {service!r}, but the topic is {producer!r}'s"
    event_type = str(raw.get("type"))
    if not publishes(producer, event_type):
        return f"{producer} does not publish {event_type!r}"
    return None


def rotation_message(service: str, old_key_id: str, new_key_id: str, new_public_key: str,
                     rotated_at: str) -> bytes:
    """The bytes a ``KeyRotated`` event signs with the old key (``rotated_at`` as ISO text)."""
    return (f"wastetrail-key-rotation-v1|{service}|{old_key_id}|{new_key_id}|"
            f"{new_public_key}|{rotated_at}").encode()


class FailureKind(StrEnum):
    """How a chain was broken (see the module docstring)."""

    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    FORGED_CHECKPOINT = "forged_checkpoint"
    UNKNOWN_KEY = "unknown_key"
    FOREIGN = "foreign"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class ChainFailure:
    """Where and why the chain broke.

    ``chain_seq``/``event_id`` name the event at fault: for ``deleted``, ``chain_seq`` is
    the first missing number and ``event_id`` the event right after the hole. ``offset``
    is the Kafka offset of that event when the caller passed offsets to ``check``.
    """

    kind: str
    chain_id: str
    chain_seq: int
    event_id: str
    detail: str
    offset: int | None = None


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint event whose signature verified: where it sits and what it signed."""

    chain_id: str
    chain_seq: int
    hash: str
    payload: Mapping[str, object]
    offset: int | None = None


@dataclass(slots=True, eq=False)
class _Link:
    """What the verifier keeps of one event: never changed once built. Not frozen because
    a frozen dataclass's __init__ costs a call per field and one is built per record; no
    __eq__ because links are told apart by their fields, never compared whole."""

    seq: int
    hash: str  # the stored hash: what the successor links to
    prev_hash: str
    event_id: str
    offset: int | None
    alt_hash: str | None = None  # the recomputed hash when it differs from the stored one
    checkpoint: Mapping[str, object] | None = None  # payload, for checkpoint events
    service: str = ""

    def links_to(self, prev_hash: str) -> bool:
        return prev_hash in (self.hash, self.alt_hash)


_GENESIS = _Link(seq=0, hash=GENESIS_HASH, prev_hash="", event_id="", offset=None)


@dataclass
class ChainState:
    """What a verifier keeps per chain: the head, recent links and early arrivals."""

    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    checkpoints: int = 0
    last_checkpoint_seq: int = 0
    head: _Link = _GENESIS
    before_head: _Link | None = None
    history: deque[_Link] = field(default_factory=lambda: deque(maxlen=1024))
    pending: dict[int, _Link] = field(default_factory=dict)  # arrived before their turn
    early: list[_Link] = field(default_factory=list)  # this disorder episode's early events
    late: list[_Link] = field(default_factory=list)  # ... and the late ones
    fork: _Link | None = None  # a rival of the head with the same seq and predecessor
    # A broken link is reported one event late: if a rival of the head arrives next, the
    # head was an insertion rather than a modification of its predecessor.
    suspect: ChainFailure | None = None
    # Exact copies of events already verified: the outbox relay delivers at least once, so
    # a crash between publishing and marking re-publishes a batch. Not tampering.
    duplicates: int = 0
    holes: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=64))


@dataclass
class ChainVerifier:
    """Verify events of one or more chains, fed in log (offset) order.

    ``public_keys`` maps a key id to a service's Ed25519 public key; ``key_services``
    (optional) maps a key id to the service that owns it, so one service's key cannot vouch
    for another's chain. ``window`` bounds the memory per chain: how many out-of-order
    events are held before a hole is declared ``deleted``. Failures about a link are
    reported when the next event of the chain arrives; call ``finish()`` after the last
    event to flush them and to learn about holes and rival events still unresolved.
    """

    public_keys: Mapping[str, Ed25519PublicKey]
    chains: dict[str, ChainState] = field(default_factory=dict)
    key_services: Mapping[str, str] | None = None
    window: int = 1024
    # Checkpoints whose signature verified, as (chain, chain_seq, hash, payload): the
    # caller drains it (the auditor checks what they witness against the other chains).
    verified: list[VerifiedCheckpoint] = field(default_factory=list)

    def trust_head(self, chain: str, chain_seq: int, head_hash: str) -> None:
        """Start verifying ``chain`` after a head already verified (e.g. a signed checkpoint)."""
        link = _Link(seq=chain_seq, hash=head_hash, prev_hash="", event_id="", offset=None)
        state = self._new_state()
        state.last_seq, state.last_hash, state.head = chain_seq, head_hash, link
        state.last_checkpoint_seq = chain_seq
        self.chains[chain] = state

    def check(
        self, fields: Mapping[str, object] | Envelope, offset: int | None = None,
        computed_hash: str | None = None,
    ) -> list[ChainFailure]:
        """Check the next record of its chain: the raw JSON object of an envelope.

        Pass the object exactly as read from the log (``codec.load_json_object``), not a
        re-serialised model, so that what is hashed is what was written.
        ``computed_hash`` is ``envelope_hash(fields)`` when the caller already has it
        (``codec.load_canonical`` computes it from the wire bytes while parsing them).
        """
        raw = envelope_to_json(fields) if isinstance(fields, Envelope) else fields
        failures: list[ChainFailure] = []
        link = self._link(raw, offset, failures, computed_hash)
        if link is None:
            return failures
        chain = str(raw["chain_id"])
        state = self.chains.get(chain)
        if state is None:
            state = self.chains[chain] = self._new_state()
        if link.seq == state.last_seq + 1:
            if state.pending:
                state.late.append(link)
            self._consume(chain, state, link, failures, after_hole=False)
            self._drain(chain, state, failures)
        elif link.seq > state.last_seq + 1:
            self._flush_suspect(state, failures)
            self._arrive_early(chain, state, link, failures)
        else:
            self._arrive_taken(chain, state, link, failures)
        return failures

    def finish(self) -> list[ChainFailure]:
        """Report what only the end of the log can tell: holes and unresolved rivals."""
        failures: list[ChainFailure] = []
        for chain, state in self.chains.items():
            self._flush_suspect(state, failures)
            while state.pending:
                self._declare_hole(chain, state, failures)
            self._flush_suspect(state, failures)
            if state.fork is not None:
                failures.append(
                    self._failure(
                        FailureKind.INSERTED, chain, state.fork,
                        f"a second event claims chain_seq {state.fork.seq} (the other is "
                        f"{state.head.event_id}); the log ends before telling which is genuine",
                    )
                )
                state.fork = None
        return failures

    def unsigned_tail(self, chain: str) -> int:
        """How many events of ``chain`` follow its last valid checkpoint (not yet proven)."""
        state = self.chains.get(chain)
        return 0 if state is None else state.last_seq - state.last_checkpoint_seq

    def _new_state(self) -> ChainState:
        return ChainState(history=deque(maxlen=self.window))

    # -- arrival cases --------------------------------------------------------------------

    def _arrive_early(
        self, chain: str, state: ChainState, link: _Link, failures: list[ChainFailure]
    ) -> None:
        rival = state.pending.get(link.seq)
        if rival is not None:
            failures.append(
                self._failure(
                    FailureKind.INSERTED, chain, link,
                    f"chain_seq {link.seq} is already taken by event {rival.event_id}",
                )
            )
            return
        state.pending[link.seq] = link
        state.early.append(link)
        if len(state.pending) > self.window:
            self._declare_hole(chain, state, failures)

    def _arrive_taken(
        self, chain: str, state: ChainState, link: _Link, failures: list[ChainFailure]
    ) -> None:
        head, before = state.head, state.before_head
        if link.seq == head.seq and head.event_id and before is not None:
            rival_fits = before.links_to(link.prev_hash)
            head_fits = before.links_to(head.prev_hash)
            if rival_fits and not head_fits:
                # The head never belonged here: it was slipped in before the genuine event.
                state.suspect = None
                failures.append(
                    self._failure(
                        FailureKind.INSERTED, chain, head,
                        f"not part of the chain: event {link.event_id} is the genuine "
                        f"chain_seq {link.seq}",
                    )
                )
                state.history.pop()
                state.head = before
                state.last_seq, state.last_hash = before.seq, before.hash
                self._consume(chain, state, link, failures, after_hole=False)
                return
            if rival_fits and head.hash != link.hash and state.fork is None:
                # Two events claim the same place; the next event tells which one is genuine.
                self._flush_suspect(state, failures)
                state.fork = link
                return
        self._flush_suspect(state, failures)
        holder = next((h for h in state.history if h.seq == link.seq), None)
        if holder is not None and holder.hash == link.hash and holder.event_id == link.event_id:
            # Redelivery of a verified event (the relay publishes at least once): its bytes
            # hash to the same value, so it adds nothing and changes nothing.
            state.duplicates += 1
            return
        if holder is not None:
            detail = f"chain_seq {link.seq} is already taken by event {holder.event_id}"
        elif any(first <= link.seq <= last for first, last in state.holes):
            failures.append(
                self._failure(
                    FailureKind.REORDERED, chain, link,
                    f"arrived far out of order, after chain_seq {state.last_seq} "
                    f"(its place was reported deleted)",
                )
            )
            return
        else:
            detail = f"chain_seq {link.seq} arrived after chain_seq {state.last_seq}"
        failures.append(self._failure(FailureKind.INSERTED, chain, link, detail))

    # -- consuming in chain order ---------------------------------------------------------

    def _flush_suspect(self, state: ChainState, failures: list[ChainFailure]) -> None:
        if state.suspect is not None:
            failures.append(state.suspect)
            state.suspect = None

    def _consume(
        self,
        chain: str,
        state: ChainState,
        link: _Link,
        failures: list[ChainFailure],
        *,
        after_hole: bool,
    ) -> None:
        self._flush_suspect(state, failures)
        head = state.head
        if state.fork is not None:
            fork = state.fork
            state.fork = None
            if fork.links_to(link.prev_hash) and not head.links_to(link.prev_hash):
                failures.append(
                    self._failure(
                        FailureKind.INSERTED, chain, head,
                        f"not part of the chain: the next event links to the rival "
                        f"event {fork.event_id} at the same chain_seq",
                    )
                )
                state.history.pop()
                state.history.append(fork)
                head = state.head = fork
            else:
                failures.append(
                    self._failure(
                        FailureKind.INSERTED, chain, fork,
                        f"not part of the chain: chain_seq {head.seq} belongs to event "
                        f"{head.event_id}",
                    )
                )
        if not after_hole and not head.links_to(link.prev_hash):
            if head.event_id:
                state.suspect = self._failure(
                    FailureKind.MODIFIED, chain, head,
                    f"its hash changed: the next event {link.event_id} "
                    f"(chain_seq {link.seq}) links to a different hash",
                )
            else:
                state.suspect = self._failure(
                    FailureKind.MODIFIED, chain, link,
                    "prev_hash does not continue the chain from where it starts",
                )
        if link.checkpoint is not None:
            failures.extend(self._check_checkpoint(chain, state, link))
        state.before_head, state.head = head, link
        state.last_seq = link.seq
        state.last_hash = link.hash
        state.history.append(link)

    def _drain(self, chain: str, state: ChainState, failures: list[ChainFailure]) -> None:
        while state.last_seq + 1 in state.pending:
            self._consume(
                chain, state, state.pending.pop(state.last_seq + 1), failures, after_hole=False
            )
        if not state.pending and state.early:
            self._report_disorder(chain, state, failures)

    def _report_disorder(
        self, chain: str, state: ChainState, failures: list[ChainFailure]
    ) -> None:
        # Blame the smaller group: one event moved back shows as one early arrival, one
        # moved forward as one late arrival; a swap of two blames the one that came first.
        early, late = state.early, state.late
        if len(early) <= len(late):
            first_late = late[0]
            for link in early:
                failures.append(
                    self._failure(
                        FailureKind.REORDERED, chain, link,
                        f"arrived before chain_seq {first_late.seq} (event {first_late.event_id})",
                    )
                )
        else:
            last_early = max(early, key=lambda e: e.seq)
            for link in late:
                failures.append(
                    self._failure(
                        FailureKind.REORDERED, chain, link,
                        f"arrived after chain_seq {last_early.seq} (event {last_early.event_id})",
                    )
                )
        state.early, state.late = [], []

    def _declare_hole(self, chain: str, state: ChainState, failures: list[ChainFailure]) -> None:
        self._flush_suspect(state, failures)
        after = min(state.pending)
        first_missing = state.last_seq + 1
        link = state.pending.pop(after)
        missing = (
            f"chain_seq {first_missing}"
            if after - 1 == first_missing
            else f"chain_seq {first_missing}..{after - 1}"
        )
        failures.append(
            ChainFailure(
                kind=FailureKind.DELETED,
                chain_id=chain,
                chain_seq=first_missing,
                event_id=link.event_id,
                detail=f"{missing} missing before event {link.event_id}",
                offset=link.offset,
            )
        )
        state.holes.append((first_missing, after - 1))
        # What followed the hole is not a reordering, and its link cannot be checked.
        state.early, state.late = [], []
        self._consume(chain, state, link, failures, after_hole=True)
        self._drain(chain, state, failures)

    def _check_checkpoint(
        self, chain: str, state: ChainState, link: _Link
    ) -> list[ChainFailure]:
        payload = link.checkpoint or {}
        key_id = str(payload.get("key_id"))
        key = self.public_keys.get(key_id)
        if key is None:
            return [self._failure(FailureKind.UNKNOWN_KEY, chain, link,
                                  f"signed by unknown key id {key_id!r}")]
        if self.key_services is not None and self.key_services.get(key_id) != link.service:
            return [self._failure(
                FailureKind.FORGED_CHECKPOINT, chain, link,
                f"key {key_id} belongs to {self.key_services.get(key_id)!r}, "
                f"not to {link.service!r}",
            )]
        head_seq = payload.get("chain_seq")
        head_hash = str(payload.get("head_hash"))
        # The checkpoint signs its own predecessor; whether that predecessor is the chain's
        # head is the ordinary link check, reported once, above.
        if payload.get("chain_id") != chain or head_seq != link.seq - 1 or (
            head_hash != link.prev_hash
        ):
            return [self._failure(FailureKind.FORGED_CHECKPOINT, chain, link,
                                  "checkpoint does not sign the event before it")]
        witnessed = payload.get("witnessed") or ()
        if not isinstance(witnessed, list | tuple) or not all(
            isinstance(w, Mapping) for w in witnessed
        ):
            return [self._failure(FailureKind.FORGED_CHECKPOINT, chain, link,
                                  "witnessed heads are not a list of objects")]
        if not verify_checkpoint(key, chain, link.seq - 1, head_hash,
                                 str(payload.get("signature")), witnessed):
            return [self._failure(FailureKind.FORGED_CHECKPOINT, chain, link,
                                  "signature does not verify")]
        state.checkpoints += 1
        state.last_checkpoint_seq = link.seq
        self.verified.append(VerifiedCheckpoint(chain, link.seq, link.hash, payload,
                                                link.offset))
        return []

    # -- reading one record ---------------------------------------------------------------

    def _link(
        self, raw: Mapping[str, object], offset: int | None, failures: list[ChainFailure],
        computed_hash: str | None = None,
    ) -> _Link | None:
        chain = raw.get("chain_id")
        seq = raw.get("chain_seq")
        event_id = str(raw.get("event_id", ""))
        stored = raw.get("hash")
        prev = raw.get("prev_hash")
        if (
            not isinstance(chain, str)
            or not isinstance(seq, int)
            or isinstance(seq, bool)
            or seq < 1
            or not isinstance(stored, str)
            or not isinstance(prev, str)
        ):
            failures.append(
                ChainFailure(FailureKind.MALFORMED, str(chain), 0, event_id,
                             "missing or invalid chain_id, chain_seq, hash or prev_hash",
                             offset)
            )
            return None
        try:
            computed = computed_hash if computed_hash is not None else envelope_hash(raw)
        except (TypeError, ValueError) as exc:
            failures.append(
                ChainFailure(FailureKind.MALFORMED, chain, seq, event_id,
                             f"cannot be hashed: {exc}", offset)
            )
            return None
        service = str(raw.get("service", ""))
        checkpoint: Mapping[str, object] | None = None
        if raw.get("type") == CHECKPOINT_TYPE:
            payload = raw.get("payload")
            checkpoint = payload if isinstance(payload, Mapping) else {}
        link = _Link(
            seq=seq,
            hash=stored,
            prev_hash=prev,
            event_id=event_id,
            offset=offset,
            alt_hash=None if computed == stored else computed,
            checkpoint=checkpoint,
            service=service,
        )
        if link.alt_hash is not None:
            failures.append(
                self._failure(FailureKind.MODIFIED, chain, link,
                              "hash does not match the content")
            )
        if not chain.startswith(f"{service}:"):
            failures.append(
                self._failure(FailureKind.FOREIGN, chain, link,
                              f"an event of service {service!r} in another service's chain")
            )
        return link

    @staticmethod
    def _failure(kind: FailureKind, chain: str, link: _Link, detail: str) -> ChainFailure:
        return ChainFailure(kind, chain, link.seq, link.event_id, detail, link.offset)


def verify_records(
    records: Iterable[bytes | Mapping[str, object]],
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    key_services: Mapping[str, str] | None = None,
    window: int = 1024,
) -> list[ChainFailure]:
    """Verify a whole log (wire bytes or raw JSON objects, in offset order); all failures.

    Records that are not JSON objects at all are reported as ``malformed`` with their
    position in ``records`` as the offset.
    """
    verifier = ChainVerifier(public_keys, key_services=key_services, window=window)
    failures: list[ChainFailure] = []
    for position, record in enumerate(records):
        if isinstance(record, bytes | bytearray):
            try:
                raw: Mapping[str, object] = load_json_object(bytes(record))
            except ValueError as exc:
                failures.append(
                    ChainFailure(FailureKind.MALFORMED, "", 0, "", str(exc), position)
                )
                continue
        else:
            raw = record
        failures.extend(verifier.check(raw, offset=position))
    failures.extend(verifier.finish())
    return failures
