"""A treatment plant's rules as the domain sees them, and its operating day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from wastetrail_contracts.enums import Category, TreatmentMethod

# Plants count capacity per local calendar day. Vietnam keeps UTC+7 all year (no DST),
# so a fixed offset is exact and needs no time-zone database.
PLANT_DAY_OFFSET = timezone(timedelta(hours=7), "ICT")


@dataclass(frozen=True)
class PlantRules:
    """What a plant may do: its permitted methods, accepted categories and daily capacity."""

    plant_id: str
    methods: frozenset[TreatmentMethod]
    categories: frozenset[Category]
    daily_capacity_grams: int


def plant_day(at: datetime) -> date:
    """The plant's operating day (UTC+7 calendar date) of a UTC instant."""
    return at.astimezone(PLANT_DAY_OFFSET).date()


def over_capacity(received_today_before: int, received_grams: int, daily_capacity: int) -> bool:
    """Whether a receipt pushes the plant's day beyond its capacity.

    The receipt is still accepted (waste cannot be sent back for lack of room); it is
    only flagged.
    """
    return received_today_before + received_grams > daily_capacity
