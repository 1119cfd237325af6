"""Monthly invoicing: one invoice per account and period, issued at most once.

The invoice id is ``periods.invoice_id(account, period)`` and its event stream must be
empty when it is issued (expected version 0), so re-running a month — even two runs at
once — issues nothing new. Loads of the month are marked with the invoice that billed
them; a load that arrives after its month was invoiced (a device that synced late) stays
unbilled and is reported by the run as ``late_charges``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.events.billing import InvoiceIssued
from wastetrail_runtime.problems import conflict
from wastetrail_runtime.store import ConcurrencyConflict, EventStore, UnitOfWork

from wastetrail_billing.adapters.ledger import locked_balance, post_entry
from wastetrail_billing.adapters.tables import Account, Charge, Invoice, Refusal
from wastetrail_billing.domain import invoicing as inv
from wastetrail_billing.domain import ledger
from wastetrail_billing.domain.fees import (
    Account as FeeAccount,
)
from wastetrail_billing.domain.fees import (
    ChargedQuantity,
    Credit,
    InvoiceError,
    compute_invoice,
)
from wastetrail_billing.domain.periods import (
    VIETNAM,
    billing_month,
    invoice_id,
    period_closed,
)
from wastetrail_billing.domain.publishing import tariff_from_json
from wastetrail_billing.domain.tariff import Category
from wastetrail_billing.handlers.tariffs import latest_document, tariff_for_commune


class InvoiceSkipped(Exception):
    """An account that cannot be invoiced for the period, and why."""


@dataclass
class RunResult:
    """What one invoicing run did."""

    period: str
    issued: list[str] = field(default_factory=list)
    already_issued: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    late_charges: int = 0


async def _candidates(session: AsyncSession, period: str
                      ) -> tuple[list[Account], set[str], set[str]]:
    """Accounts to consider, invoices already issued, and charged accounts not opened yet."""
    month = billing_month(period)
    month_end = datetime.combine(month.last_day, datetime.max.time(), VIETNAM)
    charged = set((await session.exec(
        select(Charge.account_id).where(Charge.period == period).distinct()
    )).all())
    accounts = list((await session.exec(
        select(Account).where(or_(
            col(Account.account_id).in_(charged),
            (col(Account.active)) & (col(Account.opened_at) <= month_end),
        )).order_by(col(Account.account_id))
    )).all())
    issued = set((await session.exec(
        select(Invoice.account_id).where(Invoice.period == period)
    )).all())
    unknown = charged - {a.account_id for a in accounts}
    return accounts, issued, unknown


async def run_invoicing(store: EventStore, period: str, *, actor: Actor,
                        now: datetime) -> RunResult:
    """Invoice every account for a month that has ended; idempotent."""
    if not period_closed(period, now):
        raise conflict("period-open",
                       f"{period} has not ended yet in Vietnam; invoice it after its last day",
                       field="period")
    result = RunResult(period=period)
    async with store.db.session() as session:
        accounts, issued, unknown = await _candidates(session, period)
    for account_id in sorted(unknown):
        result.skipped.append({"account_id": account_id,
                               "reason": "loads collected but the account is not opened yet "
                                         "(GeneratorRegistered not received)"})
    for account in accounts:
        if account.account_id in issued:
            result.already_issued += 1
            continue
        try:
            async with store.unit_of_work() as uow:
                issued_id = await issue_invoice(uow, account, period, actor=actor, now=now)
                await uow.commit()
            result.issued.append(issued_id)
        except ConcurrencyConflict:
            result.already_issued += 1  # another run issued it first
        except IntegrityError as exc:
            if "invoices" not in str(exc.orig):
                raise
            result.already_issued += 1  # another run's invoice row won the key
        except InvoiceSkipped as exc:
            result.skipped.append({"account_id": account.account_id, "reason": str(exc)})
    async with store.db.session() as session:
        result.late_charges = int((await session.exec(
            select(func.count()).select_from(Charge).join(
                Invoice, (col(Invoice.account_id) == col(Charge.account_id))
                & (col(Invoice.period) == col(Charge.period)))
            .where(Charge.period == period, col(Charge.invoice_id).is_(None))
        )).one())
    return result


_QUANTITY_INDEX = re.compile(r"^quantities\[(\d+)\]")


async def issue_invoice(uow: UnitOfWork, account: Account, period: str, *, actor: Actor,
                        now: datetime) -> str:
    """Compute, record and post one account's invoice for the period."""
    the_id = invoice_id(account.account_id, period)
    tariff_id = await tariff_for_commune(uow, account.commune)
    if tariff_id is None:
        raise InvoiceSkipped(f"no tariff is assigned to commune {account.commune!r} "
                             "(nor a default '*')")
    document = await latest_document(uow.session, tariff_id)
    if document is None:
        raise InvoiceSkipped(f"tariff {tariff_id!r} has no published document")
    tariff = tariff_from_json(document.document_json)
    charges = list((await uow.session.exec(
        select(Charge).where(Charge.account_id == account.account_id, Charge.period == period,
                             col(Charge.invoice_id).is_(None))
        .order_by(col(Charge.collected_at), col(Charge.load_id)).with_for_update()
    )).all())
    refusals = int((await uow.session.exec(
        select(func.count()).select_from(Refusal)
        .where(Refusal.account_id == account.account_id, Refusal.period == period)
    )).one())
    credit_account = ledger.credit(account.account_id)
    available = max(0, ledger.natural_balance(
        credit_account, await locked_balance(uow.session, credit_account)))
    quantities = [ChargedQuantity(collected_on=c.collected_on, category=Category(c.category),
                                  grams=c.grams, litres=c.litres, bag_size=c.bag_size)
                  for c in charges]
    try:
        bill = compute_invoice(
            FeeAccount(commune_class=account.commune_class,
                       customer_class=account.customer_class),
            billing_month(period), tariff, quantities,
            [Credit(reference=credit_account, amount=available)] if available else [],
        )
    except InvoiceError as exc:
        where = exc.field
        match = _QUANTITY_INDEX.match(where)
        if match is not None:
            where = f"load {charges[int(match.group(1))].load_id}" + where[match.end():]
        raise InvoiceSkipped(f"{where}: {exc.detail}") from exc
    collected = sum(c.grams for c in charges)
    uow.session.add(Invoice(
        invoice_id=the_id, account_id=account.account_id, period=period, tariff_id=tariff_id,
        tariff_revision=document.revision, tariff_sha256=document.document_sha256,
        lines_json=json.dumps({
            "lines": [line.model_dump(mode="json") for line in bill.lines],
            "uncharged": [u.model_dump(mode="json") for u in bill.uncharged],
            "vat_lines": [v.model_dump(mode="json") for v in bill.vat_lines],
        }),
        charged_grams=inv.charged_grams(bill, collected), refused_count=refusals,
        subtotal=bill.subtotal, vat=bill.vat, credits=bill.credits_applied,
        total=bill.amount_due, paid=0, issued_at=now,
    ))
    for charge in charges:
        charge.invoice_id = the_id
        uow.session.add(charge)
    await uow.record(the_id, [InvoiceIssued(
        invoice_id=the_id, account_id=account.account_id, period=period, tariff_id=tariff_id,
        lines=tuple(inv.event_line(line) for line in bill.lines),
        charged_grams=inv.charged_grams(bill, collected), subtotal=bill.subtotal,
        vat=bill.vat, credits=bill.credits_applied, total=bill.amount_due, issued_at=now,
    )], actor=actor, expected_version=0)
    issue = inv.issue_entry(the_id, account.account_id, bill)
    if issue is not None:
        await post_entry(uow, issue, actor=actor)
    applied = inv.credit_entry(the_id, account.account_id, bill.credits_applied)
    if applied is not None:
        await post_entry(uow, applied, actor=actor, non_negative=frozenset({credit_account}))
    return the_id
