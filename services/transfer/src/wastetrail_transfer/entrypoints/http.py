"""The HTTP API of the transfer service: thin — translate, call a handler, answer.

Station operators act on their own station (the token's ``site_id``); admins register
stations and may do anything; auditors may read everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlmodel import col, select
from wastetrail_contracts.enums import AlertKind, Role
from wastetrail_runtime.auth import Principal, require
from wastetrail_runtime.inputs import Limit, Offset
from wastetrail_runtime.problems import Problem, not_found
from wastetrail_runtime.service import ServiceRuntime, runtime_of

from wastetrail_transfer.adapters.tables import Alert, Batch, Station, Trip
from wastetrail_transfer.domain.batch import BatchStatus
from wastetrail_transfer.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    Missing,
)
from wastetrail_transfer.entrypoints.schemas import (
    ID_PATTERN,
    AllocationIn,
    BatchIn,
    ClearAlertIn,
    DirectHaulIn,
    DispatchIn,
    Page,
    SealIn,
    StationIn,
    WeighInIn,
    WeighOutIn,
)
from wastetrail_transfer.handlers import batches as batch_handlers
from wastetrail_transfer.handlers import stations as station_handlers
from wastetrail_transfer.handlers import views
from wastetrail_transfer.handlers import weighing as weighing_handlers
from wastetrail_transfer.handlers.common import clear_alert
from wastetrail_transfer.settings import TransferSettings, transfer_settings

router = APIRouter(prefix="/v1", tags=["transfer"])

PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=80)]
Operator = Annotated[Principal, Depends(require(Role.STATION_OPERATOR))]
Reader = Annotated[Principal, Depends(require(Role.STATION_OPERATOR, Role.AUDITOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]

_STATUS = {Invalid: (422, "Invalid input"), Conflict: (409, "Conflict"),
           Missing: (404, "Not found"), Forbidden: (403, "Forbidden")}


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a broken rule into an RFC 9457 problem naming the field."""
    try:
        yield
    except DomainError as err:
        status, title = next((v for k, v in _STATUS.items() if isinstance(err, k)),
                             (422, "Invalid input"))
        raise Problem(status, err.code, title, err.detail, field=err.field,
                      extra=dict(err.extra)) from err


def settings_of(rt: ServiceRuntime) -> TransferSettings:
    """The transfer settings of the running service."""
    return transfer_settings(rt.settings)


def _station_of(principal: Principal) -> str | None:
    """The station a station operator's token is for (None for an admin)."""
    if principal.role is not Role.STATION_OPERATOR:
        return None
    if not principal.site_id:
        raise Problem(403, "forbidden", "Forbidden", "this token names no station",
                      field="site_id")
    return principal.site_id


def own_station(principal: Principal, station_id: str) -> None:
    """A station operator acts on and reads the station of its token only."""
    if principal.role is Role.STATION_OPERATOR and principal.site_id != station_id:
        raise Problem(403, "forbidden", "Forbidden",
                      f"this token is for station {principal.site_id!r}, not {station_id!r}",
                      field="station_id")


# --- stations -----------------------------------------------------------------------------

@router.post("/stations", status_code=201, response_model=views.StationView)
async def register_station(body: StationIn, request: Request, principal: Admin
                           ) -> views.StationView:
    """Register a transfer station with its capacity and accepted categories."""
    rt = runtime_of(request)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            station = await station_handlers.register_station(
                uow, station_id=body.station_id, name=body.name, commune=body.commune,
                capacity_grams=body.capacity_grams, categories=body.categories,
                actor=principal.actor(), now=rt.clock.now())
            await uow.commit()
    return views.station_view(station)


@router.get("/stations", response_model=Page[views.StationView])
async def list_stations(request: Request, principal: Reader, limit: Limit = 100,
                        offset: Offset = 0) -> Page[views.StationView]:
    """Every registered station."""
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(
            select(Station).order_by(col(Station.station_id)).limit(limit).offset(offset)
        )).all()
    return Page(items=[views.station_view(s) for s in rows], limit=limit, offset=offset)


async def _station(request: Request, station_id: str) -> Station:
    async with runtime_of(request).db.session() as session:
        station = await session.get(Station, station_id)
    if station is None:
        raise not_found("station", station_id, field="station_id")
    return station


@router.get("/stations/{station_id}", response_model=views.StationView)
async def get_station(station_id: PathId, request: Request, principal: Reader
                      ) -> views.StationView:
    """One station."""
    own_station(principal, station_id)
    return views.station_view(await _station(request, station_id))


@router.get("/stations/{station_id}/inventory", response_model=views.InventoryView)
async def get_inventory(station_id: PathId, request: Request, principal: Reader
                        ) -> views.InventoryView:
    """What the station holds by category: arrived − dispatched + refused waste returned."""
    own_station(principal, station_id)
    station = await _station(request, station_id)
    async with runtime_of(request).db.session() as session:
        return await views.inventory(session, station)


# --- weighing -----------------------------------------------------------------------------

async def _trip_view(rt: ServiceRuntime, trip_id: str, reader: Principal | None = None
                     ) -> views.ReconciliationView:
    async with rt.db.session() as session:
        trip = await session.get(Trip, trip_id)
        if trip is None:
            raise not_found("trip", trip_id, field="trip_id")
        holder = trip.station_id or trip.direct_haul_station_id
        if reader is not None and holder is not None:
            own_station(reader, holder)  # another station's trip is not an operator's to read
        return await views.reconciliation(session, trip)


@router.post("/stations/{station_id}/weighings", status_code=201,
             response_model=views.ReconciliationView)
async def weigh_in(station_id: PathId, body: WeighInIn, request: Request, principal: Operator
                   ) -> views.ReconciliationView:
    """A loaded vehicle crossed the bridge: gross weight, custody is at the station."""
    own_station(principal, station_id)
    rt = runtime_of(request)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            await weighing_handlers.weigh_in(
                uow, station_id=station_id, trip_id=body.trip_id, vehicle_id=body.vehicle_id,
                gross_grams=body.gross_grams, now=rt.clock.now())
            await uow.commit()
    return await _trip_view(rt, body.trip_id)


@router.post("/stations/{station_id}/weighings/{trip_id}/out",
             response_model=views.ReconciliationView)
async def weigh_out(station_id: PathId, trip_id: PathId, body: WeighOutIn, request: Request,
                    principal: Operator) -> views.ReconciliationView:
    """The empty vehicle crossed the bridge (tare), or left without (registered tare)."""
    own_station(principal, station_id)
    rt = runtime_of(request)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            await weighing_handlers.weigh_out(
                uow, station_id=station_id, trip_id=trip_id, tare_grams=body.tare_grams,
                tolerance=settings_of(rt).tolerance(), actor=principal.actor(),
                now=rt.clock.now())
            await uow.commit()
    return await _trip_view(rt, trip_id)


@router.post("/trips/{trip_id}/direct-haul", response_model=views.ReconciliationView)
async def direct_haul(trip_id: PathId, body: DirectHaulIn, request: Request,
                      principal: Operator) -> views.ReconciliationView:
    """The trip skips the stations; the plant's receipt closes its custody."""
    rt = runtime_of(request)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            await weighing_handlers.mark_direct_haul(
                uow, trip_id=trip_id, plant_id=body.plant_id, station_id=_station_of(principal),
                actor=principal.actor(), now=rt.clock.now())
            await uow.commit()
    return await _trip_view(rt, trip_id)


@router.get("/trips/{trip_id}/reconciliation", response_model=views.ReconciliationView)
async def get_reconciliation(trip_id: PathId, request: Request, principal: Reader
                             ) -> views.ReconciliationView:
    """A trip's weighing against its scanned loads."""
    return await _trip_view(runtime_of(request), trip_id, principal)


# --- batches ------------------------------------------------------------------------------

async def _batch_view(rt: ServiceRuntime, batch: Batch) -> views.BatchView:
    async with rt.db.session() as session:
        return await views.batch_view(session, batch)


async def _batch_station(rt: ServiceRuntime, batch_id: str, principal: Principal) -> None:
    async with rt.db.session() as session:
        batch = await session.get(Batch, batch_id)
    if batch is None:
        raise not_found("batch", batch_id, field="batch_id")
    own_station(principal, batch.station_id)


@router.post("/stations/{station_id}/batches", status_code=201, response_model=views.BatchView)
async def open_batch(station_id: PathId, body: BatchIn, request: Request, principal: Operator
                     ) -> views.BatchView:
    """Open an empty batch (container) for one category."""
    own_station(principal, station_id)
    rt = runtime_of(request)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            batch = await batch_handlers.open_batch(uow, station_id=station_id,
                                                    category=body.category, now=rt.clock.now())
            await uow.commit()
    return await _batch_view(rt, batch)


@router.get("/stations/{station_id}/batches", response_model=Page[views.BatchView])
async def list_batches(
    station_id: PathId, request: Request, principal: Reader,
    status: Annotated[list[BatchStatus] | None, Query()] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> Page[views.BatchView]:
    """A station's batches; open ones unless ``status`` says otherwise (repeatable)."""
    own_station(principal, station_id)
    async with runtime_of(request).db.session() as session:
        items = await views.batches(session, station_id, status or [BatchStatus.OPEN],
                                    limit, offset)
    return Page(items=items, limit=limit, offset=offset)


@router.get("/batches/{batch_id}", response_model=views.BatchView)
async def get_batch(batch_id: PathId, request: Request, principal: Reader) -> views.BatchView:
    """One batch with its allocations."""
    rt = runtime_of(request)
    await _batch_station(rt, batch_id, principal)
    async with rt.db.session() as session:
        batch = await session.get(Batch, batch_id)
        assert batch is not None  # checked above; batches are never deleted
        return await views.batch_view(session, batch)


async def _allocation_view(rt: ServiceRuntime, result: batch_handlers.AllocationResult
                           ) -> views.AllocationResultView:
    share = result.trip_share
    return views.AllocationResultView(
        batch=await _batch_view(rt, result.batch),
        trip=views.TripBalanceView(trip_id=result.trip_id, category=share.category,
                                   net_grams=share.grams, allocated_grams=share.allocated_grams,
                                   remaining_grams=share.remaining_grams))


@router.post("/batches/{batch_id}/allocations", response_model=views.AllocationResultView)
async def allocate(batch_id: PathId, body: AllocationIn, request: Request, principal: Operator
                   ) -> views.AllocationResultView:
    """Put a trip, or ``grams`` of it, into an open batch; never beyond the trip's net."""
    rt = runtime_of(request)
    await _batch_station(rt, batch_id, principal)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            result = await batch_handlers.allocate(uow, batch_id=batch_id, trip_id=body.trip_id,
                                                   grams=body.grams)
            await uow.commit()
    return await _allocation_view(rt, result)


@router.delete("/batches/{batch_id}/allocations/{trip_id}",
               response_model=views.AllocationResultView)
async def release(batch_id: PathId, trip_id: PathId, request: Request, principal: Operator
                  ) -> views.AllocationResultView:
    """Take a trip back out of an open batch."""
    rt = runtime_of(request)
    await _batch_station(rt, batch_id, principal)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            result = await batch_handlers.release(uow, batch_id=batch_id, trip_id=trip_id)
            await uow.commit()
    return await _allocation_view(rt, result)


@router.post("/batches/{batch_id}/seal", response_model=views.BatchView)
async def seal(batch_id: PathId, body: SealIn, request: Request, principal: Operator
               ) -> views.BatchView:
    """Seal the container; its allocations are final (``BatchConsolidated``)."""
    rt = runtime_of(request)
    await _batch_station(rt, batch_id, principal)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            batch = await batch_handlers.seal(uow, batch_id=batch_id,
                                              seal_number=body.seal_number,
                                              actor=principal.actor(), now=rt.clock.now())
            await uow.commit()
    return await _batch_view(rt, batch)


@router.post("/batches/{batch_id}/dispatch", response_model=views.BatchView)
async def dispatch(batch_id: PathId, body: DispatchIn, request: Request, principal: Operator
                   ) -> views.BatchView:
    """Send a sealed batch to a plant that accepts its category (``BatchDispatched``)."""
    rt = runtime_of(request)
    await _batch_station(rt, batch_id, principal)
    with domain_errors():
        async with rt.store.unit_of_work() as uow:
            batch = await batch_handlers.dispatch(
                uow, batch_id=batch_id, plant_id=body.plant_id, vehicle_id=body.vehicle_id,
                dispatched_grams=body.dispatched_grams, actor=principal.actor(),
                now=rt.clock.now())
            await uow.commit()
    return await _batch_view(rt, batch)


# --- alerts -------------------------------------------------------------------------------

@router.get("/alerts", response_model=Page[views.AlertView])
async def list_alerts(
    request: Request, principal: Reader, open_only: bool = True,
    kind: AlertKind | None = None, subject_id: Annotated[str | None, Query(max_length=80)] = None,
    station_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> Page[views.AlertView]:
    """Custody alerts raised by this service, newest first (open ones by default)."""
    async with runtime_of(request).db.session() as session:
        items = await views.alerts(session, open_only=open_only,
                                   kind=kind.value if kind else None, station_id=station_id,
                                   subject_id=subject_id, limit=limit, offset=offset)
    return Page(items=items, limit=limit, offset=offset)


@router.post("/alerts/{alert_id}/clear", response_model=views.AlertView)
async def clear(alert_id: PathId, body: ClearAlertIn, request: Request, principal: Operator
                ) -> views.AlertView:
    """Close a weight-mismatch alert after investigating it (admins may close any alert).

    Time-based alarms close themselves when the trip or batch turns up; only an admin
    may close one by hand.
    """
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        alert = await uow.session.get(Alert, alert_id)
        if alert is None:
            raise not_found("alert", alert_id, field="alert_id")
        if principal.role is not Role.ADMIN:
            if alert.kind != AlertKind.TRIP_WEIGHT_MISMATCH.value or alert.station_id is None:
                raise Problem(403, "forbidden", "Forbidden",
                              "only an admin may clear this kind of alert", field="alert_id")
            own_station(principal, alert.station_id)
        if not await clear_alert(uow, alert_id, body.resolution, rt.clock.now()):
            raise Problem(409, "alert-cleared", "Conflict", f"alert {alert_id!r} is already "
                          "cleared", field="alert_id")
        await uow.commit()
        return views.alert_view(alert)
