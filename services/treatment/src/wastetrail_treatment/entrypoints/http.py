"""The treatment HTTP API: thin — check the caller, run a handler, shape the answer.

Plant operators act for the plant their token's ``site_id`` names; admins register plants;
auditors read everything.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts.base import Id
from wastetrail_contracts.enums import AlertKind, Role
from wastetrail_contracts.fate import FateNode, leaves, treated_by_method, trip_fates
from wastetrail_runtime.alarms import alerts_query
from wastetrail_runtime.auth import Principal, require
from wastetrail_runtime.inputs import Day, Limit, Offset
from wastetrail_runtime.problems import Problem, not_found
from wastetrail_runtime.service import ServiceRuntime, runtime_of

from wastetrail_treatment import handlers
from wastetrail_treatment.adapters import facts
from wastetrail_treatment.adapters.tables import (
    Alert,
    Batch,
    Load,
    Plant,
    Receipt,
    Redirect,
    TreatmentRecord,
    Trip,
)
from wastetrail_treatment.commands import (
    ReceiveDelivery,
    RecordTreatment,
    RedirectRefused,
    RegisterPlant,
    UpdatePlant,
)
from wastetrail_treatment.entrypoints.certificate_page import certificate_document, render_html
from wastetrail_treatment.entrypoints.schemas import (
    AlertOut,
    BatchOut,
    DestinationOut,
    FateNodeOut,
    FateOut,
    IncomingBatchOut,
    IncomingOut,
    LoadOut,
    Page,
    PlantDayOut,
    PlantOut,
    ReceiptOut,
    RedirectOut,
    TreatmentOut,
    TripFatesOut,
    TripOut,
)
from wastetrail_treatment.settings import TreatmentSettings

router = APIRouter(prefix="/v1")

Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Operator = Annotated[Principal, Depends(require(Role.PLANT_OPERATOR))]
Reader = Annotated[Principal, Depends(require(Role.PLANT_OPERATOR, Role.AUDITOR))]
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR))]
PlantId = Annotated[Id, Path(description="the plant's id")]
ReceiptIdPath = Annotated[Id, Path(description="the receipt's id")]


def _site(principal: Principal) -> str | None:
    """The plant a caller is bound to: plant operators only ("" matches no plant)."""
    return (principal.site_id or "") if principal.role is Role.PLANT_OPERATOR else None


def _settings(rt: ServiceRuntime) -> TreatmentSettings:
    settings = rt.settings
    return settings if isinstance(settings, TreatmentSettings) else TreatmentSettings()


async def _page(session: AsyncSession, query: Any, limit: int,
                offset: int) -> tuple[list[Any], int]:
    total = (await session.exec(
        select(func.count()).select_from(query.order_by(None).subquery())
    )).one()
    rows = list((await session.exec(query.limit(limit).offset(offset))).all())
    return rows, int(total)


# --- plants ---------------------------------------------------------------------------


@router.post("/plants", status_code=201, response_model=PlantOut, tags=["plants"])
async def register_plant(cmd: RegisterPlant, request: Request, principal: Admin) -> PlantOut:
    """Register a plant: permitted methods, accepted categories, daily capacity."""
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        plant = await handlers.register_plant(uow, cmd, principal.actor(), rt.clock.now())
        await handlers.commit(uow)
    return PlantOut.of(plant)


@router.put("/plants/{plant_id}", response_model=PlantOut, tags=["plants"])
async def update_plant(plant_id: PlantId, cmd: UpdatePlant, request: Request,
                       principal: Admin) -> PlantOut:
    """Change a plant's permitted methods, categories or capacity."""
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        plant = await handlers.update_plant(uow, plant_id, cmd, principal.actor(),
                                            rt.clock.now())
        await handlers.commit(uow)
    return PlantOut.of(plant)


@router.get("/plants", response_model=Page[PlantOut], tags=["plants"])
async def list_plants(request: Request, principal: Reader, limit: Limit = 100,
                      offset: Offset = 0) -> Page[PlantOut]:
    """Every registered plant."""
    async with runtime_of(request).db.session() as session:
        rows, total = await _page(session, select(Plant).order_by(col(Plant.plant_id)),
                                  limit, offset)
    return Page[PlantOut](items=[PlantOut.of(p) for p in rows], total=total, limit=limit,
                          offset=offset)


async def _plant(session: AsyncSession, plant_id: str) -> Plant:
    plant = await session.get(Plant, plant_id)
    if plant is None:
        raise not_found("plant", plant_id, field="plant_id")
    return plant


@router.get("/plants/{plant_id}", response_model=PlantOut, tags=["plants"])
async def get_plant(plant_id: PlantId, request: Request, principal: Reader) -> PlantOut:
    """One plant."""
    async with runtime_of(request).db.session() as session:
        return PlantOut.of(await _plant(session, plant_id))


@router.get("/plants/{plant_id}/days/{day}", response_model=PlantDayOut, tags=["plants"])
async def plant_day(plant_id: PlantId, day: Day, request: Request,
                    principal: Reader) -> PlantDayOut:
    """What the plant received on one operating day (UTC+7) against its daily capacity."""
    handlers.check_site(_site(principal), plant_id)
    async with runtime_of(request).db.session() as session:
        plant = await _plant(session, plant_id)
        grams, count = (await session.exec(
            select(func.coalesce(func.sum(col(Receipt.received_grams)), 0), func.count())
            .where(col(Receipt.plant_id) == plant_id, col(Receipt.plant_day) == day)
        )).one()
    return PlantDayOut(plant_id=plant_id, day=day, received_grams=int(grams), receipts=count,
                       daily_capacity_grams=plant.daily_capacity_grams,
                       over_capacity=int(grams) > plant.daily_capacity_grams)


@router.get("/plants/{plant_id}/incoming", response_model=IncomingOut, tags=["receipts"])
async def incoming(plant_id: PlantId, request: Request, principal: Reader) -> IncomingOut:
    """Batches dispatched to the plant and refused waste redirected to it, not yet received."""
    handlers.check_site(_site(principal), plant_id)
    received = select(col(Receipt.batch_id)).where(col(Receipt.batch_id).is_not(None),
                                              col(Receipt.redirect_id).is_(None))
    async with runtime_of(request).db.session() as session:
        await _plant(session, plant_id)
        batches = (await session.exec(
            select(Batch).where(col(Batch.plant_id) == plant_id,
                                col(Batch.batch_id).not_in(received))
            .order_by(col(Batch.dispatched_at), col(Batch.batch_id)).limit(500)
        )).all()
        redirects = (await session.exec(
            select(Redirect).where(col(Redirect.destination_kind) == "plant",
                                   col(Redirect.destination_id) == plant_id,
                                   col(Redirect.received_receipt_id).is_(None))
            .order_by(col(Redirect.redirected_at)).limit(500)
        )).all()
        return IncomingOut(plant_id=plant_id,
                           batches=[IncomingBatchOut.model_validate(b) for b in batches],
                           redirects=[RedirectOut.model_validate(x) for x in redirects])


# --- receipts, custody of the refused part, treatment ---------------------------------


@router.post("/plants/{plant_id}/receipts", status_code=201, response_model=ReceiptOut,
             tags=["receipts"])
async def receive(plant_id: PlantId, cmd: ReceiveDelivery, request: Request,
                  principal: Operator) -> ReceiptOut:
    """Weighbridge receipt of a dispatched batch, a direct-haul trip or a redirected part.

    The decision (ACCEPTED / PARTIALLY_REFUSED / REFUSED) must satisfy received = accepted +
    refused. A measured weight far from the declared one raises a RECEIPT_DISCREPANCY alert
    and a receipt beyond the plant's daily capacity a PLANT_OVER_CAPACITY alert; both are
    still accepted (``discrepancy`` / ``over_capacity`` in the answer).
    """
    handlers.check_site(_site(principal), plant_id)
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        receipt = await handlers.receive(
            uow, plant_id, cmd, principal.actor(), rt.clock.now(),
            tolerance_percent=_settings(rt).receipt_discrepancy_percent)
        await handlers.commit(uow)
    return ReceiptOut.of(receipt)


@router.get("/plants/{plant_id}/receipts", response_model=Page[ReceiptOut], tags=["receipts"])
async def list_receipts(plant_id: PlantId, request: Request, principal: Reader,
                        day: Day | None = None, limit: Limit = 100,
                        offset: Offset = 0) -> Page[ReceiptOut]:
    """The plant's receipts, newest first; ``day`` limits them to one operating day."""
    handlers.check_site(_site(principal), plant_id)
    query = select(Receipt).where(col(Receipt.plant_id) == plant_id)
    if day is not None:
        query = query.where(col(Receipt.plant_day) == day)
    query = query.order_by(col(Receipt.received_at).desc(), col(Receipt.receipt_id))
    async with runtime_of(request).db.session() as session:
        rows, total = await _page(session, query, limit, offset)
    return Page[ReceiptOut](items=[ReceiptOut.of(r) for r in rows], total=total, limit=limit,
                            offset=offset)


@router.get("/receipts/{receipt_id}", response_model=ReceiptOut, tags=["receipts"])
async def get_receipt(receipt_id: ReceiptIdPath, request: Request,
                      principal: Reader) -> ReceiptOut:
    """One receipt with its treatment records and redirects."""
    async with runtime_of(request).db.session() as session:
        receipt = await session.get(Receipt, receipt_id)
        if receipt is None:
            raise not_found("receipt", receipt_id, field="receipt_id")
        handlers.check_site(_site(principal), receipt.plant_id)
        treatments = list((await session.exec(
            select(TreatmentRecord).where(col(TreatmentRecord.receipt_id) == receipt_id)
            .order_by(col(TreatmentRecord.treated_at)))).all())
        redirects = list((await session.exec(
            select(Redirect).where(col(Redirect.receipt_id) == receipt_id)
            .order_by(col(Redirect.redirected_at)))).all())
    return ReceiptOut.of(receipt, treatments, redirects)


@router.post("/receipts/{receipt_id}/redirects", status_code=201, response_model=RedirectOut,
             tags=["receipts"])
async def redirect_refused(receipt_id: ReceiptIdPath, cmd: RedirectRefused, request: Request,
                           principal: Operator) -> RedirectOut:
    """Send refused waste back to a station or on to another plant; it stays in custody.

    Another plant receives it by posting a receipt with this ``redirect_id``.
    """
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        redirect = await handlers.redirect_refused(uow, receipt_id, cmd, principal.actor(),
                                                   rt.clock.now(), site=_site(principal))
        await handlers.commit(uow)
    return RedirectOut.model_validate(redirect)


@router.post("/receipts/{receipt_id}/treatments", status_code=201, response_model=TreatmentOut,
             tags=["receipts"])
async def record_treatment(receipt_id: ReceiptIdPath, cmd: RecordTreatment, request: Request,
                           principal: Operator) -> TreatmentOut:
    """Grams per method (only methods the plant is permitted) and outputs.

    Over all records of a receipt, the treated total never exceeds the accepted grams: a
    record that would is refused with a 422 problem naming ``methods``.
    """
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        record = await handlers.record_treatment(uow, receipt_id, cmd, principal.actor(),
                                                 rt.clock.now(), site=_site(principal))
        await handlers.commit(uow)
    return TreatmentOut.model_validate(record)


# --- certificates ---------------------------------------------------------------------


async def _certificate_doc(request: Request, principal: Principal,
                           kind: Literal["batch", "trip"], subject_id: str) -> dict[str, Any]:
    async with runtime_of(request).db.session() as session:
        cert = await facts.certificate(session, kind, subject_id)
    if cert is None:
        raise Problem(404, "certificate-not-available", "No certificate",
                      f"no plant has received {kind} {subject_id!r} yet", field=f"{kind}_id")
    site = _site(principal)
    if site is not None and all(r.plant_id != site for r in cert.receipts):
        raise Problem(403, "forbidden-plant", "Forbidden",
                      f"{kind} {subject_id!r} was not received at plant {site!r}")
    return certificate_document(cert)


@router.get("/batches/{batch_id}/certificate", tags=["certificates"])
async def batch_certificate(batch_id: Id, request: Request, principal: Reader) -> dict[str, Any]:
    """The certificate of treatment of a batch, as JSON with its SHA-256 digest."""
    return await _certificate_doc(request, principal, "batch", batch_id)


@router.get("/batches/{batch_id}/certificate.html", response_class=HTMLResponse,
            tags=["certificates"])
async def batch_certificate_html(batch_id: Id, request: Request, principal: Reader) -> Response:
    """The same certificate as a printable page (Vietnamese and English)."""
    return HTMLResponse(render_html(await _certificate_doc(request, principal, "batch",
                                                           batch_id)))


@router.get("/trips/{trip_id}/certificate", tags=["certificates"])
async def trip_certificate(trip_id: Id, request: Request, principal: Reader) -> dict[str, Any]:
    """The certificate of treatment of a direct-haul trip, as JSON."""
    return await _certificate_doc(request, principal, "trip", trip_id)


@router.get("/trips/{trip_id}/certificate.html", response_class=HTMLResponse,
            tags=["certificates"])
async def trip_certificate_html(trip_id: Id, request: Request, principal: Reader) -> Response:
    """The certificate of a direct-haul trip as a printable page."""
    return HTMLResponse(render_html(await _certificate_doc(request, principal, "trip",
                                                           trip_id)))


# --- the fate of a load ---------------------------------------------------------------


@router.get("/loads/{load_id}/fate", response_model=FateOut, tags=["fate"])
async def fate_of_load(load_id: Id, request: Request, principal: Auditor) -> FateOut:
    """Where a load went: trip, batches of its category, plants, grams per treatment method.

    The load's share of every quantity measured downstream of its trip's share of its
    category, rounded with the largest-remainder method (the rule: wastetrail_contracts.fate).
    """
    async with runtime_of(request).db.session() as session:
        load = await session.get(Load, load_id)
        if load is None:
            raise not_found("load", load_id, field="load_id")
        trip = await session.get(Trip, load.trip_id) or Trip(trip_id=load.trip_id)
        trip_facts = await facts.trip_facts(session, trip)
        batches = [await session.get(Batch, b.batch_id) for b in trip_facts.batches
                   if b.category == load.category]
    return _fate_out(load, trip, [b for b in batches if b is not None],
                     trip_fates(trip_facts)[load_id])


@router.get("/trips/{trip_id}/fates", response_model=TripFatesOut, tags=["fate"])
async def fates_of_trip(trip_id: Id, request: Request, principal: Auditor) -> TripFatesOut:
    """The fate of every known load of a trip, computed once for the whole trip."""
    async with runtime_of(request).db.session() as session:
        trip = await session.get(Trip, trip_id)
        if trip is None:
            raise not_found("trip", trip_id, field="trip_id")
        loads = (await session.exec(
            select(Load).where(col(Load.trip_id) == trip_id).order_by(col(Load.load_id))
        )).all()
        trip_facts = await facts.trip_facts(session, trip)
        rows = {b.batch_id: await session.get(Batch, b.batch_id) for b in trip_facts.batches}
    trees = trip_fates(trip_facts)
    return TripFatesOut(trip=TripOut.model_validate(trip), loads=[
        _fate_out(load, trip, [r for r in rows.values()
                               if r is not None and r.category == load.category],
                  trees[load.load_id])
        for load in loads])


def _fate_out(load: Load, trip: Trip, batches: list[Batch], tree: FateNode) -> FateOut:
    return FateOut(
        load=LoadOut.model_validate(load), trip=TripOut.model_validate(trip),
        batches=[BatchOut.model_validate(b) for b in batches],
        grams=tree.grams,
        treated_by_method={m.value: g for m, g in treated_by_method(tree).items()},
        destinations=[DestinationOut(kind=n.kind, grams=n.grams, ref=n.ref, site_id=n.site_id,
                                     at=n.at) for n in leaves(tree)],
        tree=FateNodeOut.of(tree),
    )


__all__ = ["router"]


# --- alerts -------------------------------------------------------------------------------


@router.get("/alerts", response_model=Page[AlertOut], tags=["alerts"])
async def list_alerts(
    request: Request, principal: Reader, open_only: bool = True,
    kind: AlertKind | None = None, subject_id: Annotated[Id | None, Query()] = None,
    plant_id: Annotated[Id | None, Query()] = None, limit: Limit = 100, offset: Offset = 0,
) -> Page[AlertOut]:
    """Custody alarms raised by this service, newest first (open ones by default).

    A plant operator sees the alarms of their own plant only.
    """
    site = _site(principal)
    if site is not None:
        handlers.check_site(site, plant_id or site)
        plant_id = site
    query = alerts_query(Alert, open_only=open_only, kind=kind.value if kind else None,
                         subject_id=subject_id, plant_id=plant_id)
    async with runtime_of(request).db.session() as session:
        rows, total = await _page(session, query, limit, offset)
    return Page[AlertOut](items=[AlertOut.model_validate(a) for a in rows], total=total,
                          limit=limit, offset=offset)
