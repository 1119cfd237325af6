"""What the station learns from Kafka: trips, loads and vehicles from collection; plants,
receipts and returned refused waste from treatment.

Each function runs inside the consumer's transaction (the runtime records the event id
there too, so a redelivery changes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.enums import CustodySite
from wastetrail_contracts.events.collection import (
    LoadCollected,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.transfer import RefusedWasteReturned, TripWeighed
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    PlantRegistered,
    RefusedWasteRedirected,
)
from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.store import UnitOfWork

from wastetrail_transfer.adapters.tables import (
    Batch,
    Load,
    Plant,
    Receipt,
    RefusedReturn,
    Station,
    Trip,
    Vehicle,
)
from wastetrail_transfer.domain.batch import BatchStatus
from wastetrail_transfer.domain.reconciliation import Tolerance
from wastetrail_transfer.handlers.common import (
    clear_alert,
    custody_reached,
    lock_trip,
    reconcile_if_ready,
)

log = get_logger(__name__)


async def trip_started(uow: UnitOfWork, event: TripStarted) -> None:
    """A vehicle run began: the trip is now expected at a station (or a plant)."""
    trip = await lock_trip(uow, event.trip_id)
    if trip.vehicle_id is not None and trip.vehicle_id != event.vehicle_id:
        # The station weighed it (before this start arrived) under another vehicle: keep
        # what the bridge saw, and leave a trace for whoever investigates.
        log.warning("transfer.trip_vehicle_mismatch", trip_id=event.trip_id,
                    weighed_vehicle=trip.vehicle_id, started_vehicle=event.vehicle_id)
    trip.vehicle_id = trip.vehicle_id or event.vehicle_id
    trip.collector_id = event.collector_id
    trip.commune = event.commune
    trip.started_at = event.started_at


_ROWS_PER_INSERT = 1000  # 5 parameters a row: far below PostgreSQL's 32,767


async def loads_collected(uow: UnitOfWork, events: Sequence[LoadCollected],
                          tolerance: Tolerance, now: datetime) -> None:
    """Scanned loads in log order (a consumer batch): stored with one statement per
    thousand, then counted on their trips one by one, exactly as one at a time would."""
    insert = pg_insert if uow.store.db.is_postgres else sqlite_insert
    table = Load.__table__  # type: ignore[attr-defined]
    new: set[str] = set()
    for start in range(0, len(events), _ROWS_PER_INSERT):
        rows = [{"load_id": e.load_id, "trip_id": e.trip_id, "category": e.category.value,
                 "grams": e.grams, "collected_at": e.collected_at}
                for e in events[start:start + _ROWS_PER_INSERT]]
        # The statement both stores the loads and says which are new: a load announced
        # twice (a device re-sync) is counted once, even twice in one statement.
        stored = await uow.session.execute(
            insert(table).values(rows).on_conflict_do_nothing().returning(table.c.load_id))
        new.update(stored.scalars())
    for event in events:
        if event.load_id not in new:
            continue
        new.discard(event.load_id)  # its first announcement is the one stored
        trip = await _trip_locked_here(uow, event.trip_id)
        trip.vehicle_id = trip.vehicle_id or event.vehicle_id
        trip.commune = trip.commune or event.commune
        trip.load_count += 1
        trip.scanned_grams += event.grams
        # Cheap unless the trip is weighed and this was its last load.
        await reconcile_if_ready(uow, trip, tolerance, now)


_LOCKED_TRIPS = "transfer.locked_trips"  # session.info: (transaction, {trip_id: Trip})


async def _trip_locked_here(uow: UnitOfWork, trip_id: str) -> Trip:
    """``lock_trip``, but once per trip and transaction: a consumer batch carries hundreds
    of one trip's loads, and the row lock is held until commit anyway."""
    transaction = uow.session.sync_session.get_transaction()
    cached = uow.session.info.get(_LOCKED_TRIPS)
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        uow.session.info[_LOCKED_TRIPS] = cached
    trips: dict[str, Trip] = cached[1]
    if trip_id not in trips:
        trips[trip_id] = await lock_trip(uow, trip_id)
    return trips[trip_id]


async def trip_closed(uow: UnitOfWork, event: TripClosed, tolerance: Tolerance,
                      now: datetime) -> None:
    """The crew closed the trip: how many loads, how many grams — the reconciliation target."""
    trip = await lock_trip(uow, event.trip_id)
    trip.vehicle_id = trip.vehicle_id or event.vehicle_id
    trip.closed_at = event.closed_at
    trip.closed_load_count = event.load_count
    trip.closed_scanned_grams = event.scanned_total_grams
    await reconcile_if_ready(uow, trip, tolerance, now)


async def _upsert(uow: UnitOfWork, table: object, key: str, values: dict[str, object]) -> None:
    insert = pg_insert if uow.store.db.is_postgres else sqlite_insert
    stmt = insert(table).values(**values)  # type: ignore[arg-type]
    update = {k: v for k, v in values.items() if k != key}
    await uow.session.exec(stmt.on_conflict_do_update(index_elements=[key], set_=update))


async def vehicle_registered(uow: UnitOfWork, event: VehicleRegistered) -> None:
    """A vehicle's registered tare, used when it leaves without weighing out."""
    await _upsert(uow, Vehicle.__table__, "vehicle_id", {  # type: ignore[attr-defined]
        "vehicle_id": event.vehicle_id, "plate": event.plate,
        "registered_tare_grams": event.registered_tare_grams,
    })


async def plant_registered(uow: UnitOfWork, event: PlantRegistered) -> None:
    """Which categories a plant accepts (dispatch and direct haul check it)."""
    await _upsert(uow, Plant.__table__, "plant_id", {  # type: ignore[attr-defined]
        "plant_id": event.plant_id, "name": event.name,
        "categories": [c.value for c in event.categories],
    })


async def batch_received(uow: UnitOfWork, event: BatchReceived, now: datetime) -> None:
    """A plant's weighbridge took a batch or a direct-haul trip: custody closed, alarms clear."""
    if await uow.session.get(Receipt, event.receipt_id) is None:
        uow.session.add(Receipt(
            receipt_id=event.receipt_id, plant_id=event.plant_id, batch_id=event.batch_id,
            trip_id=event.trip_id, category=event.category.value,
            received_grams=event.received_grams, refused_grams=event.refused_grams,
            received_at=event.received_at,
        ))
    if event.batch_id is not None:
        batch = await uow.session.get(Batch, event.batch_id, with_for_update=True)
        if batch is None:
            log.warning("transfer.unknown_batch_received", batch_id=event.batch_id)
            return
        if batch.received_at is None:
            batch.received_at = event.received_at
            batch.receipt_id = event.receipt_id
            batch.status = BatchStatus.RECEIVED.value
        if batch.not_received_alert_id is not None:
            await clear_alert(uow, batch.not_received_alert_id,
                              f"received at plant {event.plant_id} (receipt {event.receipt_id})",
                              now)
    if event.trip_id is not None:
        trip = await lock_trip(uow, event.trip_id)
        if trip.received_at is None:
            trip.received_at = event.received_at
            trip.received_plant_id = event.plant_id
        await custody_reached(uow, trip, f"received at plant {event.plant_id}", now)


async def trip_weighed_at_plant(uow: UnitOfWork, event: TripWeighed, now: datetime) -> None:
    """A direct-haul trip crossed a plant's weighbridge (treatment records the weighing)."""
    if event.site is not CustodySite.PLANT:
        return
    trip = await lock_trip(uow, event.trip_id)
    if trip.weighed_at is None:
        trip.weighed_site = CustodySite.PLANT.value
        trip.weighed_site_id = event.site_id
        trip.weighed_at = event.weighed_out_at or event.weighed_in_at
        trip.net_grams = event.net_grams
    await custody_reached(uow, trip, f"weighed at plant {event.site_id}", now)


async def refused_waste_redirected(uow: UnitOfWork, event: RefusedWasteRedirected,
                                   event_id: str) -> None:
    """Refused waste sent back to a station is in its custody (and inventory) again."""
    if event.destination_kind != "station":
        return
    if await uow.session.get(Station, event.destination_id) is None:
        log.warning("transfer.refused_waste_to_unknown_station",
                    station_id=event.destination_id, receipt_id=event.receipt_id)
        return
    receipt = await uow.session.get(Receipt, event.receipt_id)
    batch = None if event.batch_id is None else await uow.session.get(Batch, event.batch_id)
    category = receipt.category if receipt else batch.category if batch else None
    uow.session.add(RefusedReturn(
        event_id=event_id, station_id=event.destination_id, receipt_id=event.receipt_id,
        batch_id=event.batch_id, trip_id=event.trip_id, category=category, grams=event.grams,
        returned_at=event.redirected_at,
    ))
    if event.batch_id is None:
        # CONTRACT-GAP: RefusedWasteReturned requires batch_id, so waste refused from a
        # direct-haul trip is counted in the inventory but cannot be announced on Kafka.
        log.warning("transfer.refused_trip_return_not_published", trip_id=event.trip_id,
                    receipt_id=event.receipt_id)
        return
    await uow.record(event.batch_id, [RefusedWasteReturned(
        receipt_id=event.receipt_id, batch_id=event.batch_id, station_id=event.destination_id,
        grams=event.grams, returned_at=event.redirected_at,
    )], actor=SYSTEM_ACTOR)
