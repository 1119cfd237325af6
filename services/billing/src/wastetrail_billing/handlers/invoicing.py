"""Monthly invoicing: one invoice per account and period, issued at most once.

The invoice id is ``periods.invoice_id(account, period)`` and its event stream must be
empty when it is issued (expected version 0), so re-running a month — even two runs at
once — issues nothing new. An invoice bills the account's loads of the month that were
projected when it was issued: it records the last charge number then
(``Invoice.charges_through``, see ``Charge.seq``). A load that arrives after its month
was invoiced (a device that synced late) is numbered after it and billed by a
supplementary invoice (``SUP-<month>-<n>-<account>``, see ``fees.compute_supplement``)
when that month or one of the two after it is invoiced (again): the month priced with
every load, less what the
earlier invoices billed, so tiers and rounding come out as if the load had been on time.
Loads that even so stay unbilled (their account skipped) are reported as ``late_charges``.

To make "projected when it was issued" exact, a transaction that issues invoices first
takes ``LOCK TABLE charges IN SHARE MODE``: it waits for projections that are inserting
charges to commit, and holds new ones back until it commits, so no charge can be numbered
below the watermark and still be invisible to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import exists, func, or_, text
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.events.billing import InvoiceIssued
from wastetrail_contracts.pricing.fees import (
    Account as FeeAccount,
)
from wastetrail_contracts.pricing.fees import (
    BillingMonth,
    ChargedQuantity,
    Credit,
    InvoiceError,
    compute_invoice,
    compute_supplement,
    price_boundaries,
)
from wastetrail_contracts.pricing.fees import Invoice as FeeInvoice
from wastetrail_contracts.pricing.periods import (
    VIETNAM,
    billing_month,
    invoice_id,
    months_before,
    period_closed,
    supplement_id,
)
from wastetrail_contracts.pricing.publishing import tariff_from_json
from wastetrail_contracts.pricing.tariff import Category, Tariff
from wastetrail_runtime.problems import conflict
from wastetrail_runtime.store import ConcurrencyConflict, EventStore, UnitOfWork

from wastetrail_billing.adapters.ledger import (
    copy_rows,
    locked_balance,
    post_entry,
    write_entries,
)
from wastetrail_billing.adapters.tables import (
    Account,
    Charge,
    CommuneTariff,
    Invoice,
    LedgerAccount,
    Refusal,
    TariffDocument,
)
from wastetrail_billing.domain import invoicing as inv
from wastetrail_billing.domain import ledger
from wastetrail_billing.domain.ledger import JournalEntry
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
    supplements: list[str] = field(default_factory=list)
    late_charges: int = 0


CHUNK_SIZE = 10_000
"""Accounts invoiced per transaction (one bulk write of each kind per chunk)."""

SUPPLEMENT_MONTHS = 2
"""A run for a month also bills the late loads of the months this far before it (and of
the month itself, when it is run again); an older month's late loads are billed by
running that month again."""

CHUNKS_IN_FLIGHT = 2
"""Chunk transactions run at once (one computing while the other waits for the database)."""


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

    async def boundaries(self, session: AsyncSession, month: BillingMonth
                         ) -> tuple[date, ...]:
        """Every assigned tariff's price boundaries in the month (``fees.price_boundaries``).

        Summing loads between the union of all of them is exact for every tariff.
        """
        days: set[date] = set()
        for tariff_id in sorted(set(self.by_commune.values())):
            found = await self.document(session, tariff_id)
            days.update(price_boundaries(found[1], month) if found is not None
                        else (month.first_day, month.last_day + timedelta(1)))
        if not days:
            days = {month.first_day, month.last_day + timedelta(1)}
        return tuple(sorted(days))


async def run_invoicing(store: EventStore, period: str, *, actor: Actor,
                        now: datetime) -> RunResult:
    """Invoice every account for a month that has ended; idempotent.

    Accounts are invoiced ``CHUNK_SIZE`` per transaction, set-based: PostgreSQL sums each
    account's loads per category, bag size and span of days between tariff changes (see
    ``fees.price_boundaries``), the fees are computed from those sums, and the invoices,
    postings and events of the chunk are written in bulk. Each chunk commits on its own,
    so a run that stops half-way has issued whole chunks, and running it again issues the
    rest (an account's invoice is issued at most once). An account that can't be invoiced
    (no tariff, a load the tariff can't price) is skipped without touching the rest of its
    chunk; if the chunk's transaction fails as a whole (another run issued some of its
    invoices first, a balance check, any database error), it is rolled back and its
    accounts are invoiced one by one, one transaction each.
    """
    if not period_closed(period, now):
        raise conflict("period-open",
                       f"{period} has not ended yet in Vietnam; invoice it after its last day",
                       field="period")
    result = RunResult(period=period)
    month = billing_month(period)
    async with store.db.session() as session:
        unknown = await _unknown(session, period)
        tariffs = await _Tariffs.load(session)
        bounds = await tariffs.boundaries(session, month)
    for account_id in sorted(unknown):
        result.skipped.append({"account_id": account_id,
                               "reason": "loads collected but the account is not opened yet "
                                         "(GeneratorRegistered not received)"})
    # Two chunks in flight: while one waits for PostgreSQL (its sums, COPY, the events'
    # insert at commit) the other computes its fees. Chunks hold disjoint accounts; the
    # rows both touch (revenue and VAT balances, chain heads) are locked in one order.
    in_flight: deque[tuple[list[_Candidate], asyncio.Task[RunResult]]] = deque()
    try:
        async for page, issued in _candidate_pages(store, period, CHUNK_SIZE):
            chunk = [account for account in page if account.account_id not in issued]
            result.already_issued += len(page) - len(chunk)
            if not chunk:
                continue
            in_flight.append((chunk, asyncio.create_task(_issue_chunk(
                store, tariffs, bounds, chunk, period, actor=actor, now=now))))
            if len(in_flight) >= CHUNKS_IN_FLIGHT:
                await _settle(store, *in_flight.popleft(), period, actor=actor, now=now,
                              result=result)
        while in_flight:
            await _settle(store, *in_flight.popleft(), period, actor=actor, now=now,
                          result=result)
    finally:
        # A run that dies (cancelled, killed) leaves no chunk half-done: each is one
        # transaction, rolled back when its task is cancelled.
        for _, task in in_flight:
            task.cancel()
        for _, task in in_flight:
            with contextlib.suppress(BaseException):
                await task
    late: dict[str, int] = {}
    for late_period in months_before(period, SUPPLEMENT_MONTHS):
        await _issue_supplements(store, late_period, actor=actor, now=now, result=result)
        async with store.db.session() as session:
            late.update((await _late_accounts(session, late_period)).items())
    result.late_charges = sum(late.values())
    return result


async def _settle(store: EventStore, chunk: list[_Candidate], task: asyncio.Task[RunResult],
                  period: str, *, actor: Actor, now: datetime, result: RunResult) -> None:
    """Wait for a chunk's transaction; replay its accounts one by one if it failed."""
    try:
        done = await task
    except Exception:  # replayed one by one below, which re-raises
        # Whatever sank the chunk (an invoice another run issued first, a deadlock, a
        # bad row) is sorted out per account by the one-transaction-per-account path,
        # which has the exact semantics of a run without chunks.
        await _issue_one_by_one(store, chunk, period, actor=actor, now=now, result=result)
        return
    result.issued.extend(done.issued)
    result.skipped.extend(done.skipped)


async def _late_accounts(session: AsyncSession, period: str) -> dict[str, int]:
    """Accounts with loads of the period numbered after their newest invoice's watermark,
    and how many."""
    iv = Invoice.__table__.c  # type: ignore[attr-defined]
    oldest = (await session.execute(
        core_select(func.min(iv.charges_through)).where(iv.period == period))).scalar()
    if oldest is None:
        return {}  # nothing invoiced yet: no load can be late
    # Only the charges numbered after the oldest watermark can be late: read those first
    # (ix_charges_period_seq), then match them with their accounts' invoices. Written as
    # a materialized CTE so that PostgreSQL does not probe the charges of every invoice.
    rows = await session.execute(text(
        "WITH recent AS MATERIALIZED (SELECT account_id, seq FROM charges "
        "WHERE period = :period AND seq > :oldest), "
        "covered AS (SELECT account_id, max(charges_through) AS through FROM invoices "
        "WHERE period = :period AND account_id IN (SELECT account_id FROM recent) "
        "GROUP BY account_id) "
        "SELECT recent.account_id, count(*) FROM recent JOIN covered "
        "ON covered.account_id = recent.account_id WHERE recent.seq > covered.through "
        "GROUP BY recent.account_id ORDER BY recent.account_id"
    ), {"period": period, "oldest": int(oldest)})
    return {str(r[0]): int(r[1]) for r in rows}


async def _issue_supplements(store: EventStore, period: str, *, actor: Actor, now: datetime,
                             result: RunResult) -> None:
    """A supplementary invoice for every invoiced account with late loads, one
    transaction each (late loads are few)."""
    async with store.db.session() as session:
        late = await _late_accounts(session, period)
    for account_id in late:
        try:
            async with store.unit_of_work() as uow:
                issued = await issue_supplement(uow, account_id, period, actor=actor, now=now)
                await uow.commit()
        except ConcurrencyConflict:
            continue  # another run issued this supplement first
        except IntegrityError as exc:
            if "invoices" not in str(exc.orig):
                raise
            continue  # another run's supplement row won the key
        except InvoiceSkipped as exc:
            result.skipped.append({"account_id": account_id, "reason": str(exc)})
            continue
        if issued is not None:
            result.supplements.append(issued)


async def issue_supplement(uow: UnitOfWork, account_id: str, period: str, *, actor: Actor,
                           now: datetime) -> str | None:
    """Bill an account's loads of the month that arrived after its last invoice for it.

    Priced with the tariff revision the month's invoice used; returns the supplement's
    id, or None when no load is late (any more).
    """
    session = uow.session
    through = await _charges_watermark(session)
    earlier = list((await session.exec(
        select(Invoice).where(Invoice.account_id == account_id, Invoice.period == period)
        .order_by(col(Invoice.supplement)))).all())
    if not earlier:
        return None  # the month's invoice is issued by the run itself
    covered = max(i.charges_through for i in earlier)
    loads = await _loads_of(session, account_id, period, through)
    billed = [load for load in loads if load.seq <= covered]
    if len(loads) == len(billed):
        return None
    account = await session.get(Account, account_id)
    if account is None:  # pragma: no cover — invoiced accounts are never deleted
        return None
    first = earlier[0]
    document = await session.get(TariffDocument, (first.tariff_id, first.tariff_revision))
    if document is None:  # pragma: no cover — tariff documents are append-only
        raise InvoiceSkipped(f"tariff {first.tariff_id!r} revision {first.tariff_revision} "
                             "is gone")
    tariff = tariff_from_json(document.document_json)
    month = billing_month(period)
    fee_account = _fee_account(account.commune_class, account.customer_class)
    credit_account = ledger.credit(account_id)
    available = max(0, ledger.natural_balance(
        credit_account, await locked_balance(session, credit_account)))
    try:
        full = compute_invoice(fee_account, month, tariff, loads)
        bill = compute_supplement(
            full, compute_invoice(fee_account, month, tariff, billed),
            [Credit(reference=credit_account, amount=available)] if available else [])
    except InvoiceError as exc:
        raise InvoiceSkipped(f"late loads of {period}: {_naming_the_load(exc, loads)}"
                             ) from exc
    number = max(i.supplement for i in earlier) + 1
    the_id = supplement_id(account_id, period, number)
    late_grams = sum(c.grams for c in loads) - sum(c.grams for c in billed)
    charged = inv.charged_grams(bill, late_grams)
    session.add(Invoice(
        invoice_id=the_id, account_id=account_id, period=period, tariff_id=first.tariff_id,
        tariff_revision=document.revision, tariff_sha256=document.document_sha256,
        lines_json=_lines_json(bill), charged_grams=charged, refused_count=0,
        subtotal=bill.subtotal, vat=bill.vat, credits=bill.credits_applied,
        total=bill.amount_due, paid=0, issued_at=now, charges_through=through,
        supplement=number,
    ))
    await uow.record(the_id, [InvoiceIssued(
        invoice_id=the_id, account_id=account_id, period=period, tariff_id=first.tariff_id,
        lines=tuple(inv.event_line(line) for line in bill.lines),
        charged_grams=charged, subtotal=bill.subtotal, vat=bill.vat,
        credits=bill.credits_applied, total=bill.amount_due, issued_at=now,
    )], actor=actor, expected_version=0)
    issue = inv.issue_entry(the_id, account_id, bill)
    if issue is not None:
        await post_entry(uow, issue, actor=actor)
    applied = inv.credit_entry(the_id, account_id, bill.credits_applied)
    if applied is not None:
        await post_entry(uow, applied, actor=actor, non_negative=frozenset({credit_account}))
    return the_id


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


async def _charges_watermark(session: AsyncSession) -> int:
    """Lock out charge inserts until commit; the last charge number now in use.

    SHARE mode conflicts with the ROW EXCLUSIVE lock every INSERT takes, so this waits
    for the projections inserting charges to commit and holds new ones back: every
    charge numbered up to the returned value is visible to this transaction, and every
    charge inserted later is numbered above it.
    """
    await session.execute(text("LOCK TABLE charges IN SHARE MODE"))
    last = (await session.execute(text(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence('charges', 'seq')::regclass)"
    ))).scalar()
    return int(last or 0)


_INVOICE_COLUMNS = (
    "invoice_id", "account_id", "period", "tariff_id", "tariff_revision", "tariff_sha256",
    "lines_json", "charged_grams", "refused_count", "subtotal", "vat", "credits", "total",
    "paid", "issued_at", "charges_through", "supplement",
)

# Each account's loads of the period summed per category, bag size and span of days
# between price boundaries (width_bucket over the sorted boundaries): fees.compute_invoice
# prices those sums exactly as it prices the loads one by one. The range on account_id
# reads the chunk through ix_charges_account_period; accounts of the range that are not
# in the chunk (already invoiced, not opened) are ignored by the caller.
_AGGREGATE = text(
    "SELECT account_id, category, bag_size, min(collected_on), sum(grams), sum(litres), "
    "count(litres) = count(*), count(*) FROM charges "
    "WHERE period = :period AND account_id >= :first AND account_id <= :last "
    "AND seq <= :through "
    "GROUP BY account_id, category, bag_size, "
    "width_bucket(collected_on, CAST(:bounds AS date[]))"
)


async def _issue_chunk(store: EventStore, tariffs: _Tariffs, bounds: tuple[date, ...],
                       chunk: list[_Candidate], period: str, *, actor: Actor,
                       now: datetime) -> RunResult:
    """Invoice a chunk of accounts in one transaction; what ``issue_invoice`` does for one.

    Reads, one statement each: the chunk's loads summed per account (under the charges
    lock, see ``_charges_watermark``), refusal counts, and the credit balances that exist
    (locked). Writes: the invoices (COPY), the postings via ``write_entries`` and the
    events sealed by one commit. Skipped accounts write nothing.
    """
    done = RunResult(period=period)
    rf = Refusal.__table__.c  # type: ignore[attr-defined]
    lg = LedgerAccount.__table__.c  # type: ignore[attr-defined]
    month = billing_month(period)
    async with store.unit_of_work() as uow:
        session = uow.session
        through = await _charges_watermark(session)
        first, last = chunk[0].account_id, chunk[-1].account_id
        sums: dict[str, list[ChargedQuantity]] = {}
        collected: dict[str, int] = {}
        for row in await session.execute(_AGGREGATE, {
                "period": period, "first": first, "last": last, "through": through,
                "bounds": list(bounds)}):
            account_id, category, bag_size, day, grams, litres, all_litres, count = row
            sums.setdefault(account_id, []).append(ChargedQuantity(
                collected_on=day, category=Category(category), grams=int(grams),
                litres=int(litres) if all_litres else None, bag_size=bag_size,
                bag_count=int(count)))
            collected[account_id] = collected.get(account_id, 0) + int(grams)
        refused = {str(r[0]): int(r[1]) for r in await session.execute(
            core_select(rf.account_id, func.count())
            .where(rf.period == period, rf.account_id >= first, rf.account_id <= last)
            .group_by(rf.account_id))}
        # Only the credit accounts that exist: one that does not holds nothing to apply.
        credit_ids = [ledger.credit(a.account_id) for a in chunk]
        credits = {str(r[0]): int(r[1]) for r in await session.execute(
            core_select(lg.account, lg.balance).where(lg.account.in_(credit_ids))
            .order_by(lg.account).with_for_update())}
        invoice_rows: list[tuple[object, ...]] = []
        issued_events: list[tuple[str, InvoiceIssued]] = []
        entries: list[tuple[JournalEntry, frozenset[str]]] = []
        entries_of: list[list[str]] = []
        for account in chunk:
            try:
                computed = await _compute(
                    session, tariffs, account, period, month,
                    sums.get(account.account_id, []),
                    credits.get(ledger.credit(account.account_id), 0))
            except _NeedsLoads:
                # The sums can't be priced: price the loads one by one, which names the
                # load at fault exactly as issue_invoice does.
                loads = await _loads_of(session, account.account_id, period, through)
                try:
                    computed = await _compute(
                        session, tariffs, account, period, month, loads,
                        credits.get(ledger.credit(account.account_id), 0))
                except InvoiceSkipped as exc:
                    done.skipped.append({"account_id": account.account_id,
                                         "reason": str(exc)})
                    continue
            except InvoiceSkipped as exc:
                done.skipped.append({"account_id": account.account_id, "reason": str(exc)})
                continue
            the_id, tariff_id, document, bill = computed
            charged = inv.charged_grams(bill, collected.get(account.account_id, 0))
            invoice_rows.append((
                the_id, account.account_id, period, tariff_id, document.revision,
                document.document_sha256, _lines_json(bill), charged,
                refused.get(account.account_id, 0), bill.subtotal, bill.vat,
                bill.credits_applied, bill.amount_due, 0, now, through, 0,
            ))
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
        await copy_rows(session, Invoice.__table__, _INVOICE_COLUMNS, invoice_rows)  # type: ignore[attr-defined]
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


async def _loads_of(session: AsyncSession, account_id: str, period: str, through: int
                    ) -> list[_Quantity]:
    """An account's loads of the period up to the watermark, one quantity each."""
    ch = Charge.__table__.c  # type: ignore[attr-defined]
    rows = await session.execute(
        core_select(ch.load_id, ch.collected_on, ch.category, ch.grams, ch.litres,
                    ch.bag_size, ch.seq)
        .where(ch.account_id == account_id, ch.period == period, ch.seq <= through)
        .order_by(ch.collected_at, ch.load_id))
    return [_Quantity(collected_on=r[1], category=Category(r[2]), grams=r[3], litres=r[4],
                      bag_size=r[5], load_id=r[0], seq=r[6]) for r in rows]


class _Quantity(ChargedQuantity):
    """A single load's quantity, with its id (for error messages) and charge number."""

    load_id: str
    seq: int


class _NeedsLoads(Exception):
    """Summed quantities that can't be priced: retry with the loads one by one."""


def _lines_json(bill: FeeInvoice) -> str:
    """The invoice's lines, uncharged quantities and VAT lines as stored for the web page.

    One call into pydantic's serializer: the same JSON values (views.py json.loads them)
    as dumping each line to a dict and json.dumps-ing those, at half the cost.
    """
    return bill.model_dump_json(include={"lines", "uncharged", "vat_lines"})


async def _compute(session: AsyncSession, tariffs: _Tariffs, account: _Candidate,
                   period: str, month: BillingMonth, quantities: Sequence[ChargedQuantity],
                   credit_raw: int) -> tuple[str, str, TariffDocument, FeeInvoice]:
    """One account's bill, as ``issue_invoice`` computes it (same skip reasons).

    ``quantities`` are either sums of loads (raises _NeedsLoads when they can't be
    priced, so the caller retries with the loads) or single loads (``_Quantity``, whose
    errors name the load, as issue_invoice's do).
    """
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
    try:
        bill = compute_invoice(
            _fee_account(account.commune_class, account.customer_class),
            month, tariff, quantities,
            [Credit(reference=credit_account, amount=available)] if available else [],
        )
    except InvoiceError as exc:
        match = _QUANTITY_INDEX.match(exc.field)
        if match is None:
            raise InvoiceSkipped(f"{exc.field}: {exc.detail}") from exc
        load = quantities[int(match.group(1))]
        if not isinstance(load, _Quantity):
            raise _NeedsLoads from exc
        raise InvoiceSkipped(f"load {load.load_id}{exc.field[match.end():]}: {exc.detail}"
                             ) from exc
    return invoice_id(account.account_id, period), tariff_id, document, bill


_QUANTITY_INDEX = re.compile(r"^quantities\[(\d+)\]")


def _naming_the_load(exc: InvoiceError, loads: Sequence[_Quantity]) -> str:
    """The error with ``quantities[i]`` replaced by the load's id."""
    where = exc.field
    match = _QUANTITY_INDEX.match(where)
    if match is not None:
        where = f"load {loads[int(match.group(1))].load_id}" + where[match.end():]
    return f"{where}: {exc.detail}"


@functools.lru_cache(maxsize=64)
def _fee_account(commune_class: str, customer_class: str) -> FeeAccount:
    """The tariff's view of an account class (a few distinct ones in a million accounts)."""
    return FeeAccount(commune_class=commune_class, customer_class=customer_class)


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
    through = await _charges_watermark(uow.session)
    loads = await _loads_of(uow.session, account.account_id, period, through)
    refusals = int((await uow.session.exec(
        select(func.count()).select_from(Refusal)
        .where(Refusal.account_id == account.account_id, Refusal.period == period)
    )).one())
    credit_account = ledger.credit(account.account_id)
    available = max(0, ledger.natural_balance(
        credit_account, await locked_balance(uow.session, credit_account)))
    try:
        bill = compute_invoice(
            FeeAccount(commune_class=account.commune_class,
                       customer_class=account.customer_class),
            billing_month(period), tariff, loads,
            [Credit(reference=credit_account, amount=available)] if available else [],
        )
    except InvoiceError as exc:
        raise InvoiceSkipped(_naming_the_load(exc, loads)) from exc
    collected = sum(c.grams for c in loads)
    uow.session.add(Invoice(
        invoice_id=the_id, account_id=account.account_id, period=period, tariff_id=tariff_id,
        tariff_revision=document.revision, tariff_sha256=document.document_sha256,
        lines_json=_lines_json(bill),
        charged_grams=inv.charged_grams(bill, collected), refused_count=refusals,
        subtotal=bill.subtotal, vat=bill.vat, credits=bill.credits_applied,
        total=bill.amount_due, paid=0, issued_at=now, charges_through=through,
    ))
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
