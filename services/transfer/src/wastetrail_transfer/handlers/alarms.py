"""The alarm sweep: trips weighed nowhere and batches received nowhere in time.

Raising happens here, on a clock; clearing happens where the late fact arrives (a
weighing, a plant receipt), so an alarm is closed by the event that proves custody.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import col, select
from wastetrail_contracts.enums import AlertKind
from wastetrail_runtime.store import EventStore

from wastetrail_transfer.adapters.tables import Batch, Station, Trip, as_utc
from wastetrail_transfer.domain.alarms import (
    AlarmDelays,
    batch_receipt_deadline,
    overdue,
    trip_weigh_deadline,
)
from wastetrail_transfer.domain.batch import BatchStatus
from wastetrail_transfer.handlers.common import raise_alert

CHUNK = 200  # alarms raised per transaction; keeps one sweep's locks short


async def raise_overdue_trips(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """Raise ``TRIP_NOT_WEIGHED`` for every collected trip past its deadline; returns how many."""
    raised = 0
    while True:
        async with store.unit_of_work() as uow:
            # SKIP LOCKED: a trip being weighed right now is not overdue, and a second
            # service instance sweeping at the same time takes other trips.
            trips = (await uow.session.exec(
                select(Trip).where(
                    col(Trip.weighed_in_at).is_(None), col(Trip.weighed_at).is_(None),
                    col(Trip.received_at).is_(None), col(Trip.not_weighed_alert_id).is_(None),
                    or_(
                        and_(col(Trip.closed_at).is_not(None),
                             col(Trip.closed_at) <= now - delays.trip_after_close),
                        and_(col(Trip.closed_at).is_(None), col(Trip.started_at).is_not(None),
                             col(Trip.started_at) <= now - delays.trip_after_start),
                    ),
                ).order_by(col(Trip.trip_id)).limit(CHUNK).with_for_update(skip_locked=True)
            )).all()
            for trip in trips:
                deadline = trip_weigh_deadline(as_utc(trip.started_at), as_utc(trip.closed_at),
                                               delays)
                assert overdue(deadline, now)  # the query and the rule agree
                since = (f"closed at {as_utc(trip.closed_at):%Y-%m-%d %H:%M}Z"
                         if trip.closed_at else
                         f"started at {as_utc(trip.started_at):%Y-%m-%d %H:%M}Z")
                haul = (f", direct haul to plant {trip.direct_haul_plant_id}"
                        if trip.direct_haul_plant_id else "")
                trip.not_weighed_alert_id = await raise_alert(
                    uow, kind=AlertKind.TRIP_NOT_WEIGHED, subject_kind="trip",
                    subject_id=trip.trip_id, commune=trip.commune, now=now,
                    detail=(f"trip {trip.trip_id} (vehicle {trip.vehicle_id}) {since}{haul} "
                            "was weighed at no station or plant by "
                            f"{deadline:%Y-%m-%d %H:%M}Z"),
                    expected_grams=trip.closed_scanned_grams,
                )
            await uow.commit()
        raised += len(trips)
        if len(trips) < CHUNK:
            return raised


async def raise_overdue_batches(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """Raise ``BATCH_NOT_RECEIVED`` for every dispatched batch past its deadline."""
    raised = 0
    while True:
        async with store.unit_of_work() as uow:
            batches = (await uow.session.exec(
                select(Batch).where(
                    Batch.status == BatchStatus.DISPATCHED.value,
                    col(Batch.received_at).is_(None), col(Batch.not_received_alert_id).is_(None),
                    col(Batch.dispatched_at) <= now - delays.batch_after_dispatch,
                ).order_by(col(Batch.batch_id)).limit(CHUNK).with_for_update(skip_locked=True)
            )).all()
            for batch in batches:
                dispatched_at = as_utc(batch.dispatched_at)
                assert dispatched_at is not None  # dispatched ⇒ has a time
                deadline = batch_receipt_deadline(dispatched_at, delays)
                station = await uow.session.get(Station, batch.station_id)
                batch.not_received_alert_id = await raise_alert(
                    uow, kind=AlertKind.BATCH_NOT_RECEIVED, subject_kind="batch",
                    subject_id=batch.batch_id, station_id=batch.station_id, now=now,
                    commune=station.commune if station else None,
                    detail=(f"batch {batch.batch_id} (seal {batch.seal_number}, "
                            f"{batch.dispatched_grams} g of {batch.category}) left station "
                            f"{batch.station_id} for plant {batch.plant_id} at "
                            f"{dispatched_at:%Y-%m-%d %H:%M}Z and was not received by "
                            f"{deadline:%Y-%m-%d %H:%M}Z"),
                    expected_grams=batch.dispatched_grams,
                )
            await uow.commit()
        raised += len(batches)
        if len(batches) < CHUNK:
            return raised


async def sweep(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """One pass over trips and batches; returns how many alarms were raised."""
    return (await raise_overdue_trips(store, now, delays)
            + await raise_overdue_batches(store, now, delays))
