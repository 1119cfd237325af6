"""A service's signing key is never silently replaced (wastetrail_runtime.signing): a
service that signed before refuses to start without its key, unless told to rotate; a
rotation is announced in every chain under the old key."""

from __future__ import annotations

from pathlib import Path

import pytest
import toy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.codec import load_canonical
from wastetrail_contracts.integrity import rotation_message
from wastetrail_contracts.keys import key_id_for, load_public_key
from wastetrail_runtime.checkpoints import Checkpointer
from wastetrail_runtime.signing import MissingSigningKey, service_signing_key
from wastetrail_runtime.store import EventStore


async def _sign_once(store: EventStore, path: Path) -> str:
    key, key_id = await service_signing_key(store, path)
    async with store.unit_of_work() as uow:
        await uow.record("g-1", [toy.generator("g-1")], actor=SYSTEM_ACTOR)
        await uow.commit()
    assert await Checkpointer(store, key, key_id).checkpoint_due(force=True) == 1
    return key_id


async def test_a_service_that_signed_refuses_to_start_without_its_key(
    store: EventStore, tmp_path: Path
) -> None:
    path = tmp_path / "keys" / "collection.key"
    first = await _sign_once(store, path)  # a fresh service makes its first key
    assert (await service_signing_key(store, path))[1] == first  # and keeps it
    path.unlink()
    with pytest.raises(MissingSigningKey, match="WASTETRAIL_ROTATE_KEY"):
        await service_signing_key(store, path)
    assert not path.exists()  # nothing was made behind the operator's back
    _, new_id = await service_signing_key(store, path, rotate=True)
    assert new_id != first
    # The old key is gone, so the rotation cannot be announced: nothing was written.
    async with store.db.session() as session:
        types = [load_canonical(bytes(v))[0]["type"] for v in (await session.execute(
            select(store.tables.outbox.c.value))).scalars()]
    assert "integrity.key_rotated" not in types


async def test_a_rotation_is_announced_in_every_chain_under_the_old_key(
    store: EventStore, tmp_path: Path
) -> None:
    path = tmp_path / "collection.key"
    old_id = await _sign_once(store, path)
    old_public = load_public_key(path.with_suffix(".pub"))
    _, new_id = await service_signing_key(store, path, rotate=True)
    assert key_id_for(load_public_key(path.with_suffix(".pub"))) == new_id
    assert (tmp_path / f"collection.key.{old_id}.retired").is_file()
    t = store.tables.outbox
    async with store.db.session() as session:
        rows = (await session.execute(select(t.c.partition, t.c.value))).all()
    rotations = {row.partition: load_canonical(bytes(row.value))[0] for row in rows
                 if load_canonical(bytes(row.value))[0]["type"] == "integrity.key_rotated"}
    assert sorted(rotations) == [0, 1, 2, 3]
    for envelope in rotations.values():
        payload = envelope["payload"]
        assert isinstance(payload, dict)
        assert (payload["old_key_id"], payload["new_key_id"]) == (old_id, new_id)
        new_public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(payload["new_public_key"]))
        assert key_id_for(new_public) == new_id
        old_public.verify(bytes.fromhex(payload["signature"]), rotation_message(
            "collection", old_id, new_id, payload["new_public_key"], payload["rotated_at"]))
