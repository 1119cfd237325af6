"""What a consumer admits (wastetrail_runtime.integrity) and the heads it witnesses, which
the service's next signed checkpoint carries (real PostgreSQL for the store)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import toy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.chain import ChainWriter
from wastetrail_contracts.codec import canonical_bytes, encode, envelope_hash, load_canonical
from wastetrail_contracts.events.collection import CollectorRegistered
from wastetrail_contracts.integrity import ChainVerifier
from wastetrail_contracts.keys import key_id_for
from wastetrail_runtime.checkpoints import Checkpointer
from wastetrail_runtime.integrity import HeadWitness, SourceIntegrity
from wastetrail_runtime.store import EventStore

AT = datetime(2026, 1, 1, tzinfo=UTC)


def _collection_records() -> list[bytes]:
    writer = ChainWriter("collection", "wastetrail.collection.events", 2,
                         Ed25519PrivateKey.generate())
    records = [encode(writer.append(
        CollectorRegistered(collector_id=f"c-{i}", name="C"), stream_id=f"c-{i}",
        stream_version=1, actor=SYSTEM_ACTOR, occurred_at=AT, recorded_at=AT,
        correlation_id=f"c-{i}")) for i in range(3)]
    return [*records, encode(writer.checkpoint(AT))]


def test_a_consumer_admits_genuine_records_and_witnesses_their_checkpoints() -> None:
    witness = HeadWitness()
    check = SourceIntegrity("collection", witness)
    records = _collection_records()
    for value in records:
        assert check.problem(*load_canonical(value)) is None
    checkpoint = json.loads(records[-1])
    (head,) = witness.heads()
    assert (head.chain, head.seq, head.hash) == (
        checkpoint["chain_id"], 4, checkpoint["hash"])
    # Another consumer of the same records under another producer's name refuses them all.
    assert SourceIntegrity("transfer").problem(*load_canonical(records[0])) == (
        "written by 'collection', but the topic is 'transfer''s")


def test_a_record_whose_content_does_not_match_its_hash_is_refused() -> None:
    witness = HeadWitness()
    fields = json.loads(_collection_records()[-1])
    fields["payload"]["chain_seq"] = 2  # a checkpoint claiming a shorter chain
    problem = SourceIntegrity("collection", witness).problem(
        *load_canonical(canonical_bytes(fields)))
    assert problem is not None and problem.startswith(f"hash {fields['hash']} does not match")
    assert witness.heads() == ()  # a refused checkpoint is not witnessed


async def test_the_next_checkpoint_signs_the_witnessed_heads(store: EventStore) -> None:
    async with store.unit_of_work() as uow:
        await uow.record("g-1", [toy.generator("g-1")], actor=SYSTEM_ACTOR)
        await uow.commit()
    witness = HeadWitness()
    SourceIntegrity("collection", witness).problem(*load_canonical(_collection_records()[-1]))
    key = Ed25519PrivateKey.generate()
    checkpointer = Checkpointer(store, key, key_id_for(key.public_key()), witness=witness)
    assert await checkpointer.checkpoint_due(force=True) == 1
    t = store.tables.outbox
    async with store.db.session() as session:
        values = (await session.execute(select(t.c.value).order_by(t.c.chain_seq))).scalars()
        records = [load_canonical(bytes(v))[0] for v in values]
    assert [r["type"] for r in records] == ["collection.generator_registered",
                                            "integrity.chain_checkpoint"]
    payload = records[1]["payload"]
    assert isinstance(payload, dict)
    assert payload["witnessed"] == [h.model_dump() for h in witness.heads()]

    def failures(log: list[dict[str, object]]) -> list[str]:
        verifier = ChainVerifier({key_id_for(key.public_key()): key.public_key()})
        found = [f.kind for r in log for f in verifier.check(r)]
        return found + [f.kind for f in verifier.finish()]

    assert failures(records) == []
    # Dropping the witnessed heads (re-hashing the record) breaks the signature.
    forged = {**records[1], "payload": {**payload, "witnessed": []}}
    forged["hash"] = envelope_hash(forged)
    assert failures([records[0], forged]) == ["forged_checkpoint"]
