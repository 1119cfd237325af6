"""Admin endpoints of the registries, and their reads."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError
from sqlmodel import col, select
from wastetrail_contracts.events.collection import (
    CollectionPointRegistered,
    CollectorRegistered,
    DeviceRegistered,
    GeneratorRegistered,
    VehicleRegistered,
)
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.inputs import Limit, Offset
from wastetrail_runtime.problems import Problem, not_found, unprocessable
from wastetrail_runtime.service import runtime_of

from wastetrail_collection.adapters.tables import (
    CollectionPoint,
    Collector,
    CollectorCommune,
    Device,
    Generator,
    Vehicle,
)
from wastetrail_collection.domain.generators import CsvFileError
from wastetrail_collection.domain.ids import generator_id_for
from wastetrail_collection.entrypoints.guards import ADMIN, READER
from wastetrail_collection.entrypoints.schemas import (
    CollectionPointIn,
    CollectorIn,
    DeviceIn,
    GeneratorIn,
    GeneratorOut,
    GeneratorStatusIn,
    ImportOut,
    RegisteredOut,
    RowErrorOut,
    VehicleIn,
)
from wastetrail_collection.entrypoints.scope import scope_of
from wastetrail_collection.handlers import registries
from wastetrail_collection.handlers.common import settings_of
from wastetrail_collection.handlers.registries import Change
from wastetrail_collection.views import tags_of

router = APIRouter(prefix="/v1", tags=["registries"])
Admin = Annotated[Principal, Depends(ADMIN)]
Reader = Annotated[Principal, Depends(READER)]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def _registered(ident: str, outcome: Change, response: Response) -> RegisteredOut:
    response.status_code = 201 if outcome == "created" else 200
    return RegisteredOut(id=ident, outcome=outcome)


@router.post("/generators", response_model=RegisteredOut, status_code=201)
async def register_generator(
    body: GeneratorIn, request: Request, response: Response, principal: Admin
) -> RegisteredOut:
    """Register a generator, or update the one with this code (its id is derived from it)."""
    code = _nfc(body.code)
    try:
        event = GeneratorRegistered(
            generator_id=generator_id_for(code), code=code, kind=body.kind, name=_nfc(body.name),
            commune=body.commune, commune_class=body.commune_class,
            customer_class=body.customer_class or (
                "organisation" if body.kind == "organisation" else "household"),
            address=_nfc(body.address), members=body.members,
            tag_ids=tuple(_nfc(t) for t in body.tag_ids), active=body.active)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"])
        field = next((f for f in ("customer_class", "tag_ids") if f in message), "body")
        raise unprocessable("invalid", message, field) from exc
    report = await registries.register_generator(runtime_of(request), principal, event)
    outcome: Change = (
        "created" if report.created else "updated" if report.updated else "unchanged")
    return _registered(event.generator_id, outcome, response)


@router.post(
    "/generators/import", response_model=ImportOut,
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
        "type": "string",
        "description": "UTF-8 CSV; header: code,kind,name,commune,commune_class,"
                       "customer_class,address,members,tag_ids,active (tags separated by ';' "
                       "or '|')"}}}}},
)
async def import_generators(request: Request, principal: Admin) -> ImportOut:
    """Bulk import from CSV: good rows are kept, every bad row is reported with its line."""
    rt = runtime_of(request)
    settings = settings_of(rt)
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > settings.max_import_bytes:
            raise Problem(413, "import-too-large", "Payload too large",
                          f"the file exceeds {settings.max_import_bytes} bytes; split it",
                          field="file")
    try:
        report = await registries.import_generators(rt, principal, bytes(data),
                                                    max_rows=settings.max_import_rows)
    except CsvFileError as exc:
        raise Problem(422, "invalid-csv", "Invalid CSV", f"line {exc.line}: {exc.reason}",
                      field=exc.field, extra={"line": exc.line}) from exc
    return ImportOut(created=report.created, updated=report.updated, unchanged=report.unchanged,
                     rejected=len(report.errors),
                     errors=[RowErrorOut(line=e.line, field=e.field, reason=e.reason,
                                         code=e.code) for e in report.errors])


def _generator_out(row: Generator, tags: list[str]) -> GeneratorOut:
    return GeneratorOut(**row.model_dump(exclude={"updated_at"}), tag_ids=tags)


@router.get("/generators", response_model=list[GeneratorOut])
async def list_generators(
    request: Request, principal: Reader, commune: str | None = None,
    active: bool | None = None, limit: Limit = 100, offset: Offset = 0,
) -> list[GeneratorOut]:
    """Generators with their tags (a device caches them to scan offline), by code; a
    collector's device sees those of the communes its collector serves."""
    stmt = select(Generator)
    if commune is not None:
        stmt = stmt.where(col(Generator.commune) == commune)
    if active is not None:
        stmt = stmt.where(col(Generator.active) == active)
    async with runtime_of(request).db.session() as session:
        scope = await scope_of(session, principal)
        if scope.collector_id is not None:
            if commune is not None:
                scope.require_commune(commune, "commune")
            stmt = stmt.where(col(Generator.commune).in_(sorted(scope.communes)))
        rows = (await session.exec(
            stmt.order_by(col(Generator.code)).limit(limit).offset(offset))).all()
        tags = await tags_of(session, [r.generator_id for r in rows])
    return [_generator_out(r, tags[r.generator_id]) for r in rows]


@router.get("/generators/{generator_id}", response_model=GeneratorOut)
async def get_generator(generator_id: str, request: Request, principal: Reader) -> GeneratorOut:
    """One generator with its tags."""
    async with runtime_of(request).db.session() as session:
        row = await session.get(Generator, generator_id)
        if row is None:
            raise not_found("generator", generator_id, field="generator_id")
        (await scope_of(session, principal)).require_commune(row.commune, "generator_id")
        tags = await tags_of(session, [generator_id])
    return _generator_out(row, tags[generator_id])


@router.post("/generators/{generator_id}/status", response_model=GeneratorOut)
async def change_generator_status(
    generator_id: str, body: GeneratorStatusIn, request: Request, principal: Admin
) -> GeneratorOut:
    """Deactivate or reactivate a generator (its tags are then refused or accepted)."""
    rt = runtime_of(request)
    row = await registries.change_generator_status(rt, principal, generator_id, body.active,
                                                   body.reason)
    async with rt.db.session() as session:
        tags = await tags_of(session, [generator_id])
    return _generator_out(row, tags[generator_id])


@router.post("/collectors", response_model=RegisteredOut, status_code=201)
async def register_collector(
    body: CollectorIn, request: Request, response: Response, principal: Admin
) -> RegisteredOut:
    """Register or rename a collection company."""
    event = CollectorRegistered(collector_id=body.collector_id, name=_nfc(body.name),
                                communes=tuple(sorted(set(body.communes))))
    outcome = await registries.register_collector(runtime_of(request), principal, event)
    return _registered(body.collector_id, outcome, response)


@router.post("/vehicles", response_model=RegisteredOut, status_code=201)
async def register_vehicle(
    body: VehicleIn, request: Request, response: Response, principal: Admin
) -> RegisteredOut:
    """Register or update a vehicle (plate, capacity, registered tare)."""
    try:
        event = VehicleRegistered(**body.model_dump())
    except ValidationError as exc:
        raise unprocessable("invalid", str(exc.errors()[0]["msg"]), "capacity_grams") from exc
    outcome = await registries.register_vehicle(runtime_of(request), principal, event)
    return _registered(body.vehicle_id, outcome, response)


@router.post("/devices", response_model=RegisteredOut, status_code=201)
async def register_device(
    body: DeviceIn, request: Request, response: Response, principal: Admin
) -> RegisteredOut:
    """Register a device of a collector (its tokens carry this device_id)."""
    event = DeviceRegistered(device_id=body.device_id, collector_id=body.collector_id)
    outcome = await registries.register_device(runtime_of(request), principal, event,
                                               body.vehicle_id, body.active)
    return _registered(body.device_id, outcome, response)


@router.post("/collection-points", response_model=RegisteredOut, status_code=201)
async def register_collection_point(
    body: CollectionPointIn, request: Request, response: Response, principal: Admin
) -> RegisteredOut:
    """Register or update a collection point."""
    event = CollectionPointRegistered(**{**body.model_dump(), "name": _nfc(body.name)})
    outcome = await registries.register_collection_point(runtime_of(request), principal, event)
    return _registered(body.point_id, outcome, response)


@router.get("/collectors", response_model=list[CollectorIn])
async def list_collectors(
    request: Request, principal: Reader, limit: Limit = 100, offset: Offset = 0
) -> list[CollectorIn]:
    """Collection companies, by id, with the communes they serve."""
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(select(Collector).order_by(col(Collector.collector_id))
                                   .limit(limit).offset(offset))).all()
        served: dict[str, list[str]] = {r.collector_id: [] for r in rows}
        for link in (await session.exec(select(CollectorCommune).where(
                col(CollectorCommune.collector_id).in_(list(served))).order_by(
                col(CollectorCommune.commune)))).all():
            served[link.collector_id].append(link.commune)
    return [CollectorIn(**r.model_dump(), communes=served[r.collector_id]) for r in rows]


@router.get("/vehicles", response_model=list[VehicleIn])
async def list_vehicles(
    request: Request, principal: Reader, collector_id: str | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[VehicleIn]:
    """Vehicles, by id, optionally of one collector (a device: its own collector's)."""
    async with runtime_of(request).db.session() as session:
        collector_id = (await scope_of(session, principal)).collector(collector_id)
        stmt = select(Vehicle)
        if collector_id is not None:
            stmt = stmt.where(col(Vehicle.collector_id) == collector_id)
        rows = (await session.exec(stmt.order_by(col(Vehicle.vehicle_id))
                                   .limit(limit).offset(offset))).all()
    return [VehicleIn(**r.model_dump()) for r in rows]


@router.get("/devices", response_model=list[DeviceIn])
async def list_devices(
    request: Request, principal: Reader, collector_id: str | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[DeviceIn]:
    """Devices with their current vehicle binding, by id (a device: its collector's)."""
    async with runtime_of(request).db.session() as session:
        collector_id = (await scope_of(session, principal)).collector(collector_id)
        stmt = select(Device)
        if collector_id is not None:
            stmt = stmt.where(col(Device.collector_id) == collector_id)
        rows = (await session.exec(stmt.order_by(col(Device.device_id))
                                   .limit(limit).offset(offset))).all()
    return [DeviceIn(**r.model_dump()) for r in rows]


@router.get("/collection-points", response_model=list[CollectionPointIn])
async def list_collection_points(
    request: Request, principal: Reader, commune: str | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[CollectionPointIn]:
    """Collection points, by id, optionally of one commune."""
    stmt = select(CollectionPoint)
    if commune is not None:
        stmt = stmt.where(col(CollectionPoint.commune) == commune)
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(stmt.order_by(col(CollectionPoint.point_id))
                                   .limit(limit).offset(offset))).all()
    return [CollectionPointIn(**r.model_dump()) for r in rows]
