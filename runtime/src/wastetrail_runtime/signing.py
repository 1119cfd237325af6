"""The service's signing key: created once, never silently replaced, rotated on request.

A service that has signed checkpoints and finds its key missing refuses to start: making
a new key quietly would let whoever deleted the old one sign a rewritten log. Started with
``WASTETRAIL_ROTATE_KEY=1`` it makes a new key and, when the old key is still there,
announces the new one in every chain of its topic with an ``integrity.key_rotated`` event
signed by the old key — the replay verifies it and trusts the new key from there on.
Without the old key, the auditor must pin the new key out of band (``audit trust pin``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from wastetrail_contracts.envelope import SYSTEM_ACTOR
from wastetrail_contracts.events.integrity import KeyRotated
from wastetrail_contracts.integrity import rotation_message
from wastetrail_contracts.keys import (
    key_id_for,
    load_or_create_signing_key,
    load_private_key,
    private_key_pem,
)
from wastetrail_contracts.topics import EVENT_TOPICS

from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.store import EventStore

log = get_logger(__name__)


class MissingSigningKey(RuntimeError):
    """The service signed before, but its key is gone."""


async def service_signing_key(
    store: EventStore, path: Path, *, rotate: bool = False, public_dir: Path | None = None
) -> tuple[Ed25519PrivateKey, str]:
    """The key to sign checkpoints with, and its key id (see the module docstring)."""
    if rotate:
        return await rotate_signing_key(store, path)
    if not _exists(path) and await _has_signed(store):
        raise MissingSigningKey(
            f"{path} is missing, but {store.service} has signed checkpoints with a key: "
            "restore it, or start with WASTETRAIL_ROTATE_KEY=1 to make a new one "
            "(which the auditors must then trust)")
    return load_or_create_signing_key(path, public_dir)


async def rotate_signing_key(store: EventStore, path: Path) -> tuple[Ed25519PrivateKey, str]:
    """Make a new key; announce it under the old one (if any) in every chain; keep it."""
    old = load_private_key(path) if _exists(path) else None
    new = Ed25519PrivateKey.generate()
    if old is not None:
        await _announce(store, old, new, store.clock.now())
    else:
        log.warning("signing_key.rotated_without_old_key", service=store.service,
                    key_id=key_id_for(new.public_key()),
                    note="the auditors must pin the new key out of band")
    return _keep(path, old, new)


def _exists(path: Path) -> bool:
    # A stat of a local key file at start-up: not worth a thread.
    return path.exists()


def _keep(path: Path, old: Ed25519PrivateKey | None, new: Ed25519PrivateKey
          ) -> tuple[Ed25519PrivateKey, str]:
    """Retire the old key file (kept beside, by key id) and write the new one and its .pub."""
    if old is not None:
        os.replace(path, path.with_name(f"{path.name}.{key_id_for(old.public_key())}.retired"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(private_key_pem(new))
    path.chmod(0o600)
    return load_or_create_signing_key(path)  # also rewrites the .pub beside it


async def _announce(
    store: EventStore, old: Ed25519PrivateKey, new: Ed25519PrivateKey, when: datetime
) -> None:
    old_id, new_id = key_id_for(old.public_key()), key_id_for(new.public_key())
    raw = new.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    draft = KeyRotated(old_key_id=old_id, new_key_id=new_id, new_public_key=raw,
                       rotated_at=when, signature="0" * 128)
    stamp = str(draft.model_dump(mode="json")["rotated_at"])  # as the log will hold it
    event = draft.model_copy(update={"signature": old.sign(
        rotation_message(store.service, old_id, new_id, raw, stamp)).hex()})
    async with store.unit_of_work() as uow:
        for partition in range(EVENT_TOPICS[store.service].partitions):
            await uow.record_in_partition(f"key-rotation-{store.service}-{partition}",
                                          partition, [event], actor=SYSTEM_ACTOR)
        await uow.commit()
    log.info("signing_key.rotated", service=store.service, old_key_id=old_id, key_id=new_id)


async def _has_signed(store: EventStore) -> bool:
    t = store.tables.chain_heads
    async with store.db.session() as session:
        signed = (await session.execute(
            select(func.count()).select_from(t).where(t.c.checkpoint_seq > 0))).scalar_one()
    return bool(signed)
