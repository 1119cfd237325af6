"""Weighbridge arithmetic: gross in, tare out (or the registered tare) → net."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wastetrail_transfer.domain.errors import Conflict, Invalid

TareSource = Literal["weighed", "registered"]


@dataclass(frozen=True)
class Tare:
    """The tare that counts for a trip and where it came from."""

    grams: int
    source: TareSource


def choose_tare(weighed_tare: int | None, registered_tare: int | None, vehicle_id: str) -> Tare:
    """The weighed tare when the vehicle crossed the bridge on the way out, else its registered one.

    A weighed tare always wins: the registered tare ignores fuel, crew and mud, so it is only
    the fallback for a vehicle that leaves without weighing out.
    """
    if weighed_tare is not None:
        return Tare(weighed_tare, "weighed")
    if registered_tare is None:
        raise Conflict(
            "no-registered-tare",
            f"vehicle {vehicle_id!r} has no registered tare yet; weigh it out (tare_grams)",
            field="tare_grams",
        )
    return Tare(registered_tare, "registered")


def net_weight(gross_grams: int, tare_grams: int) -> int:
    """Net = gross − tare; a tare above the gross is a misread, refused rather than clamped."""
    if tare_grams > gross_grams:
        raise Invalid(
            "tare-exceeds-gross",
            f"tare {tare_grams} g is more than the gross {gross_grams} g",
            field="tare_grams",
        )
    return gross_grams - tare_grams
