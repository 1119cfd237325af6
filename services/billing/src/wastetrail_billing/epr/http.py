"""The EPR scheme's HTTP API (``/v1/epr/...``): thin — validate, call a handler, answer."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field, StringConstraints, model_validator
from sqlmodel import col, select
from wastetrail_contracts.base import Code, Day, Id, Period, UtcDatetime
from wastetrail_contracts.enums import Material, Role
from wastetrail_contracts.events.epr import PackagingRegistered, ProducerRegistered
from wastetrail_contracts.pricing.periods import local_date
from wastetrail_runtime.auth import Principal, require
from wastetrail_runtime.inputs import Limit, Offset, RequestBody
from wastetrail_runtime.problems import not_found
from wastetrail_runtime.service import runtime_of

from wastetrail_billing.epr import handlers, queries
from wastetrail_billing.epr.tables import EprClaim, EprPackaging, EprProducer
from wastetrail_billing.handlers.common import build_event

# Producer ids end up inside ledger account names (``producer:{id}:receivable``), whose
# segments are split on ':' and limited to 80 characters, hence no ':' and 60 at most.
ProducerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")]
ShortId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,59}$")]
Positive = Annotated[int, Field(strict=True, gt=0, le=10**12)]
PositiveGrams = Annotated[int, Field(strict=True, gt=0, le=100_000_000)]

READERS = (Role.AUDITOR,)


class ProducerBody(RequestBody):
    """A producer or importer joining the scheme."""

    producer_id: ProducerId
    name: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    tax_code: Code
    kind: Literal["producer", "importer"]


class PackagingBody(RequestBody):
    """A packaging SKU version: material, unit weight and deposit from a date."""

    sku: Code
    material: Material
    unit_grams: PositiveGrams
    deposit_per_unit: Positive
    effective_from: Day


class MarketReportBody(RequestBody):
    """Units of one SKU placed on one province's market in one month."""

    report_id: ShortId
    sku: Code
    period: Period
    province: Code
    units: Positive


class DepositBody(RequestBody):
    """A bank transfer of deposits into the escrow, as the cashier saw it arrive."""

    payment_id: ShortId
    amount: Positive
    reference: Code
    paid_at: UtcDatetime | None = None


class ReturnLineBody(RequestBody):
    """Returned packaging: ``sku`` + ``units``, ``sku`` + ``grams``, or ``material`` + ``grams``."""

    sku: Code | None = None
    material: Material | None = None
    units: Positive | None = None
    grams: PositiveGrams | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> ReturnLineBody:
        if (self.sku is None) == (self.material is None):
            raise ValueError("sku/material: give exactly one")
        if (self.units is None) == (self.grams is None):
            raise ValueError("units/grams: give exactly one")
        if self.material is not None and self.units is not None:
            raise ValueError("units: a material is returned by weight (grams)")
        return self


class ReturnBody(RequestBody):
    """Packaging a household handed back to a collector at a load."""

    idempotency_key: Code
    load_id: Id
    generator_id: Id
    province: Code
    lines: list[ReturnLineBody] = Field(min_length=1, max_length=50)


class RejectBody(RequestBody):
    """Why an administrator rejects a pending claim."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


def make_epr_router() -> APIRouter:
    """The ``/v1/epr`` routes."""
    router = APIRouter(prefix="/v1/epr", tags=["epr"])

    @router.post("/producers", status_code=201)
    async def register_producer(
        body: ProducerBody, request: Request, response: Response,
        principal: Principal = Depends(require(Role.ADMIN)),
    ) -> dict[str, object]:
        """Register a producer or importer (re-sending updates its details)."""
        event = build_event(ProducerRegistered, **body.model_dump())
        async with runtime_of(request).store.unit_of_work() as uow:
            changed = await handlers.register_producer(uow, event, actor=principal.actor())
            await uow.commit()
        if not changed:
            response.status_code = 200
        return body.model_dump()

    @router.get("/producers")
    async def list_producers(
        request: Request, limit: Limit = 100, offset: Offset = 0,
        principal: Principal = Depends(require(*READERS, Role.PRODUCER)),
    ) -> dict[str, object]:
        """Producers with their balances (a producer sees only itself)."""
        async with runtime_of(request).db.session() as session:
            query = select(EprProducer).order_by(col(EprProducer.producer_id))
            if principal.role is Role.PRODUCER:
                query = query.where(EprProducer.producer_id == (principal.account_id or ""))
            rows = (await session.exec(query.offset(offset).limit(limit))).all()
            balances = await queries.producer_balances(session)
        return {"items": [{**_producer(p), "balances": balances.get(p.producer_id)}
                          for p in rows], "limit": limit, "offset": offset}

    @router.get("/producers/{producer_id}")
    async def get_producer(
        producer_id: str, request: Request,
        principal: Principal = Depends(require(*READERS, Role.PRODUCER)),
    ) -> dict[str, object]:
        """One producer: details, packaging versions and balances."""
        principal.require_account(producer_id)
        async with runtime_of(request).db.session() as session:
            producer = await session.get(EprProducer, producer_id)
            if producer is None:
                raise not_found("producer", producer_id, field="producer_id")
            packaging = (await session.exec(
                select(EprPackaging).where(EprPackaging.producer_id == producer_id)
                .order_by(col(EprPackaging.sku), col(EprPackaging.effective_from))
            )).all()
            balances = (await queries.producer_balances(session)).get(producer_id)
        return {**_producer(producer), "balances": balances,
                "packaging": [_packaging(p) for p in packaging]}

    @router.post("/producers/{producer_id}/packaging", status_code=201)
    async def register_packaging(
        producer_id: ProducerId, body: PackagingBody, request: Request, response: Response,
        principal: Principal = Depends(require(Role.ADMIN)),
    ) -> dict[str, object]:
        """Register a SKU version (material, unit grams, deposit per unit, effective from)."""
        event = build_event(PackagingRegistered, producer_id=producer_id,
                            **body.model_dump())
        async with runtime_of(request).store.unit_of_work() as uow:
            created = await handlers.register_packaging(uow, event, actor=principal.actor())
            await uow.commit()
        if not created:
            response.status_code = 200
        return {"producer_id": producer_id, **body.model_dump(mode="json")}

    @router.get("/packaging")
    async def list_packaging(
        request: Request, producer_id: str | None = None, limit: Limit = 100,
        offset: Offset = 0,
        principal: Principal = Depends(require(*READERS, Role.PRODUCER, Role.COLLECTOR)),
    ) -> dict[str, object]:
        """Registered packaging versions (collectors look SKUs up here)."""
        if principal.role is Role.PRODUCER:
            producer_id = principal.account_id or ""
        async with runtime_of(request).db.session() as session:
            query = select(EprPackaging).order_by(col(EprPackaging.sku),
                                                  col(EprPackaging.effective_from))
            if producer_id is not None:
                query = query.where(EprPackaging.producer_id == producer_id)
            rows = (await session.exec(query.offset(offset).limit(limit))).all()
        return {"items": [_packaging(p) for p in rows], "limit": limit, "offset": offset}

    @router.post("/producers/{producer_id}/market-reports", status_code=201)
    async def report_units(
        producer_id: ProducerId, body: MarketReportBody, request: Request,
        response: Response, principal: Principal = Depends(require(Role.PRODUCER)),
    ) -> dict[str, object]:
        """Units placed on the market → deposits owed (re-sending a report is a no-op)."""
        principal.require_account(producer_id)
        rt = runtime_of(request)
        async with rt.store.unit_of_work() as uow:
            row, created = await handlers.report_units(uow, handlers.MarketReport(
                producer_id=producer_id, **body.model_dump()), actor=principal.actor())
            await uow.commit()
        if not created:
            response.status_code = 200
        return {"report_id": row.report_id, "producer_id": row.producer_id, "sku": row.sku,
                "period": row.period, "province": row.province, "units": row.units,
                "deposit_per_unit": row.deposit_per_unit, "deposit_owed": row.deposit_owed}

    @router.post("/producers/{producer_id}/deposits", status_code=201)
    async def record_deposit(
        producer_id: ProducerId, body: DepositBody, request: Request, response: Response,
        principal: Principal = Depends(require(Role.CASHIER)),
    ) -> dict[str, object]:
        """A cashier records a producer's bank transfer into the escrow; confirmed claims
        that were waiting for money are credited in the same transaction."""
        rt = runtime_of(request)
        async with rt.store.unit_of_work() as uow:
            row, credited = await handlers.record_deposit(uow, handlers.DepositPayment(
                payment_id=body.payment_id, producer_id=producer_id, amount=body.amount,
                reference=body.reference, paid_at=body.paid_at or rt.clock.now(),
            ), actor=principal.actor())
            await uow.commit()
        if credited is None:
            response.status_code = 200
        return {"payment_id": row.payment_id, "producer_id": row.producer_id,
                "amount": row.amount, "channel": row.channel, "reference": row.reference,
                "paid_at": row.paid_at.isoformat(), "claims_credited": credited or 0}

    @router.post("/returns", status_code=201)
    async def record_return(
        body: ReturnBody, request: Request, response: Response,
        principal: Principal = Depends(require(Role.COLLECTOR)),
    ) -> dict[str, object]:
        """A collector records packaging a household returned at a load → pending claims.

        Retrying with the same ``idempotency_key`` returns the same claims (200)."""
        ret = handlers.PackagingReturn(
            idempotency_key=body.idempotency_key, load_id=body.load_id,
            generator_id=body.generator_id, province=body.province,
            lines=tuple(handlers.ReturnLine(sku=ln.sku, material=ln.material, units=ln.units,
                                            grams=ln.grams) for ln in body.lines),
        )
        async with runtime_of(request).store.unit_of_work() as uow:
            result = await handlers.record_return(uow, ret, actor=principal.actor())
            await uow.commit()
        if result.replayed:
            response.status_code = 200
        return {"idempotency_key": body.idempotency_key, "load_id": body.load_id,
                "claims": [queries.claim_view(c) for c in result.claims]}

    @router.get("/claims")
    async def list_claims(
        request: Request,
        status: Literal["pending", "confirmed", "credited", "rejected"] | None = None,
        account_id: str | None = None, producer_id: str | None = None,
        load_id: str | None = None, flagged: bool | None = None,
        limit: Limit = 100, offset: Offset = 0,
        principal: Principal = Depends(require(*READERS, Role.HOUSEHOLD, Role.PRODUCER)),
    ) -> dict[str, object]:
        """Claims, newest first; a household sees its own, a producer its packaging's."""
        if principal.role is Role.HOUSEHOLD:
            account_id = principal.account_id or ""
        if principal.role is Role.PRODUCER:
            producer_id = principal.account_id or ""
        query = select(EprClaim)
        for column, value in ((EprClaim.status, status), (EprClaim.account_id, account_id),
                              (EprClaim.producer_id, producer_id),
                              (EprClaim.load_id, load_id),
                              (EprClaim.flagged_over_market, flagged)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(col(EprClaim.opened_at).desc(), col(EprClaim.claim_id))
        async with runtime_of(request).db.session() as session:
            rows = (await session.exec(query.offset(offset).limit(limit))).all()
        return {"items": [queries.claim_view(c) for c in rows], "limit": limit,
                "offset": offset}

    @router.get("/claims/{claim_id}")
    async def get_claim(
        claim_id: str, request: Request,
        principal: Principal = Depends(require(*READERS, Role.HOUSEHOLD, Role.PRODUCER)),
    ) -> dict[str, object]:
        """One claim and where it stands (pending shows what it waits for)."""
        async with runtime_of(request).db.session() as session:
            claim = await session.get(EprClaim, claim_id)
        if claim is None:
            raise not_found("claim", claim_id, field="claim_id")
        principal.require_account(
            claim.producer_id if principal.role is Role.PRODUCER else claim.account_id)
        return queries.claim_view(claim)

    @router.post("/claims/{claim_id}/reject")
    async def reject_claim(
        claim_id: str, body: RejectBody, request: Request,
        principal: Principal = Depends(require(Role.ADMIN)),
    ) -> dict[str, object]:
        """An administrator rejects a pending claim (e.g. a flagged one), with the reason."""
        async with runtime_of(request).store.unit_of_work() as uow:
            claim = await handlers.reject_claim(uow, claim_id, body.reason)
            await uow.commit()
        return queries.claim_view(claim)

    @router.get("/balances")
    async def balances(
        request: Request, _p: Principal = Depends(require(*READERS)),
    ) -> dict[str, object]:
        """The escrow and every producer's owed / paid / refunded / unredeemed."""
        async with runtime_of(request).db.session() as session:
            return await queries.scheme_balances(session)

    @router.get("/rates")
    async def rates(
        _p: Principal = Depends(require(*READERS, Role.PRODUCER)),
    ) -> dict[str, object]:
        """The mandatory recycling rates (Decree 08/2022; assumed ones are marked)."""
        return {"rates": [
            {"material": r.material.value, "percent": r.percent, "assumed": r.assumed,
             "source": r.source} for r in queries.mandatory_rates().values()
        ]}

    @router.get("/compliance")
    async def compliance_all(
        request: Request, year: Annotated[int, Query(ge=2022, le=2100)],
        _p: Principal = Depends(require(*READERS)),
    ) -> dict[str, object]:
        """Every producer's recycling rates and deadlines for a year, with flags."""
        rt = runtime_of(request)
        today = local_date(rt.clock.now())
        async with rt.db.session() as session:
            ids = (await session.exec(
                select(EprProducer.producer_id).order_by(col(EprProducer.producer_id))
            )).all()
            items = [await queries.compliance(session, p, year, today) for p in ids]
        return {"year": year, "today": today.isoformat(), "items": items}

    @router.get("/producers/{producer_id}/compliance")
    async def compliance_one(
        producer_id: str, request: Request, year: Annotated[int, Query(ge=2022, le=2100)],
        principal: Principal = Depends(require(*READERS, Role.PRODUCER)),
    ) -> dict[str, object]:
        """One producer's recycling rates against the mandatory rates, and its deadlines."""
        principal.require_account(producer_id)
        rt = runtime_of(request)
        async with rt.db.session() as session:
            if await session.get(EprProducer, producer_id) is None:
                raise not_found("producer", producer_id, field="producer_id")
            return await queries.compliance(session, producer_id, year,
                                            local_date(rt.clock.now()))

    return router


def _producer(p: EprProducer) -> dict[str, object]:
    return {"producer_id": p.producer_id, "name": p.name, "tax_code": p.tax_code,
            "kind": p.kind, "registered_at": p.registered_at.isoformat()}


def _packaging(p: EprPackaging) -> dict[str, object]:
    return {"sku": p.sku, "producer_id": p.producer_id, "material": p.material,
            "unit_grams": p.unit_grams, "deposit_per_unit": p.deposit_per_unit,
            "effective_from": p.effective_from.isoformat()}

