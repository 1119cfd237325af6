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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import bindparam, exists, func, insert, or_, text, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.events.billing import InvoiceIssued
from wastetrail_runtime.problems import conflict
from wastetrail_runtime.store import ConcurrencyConflict, EventStore, UnitOfWork

from wastetrail_billing.adapters.ledger import (
    lock_balances,
    locked_balance,
    post_entry,
    write_entries,
)
from wastetrail_billing.adapters.tables import (
    Account,
    Charge,
    CommuneTariff,
    Invoice,
    Refusal,
    TariffDocument,
)
from wastetrail_billing.domain import invoicing as inv
from wastetrail_billing.domain import ledger
from wastetrail_billing.domain.fees import (
    Account as FeeAccount,
)
from wastetrail_billing.domain.fees import (
    BillingMonth,
    ChargedQuantity,
    Credit,
    InvoiceError,
    compute_invoice,
)
from wastetrail_billing.domain.fees import Invoice as FeeInvoice
from wastetrail_billing.domain.ledger import JournalEntry
from wastetrail_billing.domain.periods import (
    VIETNAM,
    billing_month,
    invoice_id,
    period_closed,
)
from wastetrail_billing.domain.publishing import tariff_from_json
from wastetrail_billing.domain.tariff import Category, Tariff
from wastetrail_billing.handlers.tariffs import (
    DEFAULT_COMMUNE,
    latest_document,
    tariff_for_commune,
)


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


CHUNK_SIZE = 500
"""Accounts invoiced per transaction (one bulk write of each kind per chunk)."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    """What invoicing needs of an account (plain columns: no ORM object per account)."""

    account_id: str
    commune: str
    commune_class: str
    customer_class: str


async def _unknown(session: AsyncSession, period: str) -> set[str]:
    """Accounts charged in the period that are not opened yet (no accounts row)."""
    a = Account.__table__.c  # type: ignore[attr-defined]
    c = Charge.__table__.c  # type: ignore[attr-defined]
    return set((await session.execute(
        core_select(c.account_id).where(c.period == period, ~exists().where(
            a.account_id == c.account_id)).distinct()
    )).scalars().all())


async def _candidate_pages(store: EventStore, period: str, size: int
                           ) -> AsyncIterator[tuple[list[_Candidate], set[str]]]:
    """Accounts to consider, by account id, ``size`` at a time, each page with the ones
    already invoiced for the period.

    Pages (keyset on the primary key) rather than one list: a million accounts and their
    invoice ids would otherwise all be held in memory at once. An account is considered
    when it has charges in the period or was active and opened by the month's end.
    """
    month = billing_month(period)
    month_end = datetime.combine(month.last_day, datetime.max.time(), VIETNAM)
    a = Account.__table__.c  # type: ignore[attr-defined]
    c = Charge.__table__.c  # type: ignore[attr-defined]
    # A correlated EXISTS (an index probe per account) rather than IN (SELECT ...): the
    # latter would hash every charge of the period again for each page.
    charged = exists().where(c.account_id == a.account_id, c.period == period)
    after: str | None = None
    while True:
        async with store.db.session() as session:
            query = (core_select(a.account_id, a.commune, a.commune_class, a.customer_class)
                     .where(or_(a.active & (a.opened_at <= month_end), charged)))
            if after is not None:
                query = query.where(a.account_id > after)
            page = [_Candidate(*row) for row in await session.execute(
                query.order_by(a.account_id).limit(size))]
            if not page:
                return
            issued = set((await session.exec(
                select(Invoice.account_id).where(
                    Invoice.period == period,
                    col(Invoice.account_id).in_([x.account_id for x in page]))
            )).all())
        yield page, issued
        after = page[-1].account_id


class _Tariffs:
    """Commune assignments and parsed tariff documents, read once per run."""

    def __init__(self, by_commune: dict[str, str]) -> None:
        self.by_commune = by_commune
        self.documents: dict[str, tuple[TariffDocument, Tariff] | None] = {}

    @classmethod
    async def load(cls, session: AsyncSession) -> _Tariffs:
        rows = await session.exec(select(CommuneTariff))
        return cls({row.commune: row.tariff_id for row in rows})

    def tariff_id(self, commune: str) -> str | None:
        """As ``tariff_for_commune``: the commune's own tariff, else the default, else None."""
        for key in (commune, DEFAULT_COMMUNE):
            if key in self.by_commune:
                return self.by_commune[key]
        return None

    async def document(self, session: AsyncSession, tariff_id: str
                       ) -> tuple[TariffDocument, Tariff] | None:
        if tariff_id not in self.documents:
            document = await latest_document(session, tariff_id)
            self.documents[tariff_id] = (
                None if document is None
                else (document, tariff_from_json(document.document_json)))
        return self.documents[tariff_id]


async def run_invoicing(store: EventStore, period: str, *, actor: Actor,
                        now: datetime) -> RunResult:
    """Invoice every account for a month that has ended; idempotent.

    Accounts are invoiced ``CHUNK_SIZE`` per transaction with bulk reads and writes. An
    account that can't be invoiced (no tariff, a load the tariff can't price) is skipped
    without touching the rest of its chunk; if the chunk's transaction fails as a whole
    (another run issued some of its invoices first, a balance check, any database error),
    it is rolled back and its accounts are invoiced one by one, one transaction each.
    """
    if not period_closed(period, now):
        raise conflict("period-open",
                       f"{period} has not ended yet in Vietnam; invoice it after its last day",
                       field="period")
    result = RunResult(period=period)
    async with store.db.session() as session:
        unknown = await _unknown(session, period)
        tariffs = await _Tariffs.load(session)
    for account_id in sorted(unknown):
        result.skipped.append({"account_id": account_id,
                               "reason": "loads collected but the account is not opened yet "
                                         "(GeneratorRegistered not received)"})
    async for page, issued in _candidate_pages(store, period, CHUNK_SIZE):
        chunk = [account for account in page if account.account_id not in issued]
        result.already_issued += len(page) - len(chunk)
        if not chunk:
            continue
        try:
            done = await _issue_chunk(store, tariffs, chunk, period, actor=actor, now=now)
        except Exception:  # replayed one by one below, which re-raises
            # Whatever sank the chunk (an invoice another run issued first, a deadlock, a
            # bad row) is sorted out per account by the one-transaction-per-account path,
            # which has the exact semantics of a run without chunks.
            await _issue_one_by_one(store, chunk, period, actor=actor, now=now,
                                    result=result)
            continue
        result.issued.extend(done.issued)
        result.skipped.extend(done.skipped)
    async with store.db.session() as session:
        result.late_charges = int((await session.exec(
            select(func.count()).select_from(Charge).join(
                Invoice, (col(Invoice.account_id) == col(Charge.account_id))
                & (col(Invoice.period) == col(Charge.period)))
            .where(Charge.period == period, col(Charge.invoice_id).is_(None))
        )).one())
    return result


async def _issue_one_by_one(store: EventStore, chunk: list[_Candidate], period: str, *,
                            actor: Actor, now: datetime, result: RunResult) -> None:
    """The reference path: one transaction per account (used when a chunk fails)."""
    async with store.db.session() as session:
        rows = await session.exec(select(Account).where(
            col(Account.account_id).in_([a.account_id for a in chunk])))
        by_id = {row.account_id: row for row in rows}
    for candidate in chunk:
        account = by_id.get(candidate.account_id)
        if account is None:
            continue  # deleted since the run started: nothing to invoice
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


@dataclass(frozen=True)
class _Load:
    load_id: str
    collected_on: date
    category: str
    grams: int
    litres: int | None
    bag_size: str | None


async def _issue_chunk(store: EventStore, tariffs: _Tariffs, chunk: list[_Candidate],
                       period: str, *, actor: Actor, now: datetime) -> RunResult:
    """Invoice a chunk of accounts in one transaction; what ``issue_invoice`` does for one.

    Reads: the chunk's unbilled charges (locked, as issue_invoice locks them), refusal
    counts and credit balances (locked), each in one statement. Writes: one insert of
    invoices, one update of charges, the postings via ``write_entries``, and the events
    sealed by one commit. Skipped accounts write nothing.
    """
    done = RunResult(period=period)
    ch = Charge.__table__.c  # type: ignore[attr-defined]
    rf = Refusal.__table__.c  # type: ignore[attr-defined]
    async with store.unit_of_work() as uow:
        session = uow.session
        ids = [a.account_id for a in chunk]
        loads: dict[str, list[_Load]] = {}
        for row in await session.execute(
            core_select(ch.account_id, ch.load_id, ch.collected_on, ch.category, ch.grams,
                   ch.litres, ch.bag_size)
            .where(ch.account_id.in_(ids), ch.period == period, ch.invoice_id.is_(None))
            .order_by(ch.account_id, ch.collected_at, ch.load_id).with_for_update()
        ):
            loads.setdefault(row[0], []).append(_Load(*row[1:]))
        refused = {str(r[0]): int(r[1]) for r in await session.execute(
            core_select(rf.account_id, func.count()).where(rf.account_id.in_(ids),
                                                      rf.period == period)
            .group_by(rf.account_id))}
        balances = await lock_balances(session, sorted(ledger.credit(i) for i in ids))
        month = billing_month(period)
        invoice_rows: list[dict[str, object]] = []
        billed: list[dict[str, str]] = []
        issued_events: list[tuple[str, InvoiceIssued]] = []
        entries: list[tuple[JournalEntry, frozenset[str]]] = []
        entries_of: list[list[str]] = []
        for account in chunk:
            try:
                computed = await _compute(session, tariffs, account, period, month,
                                          loads.get(account.account_id, []),
                                          balances[ledger.credit(account.account_id)])
            except InvoiceSkipped as exc:
                done.skipped.append({"account_id": account.account_id, "reason": str(exc)})
                continue
            the_id, tariff_id, document, bill, collected = computed
            account_loads = loads.get(account.account_id, [])
            charged = inv.charged_grams(bill, collected)
            invoice_rows.append(dict(
                invoice_id=the_id, account_id=account.account_id, period=period,
                tariff_id=tariff_id, tariff_revision=document.revision,
                tariff_sha256=document.document_sha256,
                lines_json=json.dumps({
                    "lines": [line.model_dump(mode="json") for line in bill.lines],
                    "uncharged": [u.model_dump(mode="json") for u in bill.uncharged],
                    "vat_lines": [v.model_dump(mode="json") for v in bill.vat_lines],
                }),
                charged_grams=charged, refused_count=refused.get(account.account_id, 0),
                subtotal=bill.subtotal, vat=bill.vat, credits=bill.credits_applied,
                total=bill.amount_due, paid=0, issued_at=now,
            ))
            billed.extend({"b_load": load.load_id, "b_invoice": the_id}
                          for load in account_loads)
            issued_events.append((the_id, InvoiceIssued(
                invoice_id=the_id, account_id=account.account_id, period=period,
                tariff_id=tariff_id,
                lines=tuple(inv.event_line(line) for line in bill.lines),
                charged_grams=charged, subtotal=bill.subtotal, vat=bill.vat,
                credits=bill.credits_applied, total=bill.amount_due, issued_at=now,
            )))
            mine: list[str] = []
            issue = inv.issue_entry(the_id, account.account_id, bill)
            if issue is not None:
                entries.append((issue, frozenset()))
                mine.append(issue.entry_id)
            applied = inv.credit_entry(the_id, account.account_id, bill.credits_applied)
            if applied is not None:
                entries.append((applied, frozenset({ledger.credit(account.account_id)})))
                mine.append(applied.entry_id)
            entries_of.append(mine)
            done.issued.append(the_id)
        if not invoice_rows:
            return done
        await session.execute(insert(Invoice.__table__), invoice_rows)  # type: ignore[attr-defined]
        if billed:
            # Only the rows read (and locked) above: a load committed since then by the
            # projection stays unbilled, exactly as with one account per transaction.
            await _mark_billed(session, store.db.is_postgres, billed, period,
                               [str(row["account_id"]) for row in invoice_rows])
        posted = await write_entries(uow, entries)
        await uow.prefetch_versions([entry.entry_id for entry, _ in entries])
        events = iter(posted)
        # Each invoice's event, then its entries' events: the order of the unchunked run.
        for (the_id, event), mine in zip(issued_events, entries_of, strict=True):
            await uow.record(the_id, [event], actor=actor, expected_version=0)
            for entry_id in mine:
                await uow.record(entry_id, [next(events)], actor=actor)
        await uow.commit()
    return done


async def _mark_billed(session: AsyncSession, postgres: bool, billed: list[dict[str, str]],
                       period: str, accounts: list[str]) -> None:
    """Set each listed load's invoice id: one statement on PostgreSQL."""
    if postgres:
        # The account/period filter is redundant for correctness but makes PostgreSQL
        # read the chunk's rows through ix_charges_account_period; joined on load_id
        # alone it hashes a sequential scan of the whole charges table per chunk.
        await session.execute(
            text("UPDATE charges SET invoice_id = b.invoice_id "
                 "FROM unnest(CAST(:loads AS varchar[]), CAST(:invoices AS varchar[])) "
                 "AS b(load_id, invoice_id) WHERE charges.load_id = b.load_id "
                 "AND charges.account_id = ANY(CAST(:accounts AS varchar[])) "
                 "AND charges.period = :period"),
            {"loads": [b["b_load"] for b in billed],
             "invoices": [b["b_invoice"] for b in billed],
             "accounts": accounts, "period": period},
        )
        return
    ch = Charge.__table__.c  # type: ignore[attr-defined]
    await session.execute(
        update(Charge.__table__).where(ch.load_id == bindparam("b_load"))  # type: ignore[attr-defined]
        .values(invoice_id=bindparam("b_invoice")),
        billed,
    )


async def _compute(session: AsyncSession, tariffs: _Tariffs, account: _Candidate,
                   period: str, month: BillingMonth, loads: list[_Load], credit_raw: int,
                   ) -> tuple[str, str, TariffDocument, FeeInvoice, int]:
    """One account's bill, as ``issue_invoice`` computes it (same skip reasons)."""
    tariff_id = tariffs.tariff_id(account.commune)
    if tariff_id is None:
        raise InvoiceSkipped(f"no tariff is assigned to commune {account.commune!r} "
                             "(nor a default '*')")
    found = await tariffs.document(session, tariff_id)
    if found is None:
        raise InvoiceSkipped(f"tariff {tariff_id!r} has no published document")
    document, tariff = found
    credit_account = ledger.credit(account.account_id)
    available = max(0, ledger.natural_balance(credit_account, credit_raw))
    quantities = [ChargedQuantity(collected_on=c.collected_on, category=Category(c.category),
                                  grams=c.grams, litres=c.litres, bag_size=c.bag_size)
                  for c in loads]
    try:
        bill = compute_invoice(
            FeeAccount(commune_class=account.commune_class,
                       customer_class=account.customer_class),
            month, tariff, quantities,
            [Credit(reference=credit_account, amount=available)] if available else [],
        )
    except InvoiceError as exc:
        where = exc.field
        match = _QUANTITY_INDEX.match(where)
        if match is not None:
            where = f"load {loads[int(match.group(1))].load_id}" + where[match.end():]
        raise InvoiceSkipped(f"{where}: {exc.detail}") from exc
    return (invoice_id(account.account_id, period), tariff_id, document, bill,
            sum(c.grams for c in loads))


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
