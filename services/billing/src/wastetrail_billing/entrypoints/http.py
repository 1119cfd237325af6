"""The billing HTTP API (``/v1``): tariffs, invoicing, payments, costs, reports, audit.

Roles: households see only their own account; cashiers record cash and refunds; admins
publish tariffs, run invoicing and record costs; auditors may read everything (GETs).
VNPay's IPN carries no token: its signature is what authenticates it.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, StringConstraints
from sqlmodel import col, select
from wastetrail_contracts.base import Period
from wastetrail_contracts.enums import CostComponent, Role, TreatmentMethod
from wastetrail_contracts.pricing.periods import periods_between
from wastetrail_contracts.pricing.tariff import Component
from wastetrail_runtime.auth import Principal, issue_token, require
from wastetrail_runtime.inputs import Limit, Offset, RequestBody
from wastetrail_runtime.problems import Problem, not_found, unprocessable
from wastetrail_runtime.service import ServiceRuntime, runtime_of

from wastetrail_billing.adapters.tables import (
    Account,
    Charge,
    Invoice,
    OperatingCost,
    Payment,
    TariffDocument,
)
from wastetrail_billing.handlers import costs, invoicing, payments, refunds, tariffs, views
from wastetrail_billing.handlers.common import new_id
from wastetrail_billing.settings import BillingSettings

router = APIRouter(prefix="/v1")

IdStr = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$")]
# A client-chosen key (RFC draft "The Idempotency-Key HTTP Header Field"): printable ASCII.
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", pattern=r"^[\x21-\x7e]{1,255}$")]
CommuneStr = Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_-]{1,40}|\*)$")]

READ_ACCOUNT = require(Role.HOUSEHOLD, Role.CASHIER, Role.AUDITOR)
ADMIN = require(Role.ADMIN)
AUDIT = require(Role.AUDITOR)
CASHIER = require(Role.CASHIER)


def settings_of(rt: ServiceRuntime) -> BillingSettings:
    """The billing settings of the running service."""
    settings = rt.settings
    if not isinstance(settings, BillingSettings):
        # create_app always passes BillingSettings; anything else is a wiring bug.
        raise Problem(500, "misconfigured", "Misconfigured", "billing settings missing")
    return settings


class _Body(RequestBody):
    model_config = ConfigDict(extra="forbid", strict=True)


# ------------------------------------------------------------------ tariffs


@router.post("/tariffs/{tariff_id}", status_code=201, openapi_extra={
    "requestBody": {"required": True,
                    "content": {"application/toml": {"schema": {"type": "string"}}}}})
async def publish_tariff(tariff_id: IdStr, request: Request, response: Response,
                         principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
    """Publish a tariff document (TOML text as the body); 200 if it is unchanged."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise unprocessable("invalid-tariff", "the body is not UTF-8 text", "body") from exc
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        published = await tariffs.publish_tariff(uow, tariff_id, text, actor=principal.actor(),
                                                 now=rt.clock.now())
        await uow.commit()
    if not published.created:
        response.status_code = 200
    return _tariff_view(published.document) | {"created": published.created}


def _tariff_view(doc: TariffDocument, *, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "tariff_id": doc.tariff_id, "revision": doc.revision, "province": doc.province,
        "label": doc.label, "document_sha256": doc.document_sha256,
        "effective_from": doc.effective_from.split(","),
        "published_at": doc.published_at.isoformat(),
    }
    if full:
        view |= {"document_json": doc.document_json, "source_toml": doc.source_toml}
    return view


@router.get("/tariffs")
async def list_tariffs(request: Request, limit: Limit = 50, offset: Offset = 0,
                       principal: Principal = Depends(AUDIT)) -> dict[str, Any]:
    """Every published revision, newest first."""
    async with runtime_of(request).db.session() as session:
        docs = (await session.exec(
            select(TariffDocument).order_by(col(TariffDocument.tariff_id),
                                            col(TariffDocument.revision).desc())
            .limit(limit).offset(offset))).all()
    return {"items": [_tariff_view(d) for d in docs], "limit": limit, "offset": offset}


@router.get("/tariffs/{tariff_id}")
async def get_tariff(tariff_id: IdStr, request: Request,
                     principal: Principal = Depends(require(Role.AUDITOR, Role.CASHIER,
                                                            Role.HOUSEHOLD))) -> dict[str, Any]:
    """The latest revision of a tariff, with its document."""
    async with runtime_of(request).db.session() as session:
        doc = await tariffs.latest_document(session, tariff_id)
    if doc is None:
        raise not_found("tariff", tariff_id, field="tariff_id")
    return _tariff_view(doc, full=True)


class AssignTariff(_Body):
    """Body of PUT /v1/communes/{commune}/tariff."""

    tariff_id: IdStr


@router.put("/communes/{commune}/tariff")
async def assign_tariff(commune: CommuneStr, body: AssignTariff, request: Request,
                        principal: Principal = Depends(ADMIN)) -> dict[str, str]:
    """Price a commune's accounts with a tariff (commune ``*``: the default)."""
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        row = await tariffs.assign_tariff(uow, commune, body.tariff_id, now=rt.clock.now())
        await uow.commit()
    return {"commune": row.commune, "tariff_id": row.tariff_id}


# ------------------------------------------------------------------ invoicing


class InvoicingRun(_Body):
    """Body of POST /v1/invoicing/runs."""

    period: Period


@router.post("/invoicing/runs")
async def run_invoicing(body: InvoicingRun, request: Request,
                        principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
    """Invoice every account for an ended month; re-running it issues nothing new except
    supplementary invoices for loads that arrived late (this month's and the two before)."""
    rt = runtime_of(request)
    result = await invoicing.run_invoicing(rt.store, body.period, actor=principal.actor(),
                                           now=rt.clock.now())
    return {"period": result.period, "issued": result.issued,
            "already_issued": result.already_issued, "skipped": result.skipped,
            "supplements": result.supplements, "late_charges": result.late_charges}


@router.get("/invoices")
async def list_invoices(request: Request, period: Period | None = None,
                        limit: Limit = 50, offset: Offset = 0,
                        principal: Principal = Depends(require(Role.AUDITOR, Role.CASHIER)),
                        ) -> dict[str, Any]:
    """Invoices, optionally of one period."""
    query = select(Invoice)
    if period is not None:
        query = query.where(Invoice.period == period)
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(
            query.order_by(col(Invoice.period).desc(), col(Invoice.invoice_id))
            .limit(limit).offset(offset))).all()
    return {"items": [views.invoice_view(i) for i in rows], "limit": limit, "offset": offset}


async def _invoice_for(request: Request, invoice_id: str, principal: Principal) -> Invoice:
    async with runtime_of(request).db.session() as session:
        invoice = await session.get(Invoice, invoice_id)
    if invoice is None:
        raise not_found("invoice", invoice_id, field="invoice_id")
    principal.require_account(invoice.account_id)
    return invoice


@router.get("/invoices/{invoice_id}")
async def get_invoice(invoice_id: IdStr, request: Request,
                      principal: Principal = Depends(READ_ACCOUNT)) -> dict[str, Any]:
    """An invoice with its lines and payments."""
    invoice = await _invoice_for(request, invoice_id, principal)
    async with runtime_of(request).db.session() as session:
        pays = await views.payments_of_invoice(session, invoice_id)
    return views.invoice_view(invoice, detail=True) | {
        "payments": [views.payment_view(p) for p in pays]}


# ------------------------------------------------------------------ accounts


@router.get("/accounts")
async def list_accounts(request: Request, commune: str | None = None, limit: Limit = 50,
                        offset: Offset = 0,
                        principal: Principal = Depends(require(Role.AUDITOR, Role.CASHIER)),
                        ) -> dict[str, Any]:
    """Billing accounts, optionally of one commune."""
    query = select(Account)
    if commune is not None:
        query = query.where(Account.commune == commune)
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(
            query.order_by(col(Account.account_id)).limit(limit).offset(offset))).all()
        items = [await views.account_view(session, a) for a in rows]
    return {"items": items, "limit": limit, "offset": offset}


async def _account(request: Request, account_id: str, principal: Principal) -> Account:
    principal.require_account(account_id)
    async with runtime_of(request).db.session() as session:
        account = await session.get(Account, account_id)
    if account is None:
        raise not_found("account", account_id, field="account_id")
    return account


@router.get("/accounts/{account_id}")
async def get_account(account_id: IdStr, request: Request,
                      principal: Principal = Depends(READ_ACCOUNT)) -> dict[str, Any]:
    """An account: what it owes and the credit waiting for its next invoice."""
    account = await _account(request, account_id, principal)
    async with runtime_of(request).db.session() as session:
        return await views.account_view(session, account)


@router.get("/accounts/{account_id}/invoices")
async def account_invoices(account_id: IdStr, request: Request, limit: Limit = 50,
                           offset: Offset = 0,
                           principal: Principal = Depends(READ_ACCOUNT)) -> dict[str, Any]:
    """An account's invoices, newest first."""
    await _account(request, account_id, principal)
    async with runtime_of(request).db.session() as session:
        rows = await views.invoices_of(session, account_id, limit=limit, offset=offset)
    return {"items": [views.invoice_view(i) for i in rows], "limit": limit, "offset": offset}


@router.get("/accounts/{account_id}/credits")
async def account_credits(account_id: IdStr, request: Request, limit: Limit = 50,
                          offset: Offset = 0,
                          principal: Principal = Depends(READ_ACCOUNT)) -> dict[str, Any]:
    """Movements of the account's credit (EPR refunds in, credits applied out) and refunds."""
    await _account(request, account_id, principal)
    async with runtime_of(request).db.session() as session:
        credits = await views.credits_of(session, account_id, limit=limit, offset=offset)
        refunds = await views.refunds_of(session, account_id)
    return {"items": credits, "payment_refunds": [views.refund_view(r) for r in refunds],
            "limit": limit, "offset": offset}


@router.get("/accounts/{account_id}/charges")
async def account_charges(account_id: IdStr, request: Request, period: Period,
                          limit: Limit = 100, offset: Offset = 0,
                          principal: Principal = Depends(READ_ACCOUNT)) -> dict[str, Any]:
    """The loads attributed to an account in a month."""
    await _account(request, account_id, principal)
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(
            select(Charge).where(Charge.account_id == account_id, Charge.period == period)
            .order_by(col(Charge.collected_at)).limit(limit).offset(offset))).all()
        invoices = (await session.exec(select(Invoice).where(
            Invoice.account_id == account_id, Invoice.period == period)
            .order_by(col(Invoice.supplement)))).all()
    # A load is on the first of the month's invoices (the invoice, then its supplements)
    # issued after it was charged (see Charge.seq); a load charged after all of them is
    # late and not billed yet.
    def billed_by(seq: int | None) -> str | None:
        return next((i.invoice_id for i in invoices
                     if seq is not None and seq <= i.charges_through), None)

    return {"items": [{
        "load_id": c.load_id, "category": c.category, "measure": c.measure,
        "grams": c.grams, "litres": c.litres, "bag_size": c.bag_size,
        "collected_at": c.collected_at.isoformat(), "invoice_id": billed_by(c.seq),
    } for c in rows], "limit": limit, "offset": offset}


class TokenRequest(_Body):
    """Body of POST /v1/accounts/{id}/token."""

    valid_days: int = Field(default=365, ge=1, le=3650)


@router.post("/accounts/{account_id}/token")
async def account_token(account_id: IdStr, body: TokenRequest, request: Request,
                        principal: Principal = Depends(ADMIN)) -> dict[str, str]:
    """Issue the household's sign-in token for its own account (handed out on paper/SMS)."""
    account = await _account(request, account_id, principal)
    rt = runtime_of(request)
    token = issue_token(request.app.state.jwt_secret, f"household:{account.account_id}",
                        Role.HOUSEHOLD, account_id=account.account_id,
                        ttl=timedelta(days=body.valid_days), now=rt.clock.now())
    return {"account_id": account.account_id, "token": token}


# ------------------------------------------------------------------ payments


class PayRequest(_Body):
    """Body of POST /v1/invoices/{id}/pay."""

    locale: Literal["vn", "en"] = "vn"


def payer_ip(request: Request) -> str:
    """The payer's IP for vnp_IpAddr (loopback when unknown)."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "127.0.0.1"


async def start_payment(request: Request, invoice_id: str, principal: Principal,
                        locale: Literal["vn", "en"]) -> tuple[Payment, str]:
    """Start a VNPay payment of the invoice's outstanding amount (API and web page)."""
    rt = runtime_of(request)
    settings = settings_of(rt)
    config = settings.vnpay_config()
    if config is None:
        raise payments.vnpay_not_configured()
    async with rt.store.unit_of_work() as uow:
        invoice = await payments.locked_invoice(uow, invoice_id)
        principal.require_account(invoice.account_id)
        payment, url = await payments.start_vnpay_payment(
            uow, invoice, config=config, actor=principal.actor(), now=rt.clock.now(),
            ip_addr=payer_ip(request), locale=locale,
            expire_after=timedelta(minutes=settings.vnpay_expire_minutes))
        await uow.commit()
    return payment, url


@router.post("/invoices/{invoice_id}/pay", status_code=201)
async def pay_invoice(invoice_id: IdStr, body: PayRequest, request: Request,
                      principal: Principal = Depends(require(Role.HOUSEHOLD)),
                      ) -> dict[str, Any]:
    """Start paying the invoice through VNPay: redirect the payer to ``payment_url``."""
    payment, url = await start_payment(request, invoice_id, principal, body.locale)
    return {"payment_id": payment.payment_id, "amount": payment.amount, "payment_url": url}


@router.get("/payments/vnpay/ipn", include_in_schema=True)
async def vnpay_ipn(request: Request) -> JSONResponse:
    """VNPay's server-to-server IPN (vnpay.md §2): the only thing that marks a bill paid."""
    rt = runtime_of(request)
    params = dict(request.query_params)
    decision = await payments.handle_ipn(rt.store, settings_of(rt).vnpay_config(), params)
    rt.metrics.vnpay_ipn.labels(rt.metrics.service, decision.rsp_code).inc()
    return JSONResponse(decision.body())


class CashPayment(_Body):
    """Body of POST /v1/invoices/{id}/cash-payments."""

    amount: int = Field(gt=0, le=10**15)


@router.post("/invoices/{invoice_id}/cash-payments", status_code=201)
async def cash_payment(invoice_id: IdStr, body: CashPayment, request: Request,
                       principal: Principal = Depends(CASHIER)) -> dict[str, Any]:
    """A cashier received cash for an invoice."""
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        payment = await payments.record_cash_payment(uow, invoice_id, body.amount,
                                                     actor=principal.actor(),
                                                     now=rt.clock.now())
        await uow.commit()
    return views.payment_view(payment)


async def _payment(request: Request, payment_id: str, principal: Principal) -> Payment:
    async with runtime_of(request).db.session() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None:
        raise not_found("payment", payment_id, field="payment_id")
    principal.require_account(payment.account_id)
    return payment


@router.get("/payments/{payment_id}")
async def get_payment(payment_id: IdStr, request: Request,
                      principal: Principal = Depends(READ_ACCOUNT)) -> dict[str, Any]:
    """One payment and its state."""
    return views.payment_view(await _payment(request, payment_id, principal))


@router.post("/payments/{payment_id}/querydr")
async def querydr(payment_id: IdStr, request: Request,
                  principal: Principal = Depends(require(Role.CASHIER, Role.AUDITOR)),
                  ) -> dict[str, Any]:
    """Ask VNPay for the payment's state (changes nothing: only the IPN marks paid)."""
    payment = await _payment(request, payment_id, principal)
    rt = runtime_of(request)
    settings = settings_of(rt)
    answer = await payments.query_payment(payment, config=settings.vnpay_config(),
                                          now=rt.clock.now(),
                                          server_ip=settings.vnpay_server_ip)
    # Paid, or paid and (partly) refunded since: refund types 02/03, status 05/06.
    gateway_paid = answer.ok and (answer.transaction_status == "00" or (
        answer.transaction_type in ("02", "03") and answer.transaction_status in ("05", "06")))
    return {
        "payment": views.payment_view(payment),
        "vnpay": {"response_code": answer.response_code, "message": answer.message,
                  "transaction_status": answer.transaction_status,
                  "transaction_no": answer.transaction_no, "amount": answer.amount_vnd,
                  "bank_code": answer.bank_code, "pay_date": answer.pay_date},
        "consistent": gateway_paid == (payment.status == payments.SUCCEEDED),
    }


class RefundRequest(_Body):
    """Body of POST /v1/payments/{id}/refunds (no amount: everything not yet refunded)."""

    amount: int | None = Field(default=None, gt=0, le=10**15)
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


@router.post("/payments/{payment_id}/refunds", status_code=201)
async def refund(payment_id: IdStr, body: RefundRequest, request: Request, response: Response,
                 principal: Principal = Depends(CASHIER),
                 idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Refund (part of) a payment: through VNPay for VNPay payments, else in cash.

    Send an ``Idempotency-Key``: a retry with the same key (after a timeout, a 504
    ``refund-pending``) is the same refund — answered from what was recorded, or reconciled
    with VNPay's querydr — and never refunds twice.
    """
    rt = runtime_of(request)
    settings = settings_of(rt)
    done, replayed = await refunds.refund(
        rt.store, refunds.RefundRequest(payment_id, body.amount, body.reason, idempotency_key),
        config=settings.vnpay_config(), actor=principal.actor(), now=rt.clock.now(),
        server_ip=settings.vnpay_server_ip)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return views.refund_view(done)


# ------------------------------------------------------------------ costs and reports


class CostRequest(_Body):
    """Body of POST /v1/costs: one operating cost of a period."""

    model_config = ConfigDict(extra="forbid", strict=False)

    cost_id: IdStr | None = None
    period: Period
    component: CostComponent
    driver: Literal["trip_km", "station_tonne", "plant_tonne", "overhead"]
    method: TreatmentMethod | None = None
    quantity: Annotated[int, Field(ge=0, le=10**15, strict=True)]
    amount: Annotated[int, Field(ge=0, le=10**15, strict=True)]
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    allocate_to: Component | None = None


@router.post("/costs", status_code=201)
async def record_cost(body: CostRequest, request: Request, response: Response,
                      principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
    """Record an operating cost (per trip km, station tonne, plant tonne by method, overhead).

    ``quantity`` is km for trip_km, grams for the per-tonne drivers, 1 for overhead.
    """
    rt = runtime_of(request)
    async with rt.store.unit_of_work() as uow:
        row, created = await costs.record_cost(
            uow, cost_id=body.cost_id or new_id("COST"), period=body.period,
            component=body.component, driver=body.driver, method=body.method,
            quantity=body.quantity, amount=body.amount, description=body.description,
            allocate_to=body.allocate_to, actor=principal.actor(), now=rt.clock.now())
        await uow.commit()
    if not created:
        response.status_code = 200
    return _cost_view(row)


def _cost_view(c: OperatingCost) -> dict[str, Any]:
    return {"cost_id": c.cost_id, "period": c.period, "component": c.component,
            "allocated_to": c.allocated_to, "driver": c.driver, "method": c.method,
            "quantity": c.quantity, "amount": c.amount, "description": c.description}


@router.get("/costs")
async def list_costs(request: Request, period: Period, limit: Limit = 100,
                     offset: Offset = 0,
                     principal: Principal = Depends(AUDIT)) -> dict[str, Any]:
    """Operating costs of a period."""
    async with runtime_of(request).db.session() as session:
        rows = (await session.exec(
            select(OperatingCost).where(OperatingCost.period == period)
            .order_by(col(OperatingCost.cost_id)).limit(limit).offset(offset))).all()
    return {"items": [_cost_view(c) for c in rows], "limit": limit, "offset": offset}


@router.get("/reports/full-cost")
async def full_cost(request: Request, period: Period, to: Period | None = None,
                    principal: Principal = Depends(AUDIT)) -> dict[str, Any]:
    """Full cost per component and per tonne, revenue billed and collected, cost recovery,
    and the tariff that would recover the full cost, for a month (or ``period``..``to``)."""
    months = periods_between(period, to or period)
    if not months:
        raise unprocessable("period-range", "to must not be before period", "to")
    async with runtime_of(request).db.session() as session:
        report, activity = await costs.full_cost_report(session, months)
    return {"periods": months, "activity": activity.model_dump(mode="json"),
            **report.model_dump(mode="json")}


@router.get("/audit/balances")
async def audit_balances(request: Request,
                         principal: Principal = Depends(AUDIT)) -> dict[str, Any]:
    """Per account and per producer balances, for auditors to reconcile with the log."""
    async with runtime_of(request).db.session() as session:
        return await views.audit_balances(session)
