"""Checkpoint keys as PEM files: created once, reused, published for auditors."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from wastetrail_contracts import (
    Actor,
    ChainWriter,
    encode,
    load_key_owners,
    load_or_create_signing_key,
    load_public_keys,
)
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.events.collection import DeviceRegistered
from wastetrail_contracts.integrity import verify_records
from wastetrail_contracts.keys import KeyFileError

NOW = datetime(2026, 3, 3, tzinfo=UTC)
ADMIN = Actor(kind=ActorKind.OPERATOR, id="admin-1", role=Role.ADMIN)


def test_first_use_creates_a_private_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "collection.key"

    key, key_id = load_or_create_signing_key(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    public_pem = (tmp_path / "keys" / "collection.pub").read_bytes()
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_later_uses_load_the_same_key_and_restore_a_lost_public_key(tmp_path: Path) -> None:
    path = tmp_path / "transfer.key"
    _, first_id = load_or_create_signing_key(path)
    (tmp_path / "transfer.pub").unlink()

    _, second_id = load_or_create_signing_key(str(path))

    assert second_id == first_id
    assert list(load_public_keys(tmp_path)) == [first_id]


def test_a_deployment_publishes_only_public_keys_in_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "public"
    _, collection_id = load_or_create_signing_key(tmp_path / "collection" / "collection.key",
                                                  shared)
    _, billing_id = load_or_create_signing_key(tmp_path / "billing" / "billing.key", shared)

    assert sorted(p.name for p in shared.iterdir()) == ["billing.pub", "collection.pub"]
    assert set(load_public_keys(shared)) == {collection_id, billing_id}
    assert not (tmp_path / "collection" / "collection.pub").exists()
    assert list((tmp_path / "billing").iterdir()) == [tmp_path / "billing" / "billing.key"]


def test_auditor_verifies_checkpoints_with_the_published_keys(tmp_path: Path) -> None:
    key, key_id = load_or_create_signing_key(tmp_path / "collection.key")
    load_or_create_signing_key(tmp_path / "billing.key")
    writer = ChainWriter("collection", "wastetrail.collection.events", 0, key, key_id)
    writer.append(
        DeviceRegistered(device_id="dev-1", collector_id="col-1"),
        stream_id="dev-1", stream_version=1, actor=ADMIN, occurred_at=NOW,
        recorded_at=NOW, correlation_id="c-1",
    )
    checkpoint = writer.checkpoint(NOW)
    records = [encode(e) for e in writer.envelopes]

    keys = load_public_keys(tmp_path)
    owners = load_key_owners(tmp_path)

    assert set(owners.values()) == {"collection", "billing"}
    assert owners[key_id] == "collection"
    assert checkpoint.payload["key_id"] == key_id
    assert verify_records(records, keys, key_services=owners) == []
    billing_only = {k: v for k, v in keys.items() if owners[k] == "billing"}
    assert [f.kind for f in verify_records(records, billing_only)] == ["unknown_key"]


def test_a_corrupt_public_key_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "treatment.pub").write_text("not a key")

    with pytest.raises(KeyFileError, match=r"treatment\.pub"):
        load_public_keys(tmp_path)


def test_a_missing_key_directory_has_no_keys(tmp_path: Path) -> None:
    assert load_public_keys(tmp_path / "absent") == {}
