"""Trips: start and close a vehicle run.

A trip's events (TripStarted, every LoadCollected, TripClosed) share one stream, the trip
id, so they share one Kafka partition and arrive in order: a consumer never sees a load
before its trip started or after it closed.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.problems import not_found
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import UnitOfWork

from wastetrail_collection.adapters.repository import as_utc
from wastetrail_collection.adapters.tables import Device, Trip, Vehicle
from wastetrail_collection.domain.rules import Rejection
from wastetrail_collection.domain.trips import (
    TripStart,
    TripState,
    VehicleFacts,
    decide_trip_close,
    decide_trip_start,
)
from wastetrail_collection.handlers.common import (
    calling_device,
    problem,
    settings_of,
    with_retries,
)


def _snapshot(trip: Trip) -> Trip:
    # A detached copy with every column loaded: the session's objects expire when an
    # unchanged (replayed) request rolls back, and the caller reads them afterwards.
    copy = Trip(**trip.model_dump())
    copy.started_at = as_utc(copy.started_at)
    copy.closed_at = as_utc(copy.closed_at) if copy.closed_at else None
    return copy


async def _open_trip_of(uow: UnitOfWork, vehicle_id: str) -> str | None:
    return (await uow.session.exec(select(Trip.trip_id).where(
        col(Trip.vehicle_id) == vehicle_id, col(Trip.is_open)))).first()


async def start_trip(
    rt: ServiceRuntime, principal: Principal, start: TripStart
) -> tuple[Trip, bool]:
    """Start a run on a vehicle and bind the calling device to it.

    Returns the trip and whether it is new: starting the same trip id again from the same
    device (an offline device re-syncing) returns the existing trip.
    """
    settings = settings_of(rt)

    async def work() -> tuple[Trip, bool]:
        async with rt.store.unit_of_work() as uow:
            session = uow.session
            device = await calling_device(uow, principal)
            existing = await session.get(Trip, start.trip_id)
            if existing is not None:
                if existing.device_id == device.device_id and (
                        existing.vehicle_id == start.vehicle_id):
                    return _snapshot(existing), False
                raise problem(Rejection("trip-exists", "trip_id",
                                        f"trip {start.trip_id} already exists"))
            vehicle_row = await session.get(Vehicle, start.vehicle_id)
            vehicle = None if vehicle_row is None else VehicleFacts(
                vehicle_row.vehicle_id, vehicle_row.collector_id, vehicle_row.capacity_grams)
            device_trip = None
            if device.vehicle_id is not None and device.vehicle_id != start.vehicle_id:
                device_trip = await _open_trip_of(uow, device.vehicle_id)
            decided = decide_trip_start(
                start, device=device, vehicle=vehicle,
                vehicle_open_trip=await _open_trip_of(uow, start.vehicle_id),
                device_open_trip=device_trip, now=rt.clock.now(),
                policy=settings.scan_policy())
            if isinstance(decided, Rejection):
                raise problem(decided)
            trip = Trip(trip_id=decided.trip_id, vehicle_id=decided.vehicle_id,
                        collector_id=decided.collector_id, device_id=device.device_id,
                        crew=list(decided.crew), commune=decided.commune, route=decided.route,
                        started_at=decided.started_at)
            session.add(trip)
            device_row = await session.get(Device, device.device_id, with_for_update=True)
            assert device_row is not None
            device_row.vehicle_id = decided.vehicle_id
            session.add(device_row)
            await uow.record(decided.trip_id, [decided], actor=principal.actor(),
                             expected_version=0, occurred_at=decided.started_at)
            await uow.commit()
            return _snapshot(trip), True

    return await with_retries(settings.write_retries, work)


async def close_trip(
    rt: ServiceRuntime, principal: Principal, trip_id: str, declared_total_grams: int,
    closed_at: datetime | None,
) -> tuple[Trip, bool]:
    """Close an open trip with the crew's declared total; closing it again with the same
    total (a retry) changes nothing."""
    settings = settings_of(rt)
    when = closed_at or rt.clock.now()
    async with rt.store.unit_of_work() as uow:
        device = await calling_device(uow, principal)
        trip = await uow.session.get(Trip, trip_id, with_for_update=True)
        if trip is None:
            raise not_found("trip", trip_id, field="trip_id")
        if not trip.is_open and trip.declared_total_grams == declared_total_grams and (
                trip.vehicle_id == device.vehicle_id):
            return _snapshot(trip), False
        state = TripState(trip.trip_id, trip.vehicle_id, trip.is_open, as_utc(trip.started_at),
                          trip.scanned_total_grams, trip.load_count)
        decided = decide_trip_close(state, device=device,
                                    declared_total_grams=declared_total_grams, closed_at=when,
                                    now=rt.clock.now(), policy=settings.scan_policy())
        if isinstance(decided, Rejection):
            raise problem(decided, 409 if decided.reason == "trip-closed" else None)
        trip.is_open = False
        trip.closed_at = decided.closed_at
        trip.declared_total_grams = declared_total_grams
        uow.session.add(trip)
        await uow.record(trip_id, [decided], actor=principal.actor(),
                         occurred_at=decided.closed_at)
        await uow.commit()
        return _snapshot(trip), True
