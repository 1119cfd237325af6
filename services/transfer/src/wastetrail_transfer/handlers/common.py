"""Shared steps of the handlers: locking a trip, raising and clearing custody alerts,
reconciling a weighed trip once its scans are complete."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.apportion import category_shares as apportion
from wastetrail_contracts.enums import AlertKind, Category, CustodySite
from wastetrail_contracts.events.transfer import TripReconciled
from wastetrail_runtime import alarms
from wastetrail_runtime.store import UnitOfWork

from wastetrail_transfer.adapters.tables import Alert, Load, Trip, TripShare
from wastetrail_transfer.domain.reconciliation import Scans, Tolerance, reconcile


async def lock_trip(uow: UnitOfWork, trip_id: str) -> Trip:
    """The trip's row, created empty if no event mentioned it yet, locked for this transaction.

    Weighing, Kafka projections and the alarm sweep all change a trip; the row lock
    serialises them so an alarm cannot be raised for a trip being weighed right now.
    """
    values = {"trip_id": trip_id, "load_count": 0, "scanned_grams": 0}
    table = Trip.__table__  # type: ignore[attr-defined]
    if uow.store.db.is_postgres:
        await uow.session.exec(pg_insert(table).values(**values).on_conflict_do_nothing())
    else:
        await uow.session.exec(sqlite_insert(table).values(**values).on_conflict_do_nothing())
    trip = await uow.session.get(Trip, trip_id, with_for_update=True)
    assert trip is not None  # inserted above
    return trip


def scans_of(trip: Trip) -> Scans:
    """What collection reported for the trip so far."""
    return Scans(
        load_count=trip.load_count,
        scanned_grams=trip.scanned_grams,
        closed_load_count=trip.closed_load_count,
        closed_scanned_grams=trip.closed_scanned_grams,
    )


async def clear_alert(uow: UnitOfWork, alert_id: str, resolution: str, now: datetime) -> bool:
    """Record ``CustodyAlertCleared`` for an open alert; False when it was already cleared."""
    return await alarms.clear_alert(uow, Alert, alert_id, resolution, now)


async def custody_reached(uow: UnitOfWork, trip: Trip, where: str, now: datetime) -> None:
    """The trip arrived somewhere (a station's bridge, a plant): clear its not-weighed alarm."""
    if trip.not_weighed_alert_id is not None:
        await clear_alert(uow, trip.not_weighed_alert_id, where, now)


async def reconcile_if_ready(uow: UnitOfWork, trip: Trip, tolerance: Tolerance,
                             now: datetime) -> bool:
    """Reconcile a station-weighed trip once all its loads are known; True if it happened.

    Called after a weighing and after every load or close that arrives from Kafka, so a
    trip weighed before its loads reconciles as soon as the last one lands. Also fixes the
    trip's per-category shares, which batches allocate from.
    """
    if (trip.reconciled_at is not None or trip.net_grams is None
            or trip.weighed_site != CustodySite.STATION.value or trip.station_id is None):
        return False
    scans = scans_of(trip)
    if not scans.complete():
        return False
    result = reconcile(trip.net_grams, scans, tolerance)
    trip.reconciled_at = now
    trip.reconciled_scanned_grams = result.scanned_grams
    trip.reconciled_load_count = result.load_count
    trip.difference_grams = result.difference_grams
    trip.tolerance_grams = result.tolerance_grams
    trip.discrepancy = result.discrepancy
    loads = (await uow.session.exec(select(Load).where(Load.trip_id == trip.trip_id))).all()
    by_category: dict[Category, int] = defaultdict(int)
    for load in loads:
        by_category[Category(load.category)] += load.grams
    for category, grams in apportion(trip.net_grams, by_category).items():
        uow.session.add(TripShare(trip_id=trip.trip_id, category=category.value, grams=grams))
    await uow.record(trip.trip_id, [TripReconciled(
        trip_id=trip.trip_id, site_id=trip.station_id, net_grams=result.net_grams,
        scanned_grams=result.scanned_grams, load_count=result.load_count,
        difference_grams=result.difference_grams, tolerance_grams=result.tolerance_grams,
        discrepancy=result.discrepancy,
    )], actor=SYSTEM_ACTOR)
    if result.discrepancy:
        trip.mismatch_alert_id = await alarms.raise_alert(
            uow, Alert, kind=AlertKind.TRIP_WEIGHT_MISMATCH, subject_kind="trip",
            subject_id=trip.trip_id, station_id=trip.station_id, commune=trip.commune,
            detail=(f"trip {trip.trip_id} weighed {result.net_grams} g net at "
                    f"{trip.station_id} but its {result.load_count} loads scanned "
                    f"{result.scanned_grams} g: {result.difference_grams:+d} g, tolerance "
                    f"{result.tolerance_grams} g"),
            expected_grams=result.scanned_grams, observed_grams=result.net_grams, now=now,
        )
    return True
