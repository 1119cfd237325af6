"""Ed25519 keys for signed checkpoints, as PEM files.

A service keeps its private key at ``<dir>/<service>.key`` (PKCS#8, unencrypted, mode
0600) and publishes the public key beside it as ``<dir>/<service>.pub``
(SubjectPublicKeyInfo). Auditors load every ``*.pub`` of a directory. A key is named by
its ``key_id``: the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PUBLIC_SUFFIX = ".pub"


class KeyFileError(ValueError):
    """A key file exists but is not an Ed25519 key in PEM."""


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """The key id: first 16 hex digits of SHA-256 over the raw public key bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_path(private_path: Path) -> Path:
    """Where the public key of a private key file lives: same name, ``.pub``."""
    return private_path.with_suffix(PUBLIC_SUFFIX)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key from a PEM file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` with ``data`` unless it exists; False if another process won the race.

    The bytes go to a temporary file first and are linked into place, so a reader never
    sees a half-written key and two services starting together end up with one key.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _replace(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_or_create_signing_key(
    path: Path | str, public_dir: Path | str | None = None
) -> tuple[Ed25519PrivateKey, str]:
    """The service's signing key and its key id; generated on first use.

    Also (re)writes the public key (``<name>.pub``) when it is missing or does not match:
    beside the private key by default, so the auditors' key directory can simply be the
    services' key directory on one machine; in ``public_dir`` when given, so a deployment
    shares only the public keys and each private key stays in its service's own volume.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_new(path, private_key_pem(Ed25519PrivateKey.generate()), 0o600)
    key = load_private_key(path)
    public = key.public_key()
    pub_path = public_key_path(path)
    if public_dir is not None:
        pub_path = Path(public_dir) / pub_path.name
        pub_path.parent.mkdir(parents=True, exist_ok=True)
    pem = public_key_pem(public)
    if not pub_path.exists() or pub_path.read_bytes() != pem:
        _replace(pub_path, pem, 0o644)
    return key, key_id_for(public)


def load_public_keys(directory: Path | str) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pub`` Ed25519 key of a directory, by key id (empty if there is none)."""
    return {key_id: key for key_id, (_owner, key) in _public_keys(Path(directory)).items()}


def load_key_owners(directory: Path | str) -> dict[str, str]:
    """Key id → owning service (the ``.pub`` file's name), for ChainVerifier.key_services."""
    return {key_id: owner for key_id, (owner, _key) in _public_keys(Path(directory)).items()}


def _public_keys(directory: Path) -> dict[str, tuple[str, Ed25519PublicKey]]:
    if not directory.is_dir():
        return {}
    keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
    for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")):
        key = load_public_key(path)
        keys[key_id_for(key)] = (path.stem, key)
    return keys
