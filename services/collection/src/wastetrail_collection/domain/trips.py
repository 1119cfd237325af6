"""Trips: when a vehicle run may start and when it may close."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError
from wastetrail_contracts.events.collection import TripClosed, TripStarted

from wastetrail_collection.domain.rules import DeviceFacts, Rejection, ScanPolicy
from wastetrail_collection.domain.scans import check_time, rejection_from


@dataclass(frozen=True)
class VehicleFacts:
    """What starting a trip needs to know about the vehicle."""

    vehicle_id: str
    collector_id: str
    capacity_grams: int


@dataclass(frozen=True)
class TripStart:
    """A crew's request to start a run."""

    trip_id: str
    vehicle_id: str
    crew: tuple[str, ...]
    commune: str
    route: str
    started_at: datetime


@dataclass(frozen=True)
class TripState:
    """A trip as it stands: open or closed, and what has been scanned into it."""

    trip_id: str
    vehicle_id: str
    is_open: bool
    started_at: datetime
    scanned_total_grams: int
    load_count: int


def decide_trip_start(
    start: TripStart,
    *,
    device: DeviceFacts,
    vehicle: VehicleFacts | None,
    vehicle_open_trip: str | None,
    device_open_trip: str | None,
    now: datetime,
    policy: ScanPolicy,
) -> TripStarted | Rejection:
    """Start a run of one of the device's collector's vehicles, if nothing else is running.

    One vehicle runs one trip at a time (its net weight at the station is reconciled with
    that trip's loads), and a device scans into one trip at a time.
    """
    if vehicle is None:
        return Rejection("unknown-vehicle", "vehicle_id", f"no vehicle {start.vehicle_id!r}")
    if vehicle.collector_id != device.collector_id:
        return Rejection("vehicle-of-another-collector", "vehicle_id",
                         f"vehicle {vehicle.vehicle_id} belongs to collector "
                         f"{vehicle.collector_id}, device {device.device_id} to "
                         f"{device.collector_id}")
    if vehicle_open_trip is not None:
        return Rejection("vehicle-busy", "vehicle_id",
                         f"vehicle {vehicle.vehicle_id} is still on trip {vehicle_open_trip}; "
                         "close it first")
    if device_open_trip is not None:
        return Rejection("device-busy", "trip_id",
                         f"device {device.device_id} is still on trip {device_open_trip}; "
                         "close it first")
    rejection = check_time(start.started_at, "started_at", now, policy, None)
    if rejection is not None:
        return rejection
    try:
        return TripStarted(
            trip_id=start.trip_id,
            vehicle_id=vehicle.vehicle_id,
            collector_id=vehicle.collector_id,
            crew=start.crew,
            commune=start.commune,
            route=start.route,
            started_at=start.started_at.astimezone(UTC),
        )
    except ValidationError as exc:
        return rejection_from(exc)


def decide_trip_close(
    trip: TripState,
    *,
    device: DeviceFacts,
    declared_total_grams: int,
    closed_at: datetime,
    now: datetime,
    policy: ScanPolicy,
) -> TripClosed | Rejection:
    """Close an open trip of the device's vehicle with the crew's declared total.

    The declared total is recorded beside the scanned total, not checked against it:
    the transfer station reconciles both with its weighbridge.
    """
    if device.vehicle_id != trip.vehicle_id:
        return Rejection("trip-of-another-vehicle", "trip_id",
                         f"trip {trip.trip_id} runs on vehicle {trip.vehicle_id}, but device "
                         f"{device.device_id} is bound to {device.vehicle_id or 'no vehicle'}")
    if not trip.is_open:
        return Rejection("trip-closed", "trip_id", f"trip {trip.trip_id} is already closed")
    if declared_total_grams < 0:
        return Rejection("weight-not-positive", "declared_total_grams",
                         "the declared total cannot be negative")
    if closed_at.tzinfo is not None and closed_at < trip.started_at:
        return Rejection("time-before-trip-start", "closed_at",
                         f"{closed_at.isoformat()} is before the trip started "
                         f"({trip.started_at.isoformat()})")
    rejection = check_time(closed_at, "closed_at", now, policy, None)
    if rejection is not None:
        return rejection
    try:
        return TripClosed(
            trip_id=trip.trip_id,
            vehicle_id=trip.vehicle_id,
            declared_total_grams=declared_total_grams,
            scanned_total_grams=trip.scanned_total_grams,
            load_count=trip.load_count,
            closed_at=closed_at.astimezone(UTC),
        )
    except ValidationError as exc:
        return rejection_from(exc)
