"""The keys the auditor trusts: a trust file it keeps, apart from the services' key store.

Whoever can write the services' key directory could otherwise replace a ``.pub`` and sign
whatever they like. The trust file (``--trust``, default ``.local/audit/trust.json``) pins
each key: its owner (a service, or ``audit`` for export manifests), its fingerprint
(SHA-256 of the raw public key), the key itself and its validity. It is written by
``audit trust pin`` (the auditor checks the fingerprint out of band, once) and extended
only by rotations the replay verified (``integrity.key_rotated``, signed by the old key).

``--keys-dir`` alone (every ``*.pub`` of a directory) is still accepted when asked for
explicitly, with a warning; with a trust file, a ``.pub`` that is not pinned is refused.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from wastetrail_contracts.keys import (
    PUBLIC_SUFFIX,
    KeyFileError,
    key_id_for,
    load_key_owners,
    load_public_key,
)
from wastetrail_contracts.keys import load_public_keys as load_keys_by_id

from wastetrail_audit.source import SourceError, read_format_file, write_format_file

__all__ = ["KeyFileError", "KeyRing", "load_public_keys", "load_trust", "pin_key"]

TRUST_FORMAT = "wastetrail-audit-trust/1"
DEFAULT_TRUST = Path(".local/audit/trust.json")


@dataclass(frozen=True)
class KeyRing:
    """Public keys by key id, which service owns each key id, and when each is valid
    (ISO 8601 UTC strings; empty: no bound)."""

    public_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    validity: dict[str, tuple[str, str]] = field(default_factory=dict)

    def owned_by(self, owner: str) -> dict[str, Ed25519PublicKey]:
        """The keys of one owner, by key id."""
        return {k: v for k, v in self.public_keys.items() if self.services.get(k) == owner}


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the raw 32-byte public key: what the auditor compares out of band."""
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()


def load_public_keys(directory: Path) -> KeyRing:
    """Every ``*.pub`` key of ``directory``; an absent directory gives an empty ring."""
    return KeyRing(public_keys=load_keys_by_id(directory), services=load_key_owners(directory))


def load_trust(path: Path) -> KeyRing:
    """The pinned keys of a trust file."""
    try:
        data = read_format_file(path, TRUST_FORMAT, "trust file")
    except SourceError as exc:
        raise KeyFileError(str(exc)) from exc
    ring = KeyRing()
    for entry in data.get("keys", []):
        try:
            raw = base64.b64decode(str(entry["public_key"]))
            key = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, ValueError) as exc:
            raise KeyFileError(f"{path}: a pinned key is not an Ed25519 key ({exc})") from exc
        if fingerprint(key) != entry.get("fingerprint"):
            raise KeyFileError(f"{path}: the key pinned for {entry.get('owner')} does not "
                               f"match its fingerprint {entry.get('fingerprint')}")
        kid = key_id_for(key)
        ring.public_keys[kid] = key
        ring.services[kid] = str(entry["owner"])
        ring.validity[kid] = (str(entry.get("valid_from") or ""),
                              str(entry.get("valid_until") or ""))
    return ring


def pin_key(path: Path, owner: str, key: Ed25519PublicKey, *, valid_from: str = "",
            valid_until: str = "") -> bool:
    """Add ``key`` to the trust file for ``owner`` (created if absent); False if it was
    pinned already. An earlier key of the owner stays (it verifies the older checkpoints)."""
    data: dict[str, object] = {"format": TRUST_FORMAT, "keys": []}
    if path.exists():
        load_trust(path)  # refuse to extend a file that does not verify
        data = read_format_file(path, TRUST_FORMAT, "trust file")
    keys = data["keys"]
    assert isinstance(keys, list)
    print_ = fingerprint(key)
    if any(e.get("fingerprint") == print_ and e.get("owner") == owner for e in keys):
        return False
    keys.append({
        "owner": owner, "key_id": key_id_for(key), "fingerprint": print_,
        "public_key": base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode(),
        "pinned_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "valid_from": valid_from or None,
        "valid_until": valid_until or None,
    })
    write_format_file(path, data)
    return True


def unpinned_key_files(directory: Path, ring: KeyRing) -> list[str]:
    """Why each ``*.pub`` of ``directory`` is not a key the trust file pins for its owner."""
    problems = []
    for pub in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")) if directory.is_dir() else []:
        key = load_public_key(pub)
        kid = key_id_for(key)
        if ring.services.get(kid) != pub.stem:
            problems.append(f"{pub}: key {kid} (fingerprint {fingerprint(key)}) is not pinned "
                            f"for {pub.stem!r} in the trust file: it was replaced or added")
    return problems
