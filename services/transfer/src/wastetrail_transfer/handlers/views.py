"""Read models: what the HTTP API shows of stations, inventories, batches, trips, alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts.enums import Category
from wastetrail_runtime.alarms import AlertOut, alerts_query

from wastetrail_transfer.adapters.tables import (
    Alert,
    Batch,
    BatchAllocation,
    RefusedReturn,
    Station,
    Trip,
    TripShare,
    as_utc,
)
from wastetrail_transfer.domain.batch import BatchStatus


class StationView(BaseModel):
    """A station as registered."""

    station_id: str
    name: str
    commune: str
    capacity_grams: int
    categories: list[Category]


class InventoryLine(BaseModel):
    """One category's stock at a station, in grams."""

    category: Category
    arrived_grams: int
    dispatched_grams: int
    returned_grams: int
    on_hand_grams: int


class InventoryView(BaseModel):
    """A station's stock by category: arrived (net, weighed) − dispatched + refused returned.

    ``unclassified_grams`` is net weight of trips still waiting for their scans: it is at
    the station but its category split is not known yet.
    """

    station_id: str
    capacity_grams: int
    categories: list[InventoryLine]
    unclassified_grams: int
    on_hand_grams: int


class AllocationView(BaseModel):
    """Grams of one trip in a batch."""

    trip_id: str
    grams: int


class BatchView(BaseModel):
    """A batch with its allocations."""

    batch_id: str
    station_id: str
    category: Category
    status: BatchStatus
    total_grams: int
    allocations: list[AllocationView]
    opened_at: datetime
    seal_number: str | None
    sealed_at: datetime | None
    plant_id: str | None
    vehicle_id: str | None
    dispatched_grams: int | None
    dispatched_at: datetime | None
    received_at: datetime | None
    not_received_alert_id: str | None


class TripBalanceView(BaseModel):
    """A trip's running total in one category after an allocation change."""

    trip_id: str
    category: Category
    net_grams: int
    allocated_grams: int
    remaining_grams: int


class AllocationResultView(BaseModel):
    """The batch and the trip's running total."""

    batch: BatchView
    trip: TripBalanceView


ReconciliationStatus = Literal[
    "awaiting_weighing", "weighed_in", "awaiting_scans", "reconciled", "direct_haul",
    "received_at_plant",
]


class ReconciliationView(BaseModel):
    """A trip's weighing against its scans, and where it stands."""

    trip_id: str
    status: ReconciliationStatus
    vehicle_id: str | None
    station_id: str | None
    direct_haul_plant_id: str | None
    gross_grams: int | None
    tare_grams: int | None
    tare_source: str | None
    net_grams: int | None
    weighed_in_at: datetime | None
    weighed_out_at: datetime | None
    scanned_load_count: int
    scanned_grams: int
    closed_load_count: int | None
    closed_scanned_grams: int | None
    difference_grams: int | None
    tolerance_grams: int | None
    discrepancy: bool | None
    reconciled_at: datetime | None
    shares: dict[Category, int]
    not_weighed_alert_id: str | None
    mismatch_alert_id: str | None
    held_alert_id: str | None
    released_at: datetime | None  # when the last of its net left in a dispatched batch


class AlertView(AlertOut):
    """A custody alert raised by this service, with the station it concerns."""

    station_id: str | None


def station_view(station: Station) -> StationView:
    """A station row as its view."""
    return StationView(station_id=station.station_id, name=station.name,
                       commune=station.commune, capacity_grams=station.capacity_grams,
                       categories=[Category(c) for c in station.categories])


def _sums(rows: Sequence[tuple[str | None, int | None]]) -> dict[str, int]:
    return {key: int(grams or 0) for key, grams in rows if key is not None}


async def inventory(session: AsyncSession, station: Station) -> InventoryView:
    """Sum what arrived, left and came back, per category, for one station."""
    sid = station.station_id
    weighed = (col(Trip.station_id) == sid) & (col(Trip.net_grams).is_not(None)) & (
        Trip.weighed_site == "station")
    arrived = _sums((await session.exec(
        select(TripShare.category, func.sum(TripShare.grams))
        .join(Trip, col(Trip.trip_id) == col(TripShare.trip_id))
        .where(weighed).group_by(col(TripShare.category))
    )).all())
    unclassified = (await session.exec(
        select(func.coalesce(func.sum(Trip.net_grams), 0))
        .where(weighed, col(Trip.reconciled_at).is_(None))
    )).one()
    dispatched = _sums((await session.exec(
        select(Batch.category, func.sum(Batch.dispatched_grams))
        .where(Batch.station_id == sid, col(Batch.dispatched_at).is_not(None))
        .group_by(col(Batch.category))
    )).all())
    returned = _sums((await session.exec(
        select(RefusedReturn.category, func.sum(RefusedReturn.grams))
        .where(RefusedReturn.station_id == sid, col(RefusedReturn.category).is_not(None))
        .group_by(col(RefusedReturn.category))
    )).all())
    lines = []
    for category in sorted({*station.categories, *arrived, *dispatched, *returned}):
        a, d, r = (arrived.get(category, 0), dispatched.get(category, 0),
                   returned.get(category, 0))
        lines.append(InventoryLine(category=Category(category), arrived_grams=a,
                                   dispatched_grams=d, returned_grams=r,
                                   on_hand_grams=a - d + r))
    return InventoryView(station_id=sid, capacity_grams=station.capacity_grams,
                         categories=lines, unclassified_grams=int(unclassified or 0),
                         on_hand_grams=sum(x.on_hand_grams for x in lines)
                         + int(unclassified or 0))


async def batch_view(session: AsyncSession, batch: Batch) -> BatchView:
    """A batch row with its allocations."""
    allocations = (await session.exec(
        select(BatchAllocation).where(BatchAllocation.batch_id == batch.batch_id)
        .order_by(col(BatchAllocation.trip_id))
    )).all()
    return BatchView(
        batch_id=batch.batch_id, station_id=batch.station_id,
        category=Category(batch.category), status=BatchStatus(batch.status),
        total_grams=batch.total_grams,
        allocations=[AllocationView(trip_id=a.trip_id, grams=a.grams) for a in allocations],
        opened_at=as_utc(batch.opened_at), seal_number=batch.seal_number,
        sealed_at=as_utc(batch.sealed_at), plant_id=batch.plant_id,
        vehicle_id=batch.vehicle_id, dispatched_grams=batch.dispatched_grams,
        dispatched_at=as_utc(batch.dispatched_at), received_at=as_utc(batch.received_at),
        not_received_alert_id=batch.not_received_alert_id,
    )


async def batches(session: AsyncSession, station_id: str, statuses: list[BatchStatus],
                  limit: int, offset: int) -> list[BatchView]:
    """A station's batches in the given statuses, oldest first."""
    rows = (await session.exec(
        select(Batch).where(Batch.station_id == station_id,
                            col(Batch.status).in_([s.value for s in statuses]))
        .order_by(col(Batch.opened_at), col(Batch.batch_id)).limit(limit).offset(offset)
    )).all()
    return [await batch_view(session, b) for b in rows]


def _status(trip: Trip) -> ReconciliationStatus:
    if trip.reconciled_at is not None:
        return "reconciled"
    if trip.net_grams is not None and trip.weighed_site == "station":
        return "awaiting_scans"
    if trip.weighed_in_at is not None:
        return "weighed_in"
    if trip.received_at is not None or trip.weighed_site == "plant":
        return "received_at_plant"
    if trip.direct_haul_plant_id is not None:
        return "direct_haul"
    return "awaiting_weighing"


async def reconciliation(session: AsyncSession, trip: Trip) -> ReconciliationView:
    """A trip's weighing, scans and reconciliation."""
    shares = (await session.exec(select(TripShare).where(TripShare.trip_id == trip.trip_id))).all()
    return ReconciliationView(
        trip_id=trip.trip_id, status=_status(trip), vehicle_id=trip.vehicle_id,
        station_id=trip.station_id, direct_haul_plant_id=trip.direct_haul_plant_id,
        gross_grams=trip.gross_grams, tare_grams=trip.tare_grams, tare_source=trip.tare_source,
        net_grams=trip.net_grams, weighed_in_at=as_utc(trip.weighed_in_at),
        weighed_out_at=as_utc(trip.weighed_out_at), scanned_load_count=trip.load_count,
        scanned_grams=trip.scanned_grams, closed_load_count=trip.closed_load_count,
        closed_scanned_grams=trip.closed_scanned_grams,
        difference_grams=trip.difference_grams, tolerance_grams=trip.tolerance_grams,
        discrepancy=trip.discrepancy, reconciled_at=as_utc(trip.reconciled_at),
        shares={Category(s.category): s.grams for s in shares},
        not_weighed_alert_id=trip.not_weighed_alert_id,
        mismatch_alert_id=trip.mismatch_alert_id,
        held_alert_id=trip.held_alert_id, released_at=as_utc(trip.released_at),
    )


def alert_view(alert: Alert) -> AlertView:
    """An alert row as its view."""
    return AlertView.model_validate(alert, from_attributes=True)


async def alerts(session: AsyncSession, *, open_only: bool, kind: str | None,
                 station_id: str | None, subject_id: str | None, limit: int,
                 offset: int) -> list[AlertView]:
    """Alerts, newest first, filtered."""
    query = alerts_query(Alert, open_only=open_only, kind=kind, subject_id=subject_id,
                         station_id=station_id)
    rows = (await session.exec(query.limit(limit).offset(offset))).all()
    return [alert_view(a) for a in rows]
