"""Read models: accounts, invoices, payments, credits, and the auditors' balances."""

from __future__ import annotations

import inspect
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from wastetrail_billing.adapters.ledger import balance, postings_of
from wastetrail_billing.adapters.tables import (
    Account,
    Invoice,
    LedgerAccount,
    LedgerPosting,
    Payment,
    Refund,
)
from wastetrail_billing.domain import ledger
from wastetrail_billing.epr_link import epr_attr
from wastetrail_billing.handlers.payments import (
    SUCCEEDED,
    invoice_status,
    outstanding,
    overpaid,
)


def invoice_view(invoice: Invoice, *, detail: bool = False) -> dict[str, Any]:
    """An invoice as the API shows it."""
    view: dict[str, Any] = {
        "invoice_id": invoice.invoice_id, "account_id": invoice.account_id,
        "period": invoice.period, "supplement": invoice.supplement,
        "tariff_id": invoice.tariff_id,
        "tariff_revision": invoice.tariff_revision, "tariff_sha256": invoice.tariff_sha256,
        "charged_grams": invoice.charged_grams, "refused_count": invoice.refused_count,
        "subtotal": invoice.subtotal, "vat": invoice.vat, "credits": invoice.credits,
        "total": invoice.total, "paid": invoice.paid, "outstanding": outstanding(invoice),
        "overpaid": overpaid(invoice),
        "status": invoice_status(invoice), "issued_at": invoice.issued_at.isoformat(),
    }
    if detail:
        view.update(json.loads(invoice.lines_json))
    return view


def payment_view(payment: Payment) -> dict[str, Any]:
    """A payment as the API shows it."""
    return {
        "payment_id": payment.payment_id, "invoice_id": payment.invoice_id,
        "account_id": payment.account_id, "amount": payment.amount,
        "channel": payment.channel, "status": payment.status, "txn_ref": payment.txn_ref,
        "response_code": payment.response_code,
        "transaction_status": payment.transaction_status,
        "gateway_transaction_no": payment.gateway_transaction_no,
        "bank_code": payment.bank_code, "refunded": payment.refunded,
        "created_at": payment.created_at.isoformat(),
        "settled_at": payment.settled_at.isoformat() if payment.settled_at else None,
        "reconcile_reason": payment.reconcile_reason,
        "late_transaction_no": payment.late_transaction_no,
        "late_paid_at": payment.late_paid_at.isoformat() if payment.late_paid_at else None,
    }


def refund_view(refund: Refund) -> dict[str, Any]:
    """A refund as the API shows it."""
    return {
        "refund_id": refund.refund_id, "payment_id": refund.payment_id,
        "invoice_id": refund.invoice_id, "account_id": refund.account_id,
        "amount": refund.amount, "refund_ref": refund.refund_ref, "reason": refund.reason,
        "refunded_at": refund.refunded_at.isoformat(), "status": refund.status,
        "attempts": refund.attempts,
    }


async def account_view(session: AsyncSession, account: Account) -> dict[str, Any]:
    """An account with what it owes and the credit waiting for its next invoice."""
    receivable = await balance(session, ledger.receivable(account.account_id))
    credit_account = ledger.credit(account.account_id)
    credit = ledger.natural_balance(credit_account, await balance(session, credit_account))
    return {
        "account_id": account.account_id, "generator_id": account.generator_id,
        "code": account.code, "name": account.name, "commune": account.commune,
        "commune_class": account.commune_class, "customer_class": account.customer_class,
        "active": account.active, "opened_at": account.opened_at.isoformat(),
        "balance_due": receivable, "credit_available": credit,
    }


async def invoices_of(session: AsyncSession, account_id: str, *, limit: int = 50,
                      offset: int = 0) -> list[Invoice]:
    """An account's invoices, newest period first."""
    return list((await session.exec(
        select(Invoice).where(Invoice.account_id == account_id)
        .order_by(col(Invoice.period).desc()).limit(limit).offset(offset)
    )).all())


async def payments_of_invoice(session: AsyncSession, invoice_id: str) -> list[Payment]:
    """An invoice's payments, oldest first."""
    return list((await session.exec(
        select(Payment).where(Payment.invoice_id == invoice_id)
        .order_by(col(Payment.created_at))
    )).all())


async def refunds_of(session: AsyncSession, account_id: str) -> list[Refund]:
    """Payment refunds of an account, newest first."""
    return list((await session.exec(
        select(Refund).where(Refund.account_id == account_id, Refund.status == SUCCEEDED)
        .order_by(col(Refund.refunded_at).desc())
    )).all())


async def credits_of(session: AsyncSession, account_id: str, *, limit: int = 50,
                     offset: int = 0) -> list[dict[str, Any]]:
    """Movements of the account's credit: EPR refunds in (+), credits applied to bills (−)."""
    account = ledger.credit(account_id)
    return [{
        "entry_id": p.entry_id, "amount": ledger.natural_balance(account, p.amount),
        "reference": p.reference, "posted_at": p.posted_at.isoformat(),
    } for p in await postings_of(session, account, limit=limit, offset=offset)]


async def audit_balances(session: AsyncSession) -> dict[str, Any]:
    """Per account: invoiced, paid, refunded, credited and the ledger balance; per producer
    the EPR scheme's balances.

    The figures mean what the auditors' derivation from the log means
    (wastetrail_audit.balances): ``invoiced`` is Σ invoice totals (net of the credits
    applied on them), ``credited`` is every EPR credit the account received (its credit
    account's credit postings), and ``balance`` is the account's net position in the
    ledger — receivable plus credit account, negative when it holds unused credit. The
    figures come from the invoice, payment and posting tables and the balance from the
    ledger's running balances, so the audit's identity
    balance == invoiced + Σ credits applied − credited − paid + refunded is a check.
    """
    figures: defaultdict[str, dict[str, int]] = defaultdict(
        lambda: {"invoiced": 0, "paid": 0, "refunded": 0, "credited": 0, "balance": 0})
    for account_id in (await session.exec(select(Account.account_id))).all():
        figures[account_id]["balance"] = 0  # every opened account appears, even unbilled
    for account_id, invoiced in (await session.exec(
        select(Invoice.account_id, func.sum(Invoice.total)).group_by(Invoice.account_id)
    )).all():
        figures[account_id]["invoiced"] = int(invoiced or 0)
    credit_accounts = {ledger.credit(a): a for a in figures}
    for account, received in (await session.exec(
        select(LedgerPosting.account, func.sum(-LedgerPosting.amount))
        .where(col(LedgerPosting.account).in_(list(credit_accounts)), LedgerPosting.amount < 0)
        .group_by(LedgerPosting.account)
    )).all():
        figures[credit_accounts[account]]["credited"] = int(received or 0)
    for account_id, paid in (await session.exec(
        select(Payment.account_id, func.sum(Payment.amount))
        .where(Payment.status == SUCCEEDED).group_by(Payment.account_id)
    )).all():
        figures[account_id]["paid"] = int(paid or 0)
    for account_id, refunded in (await session.exec(
        select(Refund.account_id, func.sum(Refund.amount))
        .where(Refund.status == SUCCEEDED).group_by(Refund.account_id)
    )).all():
        figures[account_id]["refunded"] = int(refunded or 0)
    owners = {ledger.receivable(a): a for a in figures} | credit_accounts
    for account, raw in (await session.exec(
        select(LedgerAccount.account, LedgerAccount.balance)
        .where(col(LedgerAccount.account).in_(list(owners)))
    )).all():
        figures[owners[account]]["balance"] += int(raw)
    producers: object = {}
    producer_balances = epr_attr("producer_balances")
    if callable(producer_balances):
        producers = producer_balances(session)
        if inspect.isawaitable(producers):
            producers = await producers
    return {"accounts": dict(sorted(figures.items())), "producers": producers}
