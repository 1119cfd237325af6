"""The alarm sweep: loads received nowhere, batches received nowhere, waste held at a station.

Raising happens here, on a clock; clearing happens where the late fact arrives (a
weighing, a plant receipt, a dispatch), so an alarm is closed by the event that proves
custody. Each kind is one ``step`` of the runtime's chunked sweep (``alarms.in_chunks``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from wastetrail_contracts.enums import AlertKind
from wastetrail_runtime import alarms
from wastetrail_runtime.alarms import CHUNK, in_chunks
from wastetrail_runtime.store import EventStore, UnitOfWork

from wastetrail_transfer.adapters.tables import (
    Alert,
    Batch,
    BatchAllocation,
    Station,
    Trip,
    as_utc,
)
from wastetrail_transfer.domain.alarms import (
    AlarmDelays,
    batch_receipt_deadline,
    held_grams,
    overdue,
    released,
    station_hold_deadline,
    trip_weigh_deadline,
)
from wastetrail_transfer.domain.batch import BatchStatus
from wastetrail_transfer.handlers.common import clear_alert


async def raise_overdue_trips(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """Raise ``LOAD_NOT_RECEIVED`` for every collected trip weighed nowhere by its deadline.

    One alarm per trip for all of its loads (see domain/alarms.py); returns how many.
    """
    async def step(uow: UnitOfWork) -> tuple[int, int]:
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
            since = (f"closed at {as_utc(trip.closed_at):%Y-%m-%d %H:%M}Z" if trip.closed_at
                     else f"started at {as_utc(trip.started_at):%Y-%m-%d %H:%M}Z")
            haul = (f", direct haul to plant {trip.direct_haul_plant_id}"
                    if trip.direct_haul_plant_id else "")
            loads = (trip.closed_load_count if trip.closed_load_count is not None
                     else trip.load_count)
            grams = (trip.closed_scanned_grams if trip.closed_scanned_grams is not None
                     else trip.scanned_grams)
            trip.not_weighed_alert_id = await alarms.raise_alert(
                uow, Alert, kind=AlertKind.LOAD_NOT_RECEIVED, subject_kind="trip",
                subject_id=trip.trip_id, commune=trip.commune, now=now,
                detail=(f"{loads} loads ({grams} g) of trip {trip.trip_id} (vehicle "
                        f"{trip.vehicle_id}, commune {trip.commune}) {since}{haul} were "
                        f"received at no station or plant by {deadline:%Y-%m-%d %H:%M}Z"),
                expected_grams=grams,
            )
        return len(trips), len(trips)

    return await in_chunks(store, step)


async def raise_overdue_batches(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """Raise ``BATCH_NOT_RECEIVED`` for every dispatched batch past its deadline."""
    async def step(uow: UnitOfWork) -> tuple[int, int]:
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
            batch.not_received_alert_id = await alarms.raise_alert(
                uow, Alert, kind=AlertKind.BATCH_NOT_RECEIVED, subject_kind="batch",
                subject_id=batch.batch_id, station_id=batch.station_id, now=now,
                commune=station.commune if station else None,
                detail=(f"batch {batch.batch_id} (seal {batch.seal_number}, "
                        f"{batch.dispatched_grams} g of {batch.category}) left station "
                        f"{batch.station_id} for plant {batch.plant_id} at "
                        f"{dispatched_at:%Y-%m-%d %H:%M}Z and was not received by "
                        f"{deadline:%Y-%m-%d %H:%M}Z"),
                expected_grams=batch.dispatched_grams,
            )
        return len(batches), len(batches)

    return await in_chunks(store, step)


async def dispatched_grams(uow: UnitOfWork, trip_ids: list[str]) -> dict[str, int]:
    """Grams of each trip that left its station in dispatched (or received) batches."""
    if not trip_ids:
        return {}
    rows = (await uow.session.exec(
        select(BatchAllocation.trip_id, func.sum(BatchAllocation.grams))
        .join(Batch, col(Batch.batch_id) == col(BatchAllocation.batch_id))
        .where(col(BatchAllocation.trip_id).in_(trip_ids),
               col(Batch.dispatched_at).is_not(None))
        .group_by(col(BatchAllocation.trip_id))
    )).all()
    return {trip_id: int(grams) for trip_id, grams in rows}


async def release_dispatched(uow: UnitOfWork, trip_ids: list[str], where: str,
                             now: datetime) -> None:
    """Trips whose net has now all left in dispatched batches: clear their holding alarm."""
    left = await dispatched_grams(uow, trip_ids)
    for trip_id in sorted(trip_ids):
        trip = await uow.session.get(Trip, trip_id, with_for_update=True)
        if (trip is None or trip.released_at is not None
                or not released(trip.net_grams, left.get(trip_id, 0))):
            continue
        trip.released_at = now
        if trip.held_alert_id is not None:
            await clear_alert(uow, trip.held_alert_id, where, now)


async def raise_held_at_station(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """Raise ``WASTE_HELD_AT_STATION`` for trips weighed in whose net has not all left."""
    async def step(uow: UnitOfWork) -> tuple[int, int]:
        trips = (await uow.session.exec(
            select(Trip).where(
                col(Trip.weighed_in_at).is_not(None), col(Trip.released_at).is_(None),
                col(Trip.held_alert_id).is_(None),
                col(Trip.weighed_in_at) <= now - delays.held_at_station,
            ).order_by(col(Trip.trip_id)).limit(CHUNK).with_for_update(skip_locked=True)
        )).all()
        left = await dispatched_grams(uow, [t.trip_id for t in trips])
        count = 0
        for trip in trips:
            weighed_in_at = as_utc(trip.weighed_in_at)
            assert weighed_in_at is not None  # the query asks for it
            gone = left.get(trip.trip_id, 0)
            if released(trip.net_grams, gone):  # all left before the flag was kept
                trip.released_at = now
                continue
            deadline = station_hold_deadline(weighed_in_at, delays)
            assert overdue(deadline, now)  # the query and the rule agree
            held = held_grams(trip.net_grams, trip.gross_grams, gone)
            trip.held_alert_id = await alarms.raise_alert(
                uow, Alert, kind=AlertKind.WASTE_HELD_AT_STATION, subject_kind="trip",
                subject_id=trip.trip_id, station_id=trip.station_id, commune=trip.commune,
                now=now,
                detail=(f"{held} g of trip {trip.trip_id} weighed in at station "
                        f"{trip.station_id} at {weighed_in_at:%Y-%m-%d %H:%M}Z were not "
                        f"dispatched to a plant by {deadline:%Y-%m-%d %H:%M}Z "
                        f"({gone} g of {trip.net_grams} g net dispatched)"),
                expected_grams=held,
            )
            count += 1
        return len(trips), count

    return await in_chunks(store, step)


async def sweep(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """One pass over trips and batches; returns how many alarms were raised."""
    return (await raise_overdue_trips(store, now, delays)
            + await raise_overdue_batches(store, now, delays)
            + await raise_held_at_station(store, now, delays))
