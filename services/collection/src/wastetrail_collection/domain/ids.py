"""Deterministic identifiers, so that a replayed request names the same thing again."""

from __future__ import annotations

import uuid

# Fixed forever: changing it would give every replayed scan a new load id.
NAMESPACE = uuid.UUID("6f1d3c52-52a4-4b0e-9a57-0c6f8f1e2b9d")


def load_id_for(device_id: str, idempotency_key: str) -> str:
    """The load id of a device's scan: the same key from the same device names the same load.

    Keys are scoped to the device because two devices may well both count from "1";
    a global scope would silently merge their scans into one load.
    """
    return "load-" + str(uuid.uuid5(NAMESPACE, f"load\x1f{device_id}\x1f{idempotency_key}"))


def refusal_id_for(device_id: str, idempotency_key: str) -> str:
    """The refusal id of a device's refusal, stable across retries (see ``load_id_for``)."""
    return "refusal-" + str(
        uuid.uuid5(NAMESPACE, f"refusal\x1f{device_id}\x1f{idempotency_key}")
    )


def generator_id_for(code: str) -> str:
    """The generator id of a generator code: re-importing a code updates the same generator."""
    return "gen-" + str(uuid.uuid5(NAMESPACE, f"generator\x1f{code}"))
