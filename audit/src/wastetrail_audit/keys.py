"""The services' public keys as the auditor needs them (wastetrail_contracts.keys).

Services publish ``<dir>/<service>.pub`` beside their private keys; the auditor loads
every ``*.pub`` of ``--keys-dir``: the key by key id, and which service owns each key id
(so one service's key cannot vouch for another service's chain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from wastetrail_contracts.keys import KeyFileError, load_key_owners
from wastetrail_contracts.keys import load_public_keys as load_keys_by_id

__all__ = ["KeyFileError", "KeyRing", "load_public_keys"]


@dataclass(frozen=True)
class KeyRing:
    """Public keys by key id, and which service owns each key id."""

    public_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)


def load_public_keys(directory: Path) -> KeyRing:
    """Every ``*.pub`` key of ``directory``; an absent directory gives an empty ring."""
    return KeyRing(public_keys=load_keys_by_id(directory), services=load_key_owners(directory))
