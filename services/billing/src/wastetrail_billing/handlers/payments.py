"""Payments: VNPay (payment URL, IPN, querydr) and cash recorded by a cashier; refunds
are in ``refunds``.

Only a verified IPN marks a VNPay payment paid (vnpay.md §2). The IPN locks the payment
row (SELECT ... FOR UPDATE) before deciding, so a repeated or concurrent IPN finds the
payment no longer pending and answers 02 without touching the ledger: the ledger changes
exactly once per payment.

One VNPay order per invoice at a time: while an order is open on VNPay's page (until its
vnp_ExpireDate), starting another one for the same invoice is refused (409
``payment-pending``), so a second tab or a second click cannot charge the household twice.
Money can still arrive for an invoice that is already settled (cash taken at the counter
while the order was open, an IPN after a retry): VNPay has taken it, so it is confirmed
and recorded like any payment, and the surplus stays on the account as a credit balance
(``balance_due`` below zero, the invoice's ``overpaid``) until it is refunded.

A successful IPN for a payment already recorded as failed (VNPay took the money after
all) is kept on the payment and flagged ``late-success-after-failure`` for a cashier to
reconcile; it is never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.enums import PaymentChannel
from wastetrail_contracts.events.billing import (
    PaymentFailed,
    PaymentInitiated,
    PaymentSucceeded,
)
from wastetrail_contracts.pricing.periods import VIETNAM
from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.problems import Problem, conflict, not_found, unprocessable
from wastetrail_runtime.store import EventStore, UnitOfWork

from wastetrail_billing.adapters.ledger import post_entry
from wastetrail_billing.adapters.tables import Invoice, Payment
from wastetrail_billing.adapters.vnpay import (
    IPN_ALREADY_CONFIRMED,
    IPN_UNKNOWN_ERROR,
    IpnDecision,
    IpnOrder,
    VNPayApiResponse,
    VNPayClient,
    VNPayConfig,
    VNPayError,
    decide_ipn,
    parse_vnp_date,
    payment_succeeded,
)
from wastetrail_billing.domain import invoicing as inv
from wastetrail_billing.domain import ledger
from wastetrail_billing.handlers.common import VNPAY_IPN, new_id

log = get_logger(__name__)

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
CASH_ACCOUNTS = {PaymentChannel.VNPAY.value: ledger.CASH_VNPAY,
                 PaymentChannel.CASH.value: ledger.CASH_CASHIER,
                 PaymentChannel.BANK_TRANSFER.value: ledger.CASH_BANK}


def invoice_status(invoice: Invoice) -> str:
    """open, partially_paid, paid (or settled: nothing was ever due)."""
    if invoice.total == 0:
        return "settled"
    if invoice.paid >= invoice.total:
        return "paid"
    return "partially_paid" if invoice.paid > 0 else "open"


def outstanding(invoice: Invoice) -> int:
    """What is still to pay on the invoice (never negative)."""
    return max(0, invoice.total - invoice.paid)


def overpaid(invoice: Invoice) -> int:
    """What was paid on the invoice beyond its total (never negative)."""
    return max(0, invoice.paid - invoice.total)


async def open_vnpay_payments(session: AsyncSession, invoice_ids: list[str], *,
                              now: datetime, expire_after: timedelta) -> dict[str, Payment]:
    """Per invoice, its newest VNPay order that may still be paid on VNPay's page: pending
    and created less than ``expire_after`` (its vnp_ExpireDate) ago."""
    if not invoice_ids:
        return {}
    rows = await session.exec(
        select(Payment).where(
            col(Payment.invoice_id).in_(invoice_ids), Payment.status == PENDING,
            Payment.channel == PaymentChannel.VNPAY.value,
            col(Payment.created_at) > now - expire_after)
        .order_by(col(Payment.created_at)))
    return {payment.invoice_id: payment for payment in rows}  # the newest wins


async def locked_invoice(uow: UnitOfWork, invoice_id: str) -> Invoice:
    """The invoice with its row locked, or a 404."""
    invoice = (await uow.session.exec(
        select(Invoice).where(Invoice.invoice_id == invoice_id).with_for_update()
    )).first()
    if invoice is None:
        raise not_found("invoice", invoice_id, field="invoice_id")
    return invoice


async def locked_payment(uow: UnitOfWork, payment_id: str) -> Payment:
    """The payment with its row locked, or a 404."""
    payment = (await uow.session.exec(
        select(Payment).where(Payment.payment_id == payment_id).with_for_update()
    )).first()
    if payment is None:
        raise not_found("payment", payment_id, field="payment_id")
    return payment


def order_info_for(invoice_id: str) -> str:
    """vnp_OrderInfo: ASCII Vietnamese without diacritics (vnpay.md §1)."""
    return f"Thanh toan hoa don {invoice_id}"


async def start_vnpay_payment(
    uow: UnitOfWork, invoice: Invoice, *, config: VNPayConfig, actor: Actor, now: datetime,
    ip_addr: str, locale: Literal["vn", "en"], expire_after: timedelta,
) -> tuple[Payment, str]:
    """Create a pending payment of what is outstanding and its signed VNPay URL.

    The caller holds the invoice's row lock, so two starts for one invoice run one after
    the other and the second sees the first's open order.
    """
    due = outstanding(invoice)
    if due <= 0:
        raise conflict("invoice-settled", f"invoice {invoice.invoice_id} has nothing to pay",
                       field="invoice_id")
    open_order = (await open_vnpay_payments(uow.session, [invoice.invoice_id], now=now,
                                            expire_after=expire_after)).get(invoice.invoice_id)
    if open_order is not None:
        until = (open_order.created_at + expire_after).astimezone(VIETNAM)
        raise Problem(
            409, "payment-pending", "Conflict",
            f"payment {open_order.payment_id} of {open_order.amount} đồng for invoice "
            f"{invoice.invoice_id} is still open on VNPay until {until:%H:%M} (Vietnam "
            "time): finish it there, or start a new one after that",
            field="invoice_id",
            extra={"payment_id": open_order.payment_id,
                   "expires_at": (open_order.created_at + expire_after).isoformat()})
    payment_id = new_id("PAY")
    order_info = order_info_for(invoice.invoice_id)
    async with VNPayClient(config) as client:
        url = client.build_payment_url(txn_ref=payment_id, amount_vnd=due,
                                       order_info=order_info, ip_addr=ip_addr, now=now,
                                       locale=locale, expire_after=expire_after)
    payment = Payment(payment_id=payment_id, invoice_id=invoice.invoice_id,
                      account_id=invoice.account_id, amount=due,
                      channel=PaymentChannel.VNPAY.value, txn_ref=payment_id,
                      order_info=order_info, status=PENDING, created_at=now,
                      recorded_by=actor.id)
    uow.session.add(payment)
    await uow.record(payment_id, [PaymentInitiated(
        payment_id=payment_id, invoice_id=invoice.invoice_id, account_id=invoice.account_id,
        amount=due, channel=PaymentChannel.VNPAY, txn_ref=payment_id, initiated_at=now,
    )], actor=actor, expected_version=0)
    return payment, url


async def _settle(uow: UnitOfWork, payment: Payment, *, actor: Actor, now: datetime) -> None:
    """Money arrived: post Dr cash / Cr receivable and count it on the invoice.

    More than is outstanding (the invoice was settled meanwhile) is still money received:
    the receivable goes below zero by the surplus, a credit balance of the account.
    """
    invoice = await locked_invoice(uow, payment.invoice_id)
    surplus = payment.amount - outstanding(invoice)
    if surplus > 0:
        log.warning("billing.overpaid", payment_id=payment.payment_id,
                    invoice_id=invoice.invoice_id, surplus=surplus)
    invoice.paid += payment.amount
    uow.session.add(invoice)
    await post_entry(uow, inv.payment_entry(payment.payment_id, payment.account_id,
                                            payment.amount, CASH_ACCOUNTS[payment.channel]),
                     actor=actor)


async def handle_ipn(store: EventStore, config: VNPayConfig | None,
                     params: Mapping[str, str]) -> IpnDecision:
    """Answer one IPN call (vnpay.md §2), recording a new outcome exactly once."""
    if config is None:
        return IPN_UNKNOWN_ERROR
    try:
        async with VNPayClient(config) as client:
            valid = client.verify_callback(params)
        async with store.unit_of_work() as uow:
            payment = None
            if valid:
                payment = (await uow.session.exec(
                    select(Payment).where(Payment.txn_ref == params.get("vnp_TxnRef", ""),
                                          Payment.channel == PaymentChannel.VNPAY.value)
                    .with_for_update()
                )).first()
            order = None if payment is None else IpnOrder(amount_vnd=payment.amount,
                                                          pending=payment.status == PENDING)
            decision = decide_ipn(params, signature_valid=valid, order=order)
            if (payment is not None and decision == IPN_ALREADY_CONFIRMED
                    and payment.status == FAILED and payment_succeeded(params)):
                # VNPay took the money after we recorded a failure: never drop that.
                await _flag_late_success(uow, payment, params, now=store.clock.now())
                return decision
            if not decision.record or payment is None:
                return decision
            now = store.clock.now()
            await _record_outcome(uow, payment, params, paid=decision.paid, now=now)
            await uow.commit()
            return decision
    except Exception:
        # VNPay retries an IPN answered 99; nothing was committed.
        log.exception("vnpay.ipn_failed", txn_ref=params.get("vnp_TxnRef"))
        return IPN_UNKNOWN_ERROR


async def _flag_late_success(uow: UnitOfWork, payment: Payment, params: Mapping[str, str],
                             *, now: datetime) -> None:
    """Record a successful IPN of a payment recorded as failed, for a person to reconcile.

    The failure was recorded (and published) first; the money VNPay says it took is kept
    on the payment — its transaction number and time — and the payment is flagged
    ``late-success-after-failure``. Nothing is posted: whether the household is credited
    or refunded is the cashier's decision, after querydr. A repeated IPN changes nothing.
    """
    if payment.reconcile_reason is not None:
        return
    pay_date = params.get("vnp_PayDate", "")
    payment.reconcile_reason = "late-success-after-failure"
    payment.late_transaction_no = (params.get("vnp_TransactionNo") or "")[:80] or None
    payment.late_paid_at = parse_vnp_date(pay_date) if pay_date else now
    uow.session.add(payment)
    await uow.commit()
    log.error("vnpay.late_success_after_failure", payment_id=payment.payment_id,
              transaction_no=payment.late_transaction_no, amount=payment.amount)


async def _record_outcome(uow: UnitOfWork, payment: Payment, params: Mapping[str, str], *,
                          paid: bool, now: datetime) -> None:
    payment.response_code = params.get("vnp_ResponseCode", "")[:10]
    payment.transaction_status = params.get("vnp_TransactionStatus", "")[:10]
    payment.bank_code = params.get("vnp_BankCode") or None
    payment.gateway_transaction_no = params.get("vnp_TransactionNo") or None
    pay_date = params.get("vnp_PayDate", "")
    when = parse_vnp_date(pay_date) if pay_date else now
    payment.settled_at = when
    if paid:
        payment.status = SUCCEEDED
        event: PaymentSucceeded | PaymentFailed = PaymentSucceeded(
            payment_id=payment.payment_id, invoice_id=payment.invoice_id,
            account_id=payment.account_id, amount=payment.amount,
            channel=PaymentChannel.VNPAY, gateway_transaction_no=payment.gateway_transaction_no,
            bank_code=payment.bank_code, paid_at=when)
    else:
        payment.status = FAILED
        event = PaymentFailed(
            payment_id=payment.payment_id, invoice_id=payment.invoice_id,
            account_id=payment.account_id, amount=payment.amount,
            response_code=payment.response_code or "99",
            transaction_status=payment.transaction_status or "02", failed_at=when)
    uow.session.add(payment)
    await uow.record(payment.payment_id, [event], actor=VNPAY_IPN, expected_version=1)
    if paid:
        await _settle(uow, payment, actor=VNPAY_IPN, now=now)


async def record_cash_payment(uow: UnitOfWork, invoice_id: str, amount: int, *,
                              actor: Actor, now: datetime) -> Payment:
    """A cashier received cash for an invoice: at most what is outstanding."""
    invoice = await locked_invoice(uow, invoice_id)
    due = outstanding(invoice)
    if due <= 0:
        raise conflict("invoice-settled", f"invoice {invoice_id} has nothing to pay",
                       field="invoice_id")
    if amount > due:
        raise unprocessable("overpayment", f"{amount} đồng is more than the {due} đồng due",
                            "amount")
    payment_id = new_id("CASH")
    payment = Payment(payment_id=payment_id, invoice_id=invoice_id,
                      account_id=invoice.account_id, amount=amount,
                      channel=PaymentChannel.CASH.value, txn_ref=payment_id,
                      order_info=order_info_for(invoice_id), status=SUCCEEDED, created_at=now,
                      settled_at=now, recorded_by=actor.id)
    uow.session.add(payment)
    await uow.record(payment_id, [
        PaymentInitiated(payment_id=payment_id, invoice_id=invoice_id,
                         account_id=invoice.account_id, amount=amount,
                         channel=PaymentChannel.CASH, txn_ref=payment_id, initiated_at=now),
        PaymentSucceeded(payment_id=payment_id, invoice_id=invoice_id,
                         account_id=invoice.account_id, amount=amount,
                         channel=PaymentChannel.CASH, paid_at=now),
    ], actor=actor, expected_version=0)
    await _settle(uow, payment, actor=actor, now=now)
    return payment


async def query_payment(payment: Payment, *, config: VNPayConfig | None, now: datetime,
                        server_ip: str) -> VNPayApiResponse:
    """Ask VNPay what it knows of a payment (querydr); changes nothing here."""
    if config is None:
        raise vnpay_not_configured()
    if payment.channel != PaymentChannel.VNPAY.value:
        raise conflict("not-a-vnpay-payment", f"payment {payment.payment_id} was "
                       f"{payment.channel}", field="payment_id")
    try:
        async with VNPayClient(config) as client:
            return await client.querydr(
                txn_ref=payment.txn_ref, order_info=f"Truy van {payment.payment_id}",
                transaction_date=payment.created_at, ip_addr=server_ip, now=now,
                transaction_no=payment.gateway_transaction_no or "",
                request_id=new_id("Q").replace("-", "")[:32],
            )
    except VNPayError as exc:
        raise Problem(502, "vnpay-unavailable", "VNPay did not answer", str(exc)) from exc


def vnpay_not_configured() -> Problem:
    """503: the service has no VNPay merchant credentials."""
    return Problem(503, "vnpay-not-configured", "VNPay is not configured",
                   "set WASTETRAIL_VNPAY_TMN_CODE and WASTETRAIL_VNPAY_HASH_SECRET")
