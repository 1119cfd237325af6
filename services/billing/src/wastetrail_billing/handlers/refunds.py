"""Refunds exactly once: cash at once, VNPay through a pending refund and reconciliation.

A VNPay refund is three steps, never one transaction around a network call:

1. under the payment's row lock, a ``pending`` refund row is committed with its stable
   ``request_id`` (vnp_RequestId) and the cashier's idempotency key;
2. VNPay is asked to refund;
3. its answer is recorded: ``succeeded`` (the event, the ledger entry, the payment's and
   invoice's sums) or ``failed`` (VNPay refused: nothing moved).

If VNPay does not answer (a timeout, a crash between 2 and 3), the row stays pending. The
cashier's retry with the same Idempotency-Key finds it and reconciles with querydr
(``domain.refunds.refund_outcome``): applied → recorded as succeeded, never sent again;
not applied → sent again with a new request id (committed first); unclear → still
pending, reported. While a refund of a payment is pending no other refund of it starts,
so the "at most what remains" check and the reconciliation see one unknown at a time;
and one request at a time talks to VNPay about a refund (an advisory lock), so a retry
never reconciles while the first call is still out.
"""

from __future__ import annotations

import contextlib
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlmodel import select
from wastetrail_contracts import Actor
from wastetrail_contracts.enums import PaymentChannel
from wastetrail_contracts.events.billing import PaymentRefunded
from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.problems import Problem, conflict, unprocessable
from wastetrail_runtime.store import EventStore, UnitOfWork

from wastetrail_billing.adapters.ledger import post_entry
from wastetrail_billing.adapters.tables import Payment, Refund
from wastetrail_billing.adapters.vnpay import (
    RefundKind,
    VNPayApiResponse,
    VNPayClient,
    VNPayConfig,
    VNPayError,
)
from wastetrail_billing.domain import invoicing as inv
from wastetrail_billing.domain.refunds import RefundOutcome, refund_outcome
from wastetrail_billing.handlers.common import new_id
from wastetrail_billing.handlers.payments import (
    CASH_ACCOUNTS,
    SUCCEEDED,
    locked_invoice,
    locked_payment,
    vnpay_not_configured,
)

log = get_logger(__name__)
PENDING, FAILED = "pending", "failed"


@dataclass(frozen=True)
class RefundRequest:
    """What the cashier asked: the payment, how much (None: all that remains), why, and
    the idempotency key that makes a retry the same request."""

    payment_id: str
    amount: int | None
    reason: str
    idempotency_key: str | None


async def refund(store: EventStore, request: RefundRequest, *, config: VNPayConfig | None,
                 actor: Actor, now: datetime, server_ip: str) -> tuple[Refund, bool]:
    """Refund once; ``(refund, replayed)`` — ``replayed`` is True when the key's refund had
    already been done and the retry is answered with it."""
    async with store.unit_of_work() as uow:
        payment = await locked_payment(uow, request.payment_id)
        existing = await _by_key(uow, request.idempotency_key)
        if existing is not None:
            _same_request(existing, request)
            if existing.status == FAILED:
                raise _refused(existing)
            refund_id, state = existing.refund_id, existing.status
        else:
            row = await _new_refund(uow, payment, request, actor=actor, now=now)
            refund_id, state = row.refund_id, row.status
            if payment.channel != PaymentChannel.VNPAY.value:
                await _apply(uow, payment, row, refund_ref=row.refund_id, actor=actor,
                             now=now)
                state = SUCCEEDED
            elif config is None:
                raise vnpay_not_configured()
            await uow.commit()  # a VNPay refund is pending before VNPay hears of it
    if state == SUCCEEDED:
        return (await _load(store, refund_id))[1], existing is not None
    if config is None:
        raise vnpay_not_configured()
    async with _one_caller(store, refund_id):
        payment, row = await _load(store, refund_id)
        if row.status == SUCCEEDED:  # a concurrent retry recorded it meanwhile
            return row, True
        done = await _settle_with_vnpay(store, payment, row, existing is not None,
                                        config=config, actor=actor, now=now,
                                        server_ip=server_ip)
    return done, False


@contextlib.asynccontextmanager
async def _one_caller(store: EventStore, refund_id: str) -> AsyncIterator[None]:
    """Only one request at a time talks to VNPay about a refund: a retry arriving while
    the first call is still out would otherwise see "not applied" and send it again.
    A session advisory lock, released when the call ends or the process dies."""
    key = zlib.crc32(f"refund:{refund_id}".encode()) & 0x7FFFFFFF
    async with store.db.engine.connect() as conn:
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
               ).scalar()
        if not got:
            raise Problem(409, "refund-in-progress", "Conflict",
                          f"refund {refund_id} is being sent to VNPay by another request: "
                          "retry with the same Idempotency-Key in a moment",
                          field="Idempotency-Key", extra={"refund_id": refund_id})
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


async def _load(store: EventStore, refund_id: str) -> tuple[Payment, Refund]:
    async with store.db.session() as session:
        row = await session.get(Refund, refund_id)
        assert row is not None
        payment = await session.get(Payment, row.payment_id)
        assert payment is not None
    return payment, row


async def _by_key(uow: UnitOfWork, key: str | None) -> Refund | None:
    if key is None:
        return None
    return (await uow.session.exec(
        select(Refund).where(Refund.idempotency_key == key).with_for_update())).first()


def _same_request(existing: Refund, request: RefundRequest) -> None:
    if existing.payment_id != request.payment_id or (
            request.amount is not None and request.amount != existing.amount):
        raise unprocessable(
            "idempotency-key-reused",
            f"Idempotency-Key was used for a refund of {existing.amount} đồng of payment "
            f"{existing.payment_id}; a different refund needs a new key", "Idempotency-Key")


async def _new_refund(uow: UnitOfWork, payment: Payment, request: RefundRequest, *,
                      actor: Actor, now: datetime) -> Refund:
    if payment.status != SUCCEEDED:
        raise conflict("payment-not-paid", f"payment {payment.payment_id} is {payment.status}",
                       field="payment_id")
    pending = (await uow.session.exec(select(Refund).where(
        Refund.payment_id == payment.payment_id, Refund.status == PENDING))).first()
    if pending is not None:
        raise Problem(409, "refund-pending", "Conflict",
                      f"refund {pending.refund_id} of {pending.amount} đồng of this payment "
                      "is waiting for VNPay's answer: retry it with its Idempotency-Key first",
                      field="payment_id", extra={"refund_id": pending.refund_id})
    remaining = payment.amount - payment.refunded
    amount = remaining if request.amount is None else request.amount
    if amount <= 0 or amount > remaining:
        raise unprocessable("refund-amount",
                            f"refund must be between 1 and the {remaining} đồng not yet "
                            "refunded", "amount")
    refund_id = new_id("RFD")
    row = Refund(refund_id=refund_id, payment_id=payment.payment_id,
                 invoice_id=payment.invoice_id, account_id=payment.account_id, amount=amount,
                 refund_ref=refund_id, reason=request.reason, refunded_at=now,
                 refunded_by=actor.id, status=PENDING, request_id=_request_id(),
                 idempotency_key=request.idempotency_key or f"auto-{refund_id}")
    uow.session.add(row)
    return row


def _request_id() -> str:
    # vnp_RequestId: 1-32 letters or digits, unique per day (vnpay.md §3).
    return uuid.uuid4().hex


async def _settle_with_vnpay(store: EventStore, payment: Payment, row: Refund,
                             retried: bool, *, config: VNPayConfig, actor: Actor,
                             now: datetime, server_ip: str) -> Refund:
    if retried:
        outcome = await _reconcile(config, payment, row, now=now, server_ip=server_ip)
        log.info("billing.refund_reconciled", refund_id=row.refund_id, outcome=outcome)
        if outcome is RefundOutcome.APPLIED:
            return await _record(store, row, None, actor=actor, now=now)
        if outcome is RefundOutcome.REJECTED:
            await _fail(store, row, "95")
            raise _refused(row)
        if outcome is RefundOutcome.UNCLEAR:
            raise _still_pending(row, "VNPay's querydr answer does not show whether it "
                                 "was applied; a person must reconcile it")
        # Not applied: ask again, under a new request id written before the call.
        row = await _new_attempt(store, row)
    try:
        answer = await _send(config, payment, row, actor=actor, now=now, server_ip=server_ip)
    except VNPayError as exc:
        log.warning("billing.refund_unanswered", refund_id=row.refund_id, error=str(exc))
        raise _still_pending(row, f"VNPay did not answer ({type(exc).__name__})") from exc
    if not answer.ok:
        await _fail(store, row, answer.response_code)
        raise _refused(row, answer)
    return await _record(store, row, answer, actor=actor, now=now)


async def _reconcile(config: VNPayConfig, payment: Payment, row: Refund, *, now: datetime,
                     server_ip: str) -> RefundOutcome:
    try:
        async with VNPayClient(config) as client:
            answer = await client.querydr(
                txn_ref=payment.txn_ref, order_info=f"Truy van {payment.payment_id}",
                transaction_date=payment.created_at, ip_addr=server_ip, now=now,
                transaction_no=payment.gateway_transaction_no or "",
                request_id=_request_id())
    except VNPayError as exc:
        raise _still_pending(row, f"VNPay's querydr did not answer ({type(exc).__name__})"
                             ) from exc
    if not answer.ok:
        return RefundOutcome.UNCLEAR
    return refund_outcome(amount=row.amount, refunded_before=payment.refunded,
                          transaction_type=answer.transaction_type,
                          transaction_status=answer.transaction_status,
                          gateway_amount=answer.amount_vnd)


async def _send(config: VNPayConfig, payment: Payment, row: Refund, *, actor: Actor,
                now: datetime, server_ip: str) -> VNPayApiResponse:
    kind = (RefundKind.FULL if inv.refund_kind_full(row.amount, payment.amount,
                                                    payment.refunded)
            else RefundKind.PARTIAL)
    assert row.request_id is not None
    async with VNPayClient(config) as client:
        return await client.refund(
            txn_ref=payment.txn_ref, amount_vnd=row.amount, kind=kind,
            order_info=f"Hoan tien {payment.payment_id}", transaction_date=payment.created_at,
            create_by=actor.id, ip_addr=server_ip, now=now,
            transaction_no=payment.gateway_transaction_no or "0", request_id=row.request_id)


async def _locked_refund(uow: UnitOfWork, refund_id: str) -> Refund:
    row = (await uow.session.exec(
        select(Refund).where(Refund.refund_id == refund_id).with_for_update())).first()
    assert row is not None
    return row


async def _new_attempt(store: EventStore, row: Refund) -> Refund:
    async with store.unit_of_work() as uow:
        fresh = await _locked_refund(uow, row.refund_id)
        fresh.request_id = _request_id()
        fresh.attempts += 1
        uow.session.add(fresh)
        await uow.commit()
    return (await _load(store, row.refund_id))[1]


async def _fail(store: EventStore, row: Refund, code: str) -> None:
    async with store.unit_of_work() as uow:
        fresh = await _locked_refund(uow, row.refund_id)
        if fresh.status == PENDING:
            fresh.status, fresh.response_code = FAILED, code[:10]
            uow.session.add(fresh)
            await uow.commit()
    row.status, row.response_code = FAILED, code[:10]  # for the problem shown


async def _record(store: EventStore, row: Refund, answer: VNPayApiResponse | None, *,
                  actor: Actor, now: datetime) -> Refund:
    """VNPay refunded: the refund's event, ledger entry and sums, once."""
    async with store.unit_of_work() as uow:
        payment = await locked_payment(uow, row.payment_id)
        fresh = await _locked_refund(uow, row.refund_id)
        if fresh.status == PENDING:  # a concurrent retry may have recorded it already
            ref = (answer.transaction_no if answer is not None else "") or fresh.refund_id
            fresh.response_code = answer.response_code if answer is not None else "00"
            await _apply(uow, payment, fresh, refund_ref=ref, actor=actor, now=now)
            await uow.commit()
    return (await _load(store, row.refund_id))[1]


async def _apply(uow: UnitOfWork, payment: Payment, row: Refund, *, refund_ref: str,
                 actor: Actor, now: datetime) -> None:
    row.status, row.refund_ref, row.refunded_at = SUCCEEDED, refund_ref, now
    uow.session.add(row)
    payment.refunded += row.amount
    uow.session.add(payment)
    invoice = await locked_invoice(uow, payment.invoice_id)
    invoice.paid -= row.amount
    uow.session.add(invoice)
    await uow.record(payment.payment_id, [PaymentRefunded(
        payment_id=payment.payment_id, invoice_id=payment.invoice_id,
        account_id=payment.account_id, amount=row.amount, refund_ref=refund_ref,
        refunded_at=now,
    )], actor=actor)
    await post_entry(uow, inv.refund_entry(row.refund_id, payment.payment_id,
                                           payment.account_id, row.amount,
                                           CASH_ACCOUNTS[payment.channel]), actor=actor)


def _still_pending(row: Refund, why: str) -> Problem:
    return Problem(504, "refund-pending", "Refund not confirmed",
                   f"refund {row.refund_id} of {row.amount} đồng is recorded as pending: "
                   f"{why}. Retry with the same Idempotency-Key: it is reconciled with "
                   "VNPay, never sent twice", field="Idempotency-Key",
                   extra={"refund_id": row.refund_id, "refund_status": PENDING})


def _refused(row: Refund, answer: VNPayApiResponse | None = None) -> Problem:
    code = answer.response_code if answer is not None else row.response_code
    message = f": {answer.message}" if answer is not None else ""
    return Problem(502, "vnpay-refused", "VNPay refused the refund",
                   f"VNPay answered {code}{message}; refund {row.refund_id} not done",
                   extra={"vnp_ResponseCode": code, "refund_id": row.refund_id})
