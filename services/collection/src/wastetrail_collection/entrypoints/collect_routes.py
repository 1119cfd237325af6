"""What a collector's device calls: trips, load scans (single and offline batch), refusals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from wastetrail_contracts.envelope import uuid7
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.inputs import Limit, Offset
from wastetrail_runtime.problems import Problem, not_found
from wastetrail_runtime.service import runtime_of

from wastetrail_collection.adapters.tables import Trip
from wastetrail_collection.domain.scans import RefusalInput, ScanInput, rejection_from
from wastetrail_collection.domain.trips import TripStart
from wastetrail_collection.entrypoints.guards import COLLECTOR, READER
from wastetrail_collection.entrypoints.schemas import (
    BatchOut,
    ItemResult,
    LoadOut,
    RefusalBatchIn,
    RefusalIn,
    ScanBatchIn,
    ScanIn,
    TripCloseIn,
    TripOut,
    TripStartIn,
)
from wastetrail_collection.entrypoints.scope import scope_of
from wastetrail_collection.handlers.common import problem, settings_of
from wastetrail_collection.handlers.loads import InvalidItem, Outcome, record_refusals, record_scans
from wastetrail_collection.handlers.trips import close_trip, start_trip
from wastetrail_collection.views import trip_loads, trips

router = APIRouter(prefix="/v1", tags=["collection"])
Collector = Annotated[Principal, Depends(COLLECTOR)]
Reader = Annotated[Principal, Depends(READER)]


def _trip_out(trip: object, loads: list[LoadOut] | None = None) -> TripOut:
    return TripOut.model_validate(trip, from_attributes=True).model_copy(update={"loads": loads})


@router.post("/trips", response_model=TripOut, status_code=201)
async def start(body: TripStartIn, request: Request, response: Response,
                principal: Collector) -> TripOut:
    """Start a trip on a vehicle of the device's collector; binds the device to it."""
    rt = runtime_of(request)
    begin = TripStart(trip_id=body.trip_id or f"trip-{uuid7()}", vehicle_id=body.vehicle_id,
                      crew=tuple(body.crew), commune=body.commune, route=body.route,
                      started_at=body.started_at or rt.clock.now())
    trip, created = await start_trip(rt, principal, begin)
    response.status_code = 201 if created else 200
    return _trip_out(trip)


@router.post("/trips/{trip_id}/close", response_model=TripOut)
async def close(trip_id: str, body: TripCloseIn, request: Request,
                principal: Collector) -> TripOut:
    """Close the trip with the crew's declared total; a retry with the same total is a no-op."""
    trip, _ = await close_trip(runtime_of(request), principal, trip_id,
                               body.declared_total_grams, body.closed_at)
    return _trip_out(trip)


@router.get("/trips", response_model=list[TripOut])
async def list_trips(request: Request, principal: Reader, vehicle_id: str | None = None,
                     is_open: bool | None = None, limit: Limit = 100,
                     offset: Offset = 0) -> list[TripOut]:
    """Trips, newest first (without their loads); a collector's device sees its collector's."""
    async with runtime_of(request).db.session() as session:
        scope = await scope_of(session, principal)
        found = await trips(session, vehicle_id, is_open, limit, offset,
                            collector_id=scope.collector_id)
    return [_trip_out(t) for t in found]


@router.get("/trips/{trip_id}", response_model=TripOut)
async def get_trip(trip_id: str, request: Request, principal: Reader,
                   limit: Limit = 100, offset: Offset = 0) -> TripOut:
    """A trip with a page of its loads (scan order) and its totals."""
    async with runtime_of(request).db.session() as session:
        trip = await session.get(Trip, trip_id)
        if trip is None:
            raise not_found("trip", trip_id, field="trip_id")
        (await scope_of(session, principal)).require_collector(trip.collector_id, "trip_id")
        page = await trip_loads(session, trip_id, limit, offset)
    return _trip_out(trip, [LoadOut.model_validate(x, from_attributes=True) for x in page.loads])


def _key_of(raw: Mapping[str, object]) -> str | None:
    key = raw.get("idempotency_key")
    return key if isinstance(key, str) else None


def _scan_input(s: ScanIn) -> ScanInput:
    return ScanInput(
        idempotency_key=s.idempotency_key, trip_id=s.trip_id, category=s.category,
        measure=s.measure, collected_at=s.collected_at, tag_id=s.tag_id,
        generator_code=s.generator_code, grams=s.grams, litres=s.litres, bag_size=s.bag_size,
        latitude=s.latitude, longitude=s.longitude)


def _refusal_input(refusal: RefusalIn) -> RefusalInput:
    return RefusalInput(**refusal.model_dump())


def _result(index: int, o: Outcome) -> dict[str, object]:
    r = o.rejection
    return {"index": index, "idempotency_key": o.idempotency_key, "status": o.status,
            "id": o.record_id, "reason": r.reason if r else None,
            "field": r.field if r else None, "detail": r.detail if r else None}


def _results(outcomes: Sequence[Outcome]) -> JSONResponse:
    # Built as plain JSON (the shape is BatchOut's): validating a thousand result models
    # twice, as FastAPI would for a returned model, costs more than recording the loads.
    counts = Counter(o.status for o in outcomes)
    return JSONResponse({
        "accepted": counts["accepted"], "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": [_result(i, o) for i, o in enumerate(outcomes)]})


def _single(outcome: Outcome) -> JSONResponse:
    if outcome.rejection is not None:
        raise problem(outcome.rejection)
    return JSONResponse(_result(0, outcome), status_code=201 if outcome.status == "accepted"
                        else 200)


def _too_many(count: int, limit: int, field: str) -> None:
    if count > limit:
        raise Problem(413, "batch-too-large", "Payload too large",
                      f"{count} items in one request; at most {limit}", field=field)


@router.post("/loads", response_model=ItemResult, status_code=201,
             responses={200: {"description": "a duplicate: the scan was already recorded"}})
async def scan(body: ScanIn, request: Request, principal: Collector) -> JSONResponse:
    """Record one load scan: 201 accepted, 200 duplicate (same key), 422 rejected (why)."""
    outcomes = await record_scans(runtime_of(request), principal, [_scan_input(body)])
    return _single(outcomes[0])


@router.post("/loads/batch", response_model=BatchOut)
async def scan_batch(body: ScanBatchIn, request: Request, principal: Collector) -> JSONResponse:
    """Record an offline device's scans; each result says accepted, duplicate or rejected."""
    rt = runtime_of(request)
    _too_many(len(body.scans), settings_of(rt).max_batch_scans, "scans")
    items: list[ScanInput | InvalidItem] = []
    for raw in body.scans:
        try:
            items.append(_scan_input(ScanIn.model_validate(raw)))
        except ValidationError as exc:
            items.append(InvalidItem(_key_of(raw), rejection_from(exc)))
    return _results(await record_scans(rt, principal, items))


@router.post("/refusals", response_model=ItemResult, status_code=201,
             responses={200: {"description": "a duplicate: the refusal was already recorded"}})
async def refuse(body: RefusalIn, request: Request, principal: Collector) -> JSONResponse:
    """Record refused waste (unsorted, wrong packaging, hazardous mixed in) for the commune."""
    outcomes = await record_refusals(runtime_of(request), principal, [_refusal_input(body)])
    return _single(outcomes[0])


@router.post("/refusals/batch", response_model=BatchOut)
async def refuse_batch(
    body: RefusalBatchIn, request: Request, principal: Collector
) -> JSONResponse:
    """Record an offline device's refusals, each judged on its own."""
    rt = runtime_of(request)
    _too_many(len(body.refusals), settings_of(rt).max_batch_scans, "refusals")
    items: list[RefusalInput | InvalidItem] = []
    for raw in body.refusals:
        try:
            items.append(_refusal_input(RefusalIn.model_validate(raw)))
        except ValidationError as exc:
            items.append(InvalidItem(_key_of(raw), rejection_from(exc)))
    return _results(await record_refusals(rt, principal, items))

