"""Weighing trips at a station, and marking trips that go straight to a plant."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from wastetrail_contracts import Actor
from wastetrail_contracts.enums import Category, CustodySite
from wastetrail_contracts.events.transfer import TripMarkedDirectHaul, TripWeighed
from wastetrail_runtime.store import UnitOfWork

from wastetrail_transfer.adapters.tables import Load, Plant, Station, Trip, Vehicle
from wastetrail_transfer.domain.errors import Conflict, Forbidden, Invalid, Missing
from wastetrail_transfer.domain.reconciliation import Tolerance
from wastetrail_transfer.domain.weighing import choose_tare, net_weight
from wastetrail_transfer.handlers.common import custody_reached, lock_trip, reconcile_if_ready


async def _station(uow: UnitOfWork, station_id: str) -> Station:
    station = await uow.session.get(Station, station_id)
    if station is None:
        raise Missing("station-not-found", f"no station {station_id!r}", field="station_id")
    return station


async def _scanned_categories(uow: UnitOfWork, trip_id: str) -> set[Category]:
    rows = await uow.session.exec(select(Load.category).where(Load.trip_id == trip_id).distinct())
    return {Category(c) for c in rows.all()}


def _not_elsewhere(trip: Trip) -> None:
    if trip.direct_haul_plant_id is not None:
        raise Conflict("direct-haul", f"trip {trip.trip_id!r} goes straight to plant "
                       f"{trip.direct_haul_plant_id!r}; the plant weighs it", field="trip_id")
    if trip.weighed_site == CustodySite.PLANT.value or trip.received_at is not None:
        raise Conflict("received-at-plant", f"trip {trip.trip_id!r} was already received at "
                       f"plant {trip.weighed_site_id or trip.received_plant_id!r}",
                       field="trip_id")


async def weigh_in(
    uow: UnitOfWork, *, station_id: str, trip_id: str, vehicle_id: str, gross_grams: int,
    now: datetime,
) -> Trip:
    """A trip's vehicle crossed the station's bridge loaded (gross); custody is at the station.

    The trip may not be known from Kafka yet (collection can lag), so the operator names
    the vehicle; when the trip is known it must be the same vehicle.
    """
    station = await _station(uow, station_id)
    trip = await lock_trip(uow, trip_id)
    _not_elsewhere(trip)
    if trip.weighed_in_at is not None:
        raise Conflict("already-weighed-in", f"trip {trip_id!r} was weighed in at station "
                       f"{trip.station_id!r}", field="trip_id")
    if trip.vehicle_id is not None and trip.vehicle_id != vehicle_id:
        raise Invalid("wrong-vehicle", f"trip {trip_id!r} runs with vehicle "
                      f"{trip.vehicle_id!r}, not {vehicle_id!r}", field="vehicle_id")
    refused = await _scanned_categories(uow, trip_id) - {Category(c) for c in station.categories}
    if refused:
        raise Invalid("category-not-accepted", f"station {station_id!r} does not accept "
                      f"{', '.join(sorted(c.value for c in refused))} carried by trip "
                      f"{trip_id!r}", field="trip_id")
    trip.vehicle_id = vehicle_id
    trip.station_id = station_id
    trip.gross_grams = gross_grams
    trip.weighed_in_at = now
    await custody_reached(uow, trip, f"weighed in at station {station_id}", now)
    return trip


async def weigh_out(
    uow: UnitOfWork, *, station_id: str, trip_id: str, tare_grams: int | None,
    tolerance: Tolerance, actor: Actor, now: datetime,
) -> Trip:
    """The empty vehicle crossed the bridge (tare), or left without: its registered tare.

    Records ``TripWeighed`` and reconciles at once when the trip's loads are all known.
    """
    await _station(uow, station_id)
    trip = await lock_trip(uow, trip_id)
    if trip.weighed_in_at is None or trip.station_id != station_id:
        raise Conflict("not-weighed-in", f"trip {trip_id!r} was not weighed in at station "
                       f"{station_id!r}", field="trip_id")
    if trip.weighed_at is not None:
        raise Conflict("already-weighed", f"trip {trip_id!r} was already weighed out",
                       field="trip_id")
    # Both are set at weigh-in.
    assert trip.gross_grams is not None
    assert trip.vehicle_id is not None
    vehicle = None if tare_grams is not None else await uow.session.get(Vehicle, trip.vehicle_id)
    tare = choose_tare(tare_grams, vehicle.registered_tare_grams if vehicle else None,
                       trip.vehicle_id)
    net = net_weight(trip.gross_grams, tare.grams)
    weighed_in_at = trip.weighed_in_at
    event = TripWeighed(
        trip_id=trip_id, vehicle_id=trip.vehicle_id, site=CustodySite.STATION,
        site_id=station_id, gross_grams=trip.gross_grams, tare_grams=tare.grams, net_grams=net,
        tare_source=tare.source, weighed_in_at=weighed_in_at,
        weighed_out_at=now if tare.source == "weighed" else None,
    )
    trip.tare_grams = tare.grams
    trip.tare_source = tare.source
    trip.weighed_out_at = event.weighed_out_at
    trip.net_grams = net
    trip.weighed_site = CustodySite.STATION.value
    trip.weighed_site_id = station_id
    trip.weighed_at = now
    await uow.record(trip_id, [event], actor=actor)
    await reconcile_if_ready(uow, trip, tolerance, now)
    return trip


def _may_direct(trip: Trip, station_id: str | None) -> None:
    """A station decides only for trips that no other station holds or has sent on."""
    if station_id is None:
        return  # an admin
    other = trip.station_id or trip.direct_haul_station_id
    if other is not None and other != station_id:
        raise Forbidden("another-station", f"trip {trip.trip_id!r} belongs to station "
                        f"{other!r}, not {station_id!r}", field="trip_id")


async def mark_direct_haul(uow: UnitOfWork, *, trip_id: str, plant_id: str,
                           station_id: str | None, actor: Actor, now: datetime) -> Trip:
    """The trip skips the stations: the plant's weighbridge receipt closes its custody.

    ``station_id`` is the deciding operator's station (None for an admin); the decision is
    recorded as ``TripMarkedDirectHaul`` with its actor. Marking again for the same plant
    changes nothing.
    """
    plant = await uow.session.get(Plant, plant_id)
    if plant is None:
        raise Invalid("unknown-plant", f"no plant {plant_id!r} is registered", field="plant_id")
    trip = await lock_trip(uow, trip_id)
    _may_direct(trip, station_id)
    if trip.weighed_in_at is not None:
        raise Conflict("already-weighed-in", f"trip {trip_id!r} is already at station "
                       f"{trip.station_id!r}", field="trip_id")
    if trip.direct_haul_plant_id == plant_id:
        return trip
    if trip.direct_haul_plant_id is not None:
        raise Conflict("already-direct-haul", f"trip {trip_id!r} already goes straight to "
                       f"plant {trip.direct_haul_plant_id!r}", field="plant_id")
    refused = await _scanned_categories(uow, trip_id) - {Category(c) for c in plant.categories}
    if refused:
        raise Invalid("plant-does-not-accept", f"plant {plant_id!r} does not accept "
                      f"{', '.join(sorted(c.value for c in refused))} carried by trip "
                      f"{trip_id!r}", field="plant_id")
    trip.direct_haul_plant_id = plant_id
    trip.direct_haul_station_id = station_id
    await uow.record(trip_id, [TripMarkedDirectHaul(
        trip_id=trip_id, plant_id=plant_id, station_id=station_id, marked_at=now)], actor=actor)
    return trip
