"""Registering transfer stations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from wastetrail_contracts import Actor
from wastetrail_contracts.enums import Category
from wastetrail_contracts.events.transfer import StationRegistered
from wastetrail_runtime.store import UnitOfWork

from wastetrail_transfer.adapters.tables import Station
from wastetrail_transfer.domain.errors import Conflict


async def register_station(
    uow: UnitOfWork, *, station_id: str, name: str, commune: str, capacity_grams: int,
    categories: Sequence[Category], actor: Actor, now: datetime,
) -> Station:
    """A new station with its capacity and the sorted streams it accepts."""
    if await uow.session.get(Station, station_id) is not None:
        raise Conflict("station-exists", f"station {station_id!r} is already registered",
                       field="station_id")
    event = StationRegistered(station_id=station_id, name=name, commune=commune,
                              capacity_grams=capacity_grams, categories=tuple(categories))
    station = Station(station_id=station_id, name=name, commune=commune,
                      capacity_grams=capacity_grams,
                      categories=[c.value for c in event.categories], registered_at=now)
    uow.session.add(station)
    await uow.record(station_id, [event], actor=actor, expected_version=0)
    return station
