"""Posting journal entries to the ledger tables, with balance checks under row locks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.events.billing import LedgerEntryPosted
from wastetrail_contracts.events.billing import Posting as PostingPayload
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.tables import LedgerAccount, LedgerPosting
from wastetrail_billing.domain.ledger import JournalEntry, natural_balance


class InsufficientBalance(Exception):
    """Posting would take an account that must stay non-negative below zero."""

    def __init__(self, account: str, balance: int, amount: int) -> None:
        super().__init__(
            f"account {account!r} holds {balance} đồng; posting {amount} would overdraw it"
        )
        self.account = account
        self.balance = balance
        self.amount = amount


async def _lock_accounts(session: AsyncSession, accounts: list[str]) -> dict[str, int]:
    """Create missing balance rows, then lock them in a stable order (no deadlocks)."""
    table = LedgerAccount.__table__  # type: ignore[attr-defined]
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "postgresql"
    # One executemany (batched into multi-row INSERTs by SQLAlchemy, with a cached
    # compiled statement) instead of one statement per account: an invoicing chunk
    # locks about a thousand accounts at once.
    values = [{"account": account, "balance": 0} for account in accounts]
    if values:
        if dialect == "postgresql":
            await session.execute(pg_insert(table).on_conflict_do_nothing(), values)
        else:
            await session.execute(sqlite_insert(table).on_conflict_do_nothing(), values)
    rows = await session.execute(
        select(table.c.account, table.c.balance)
        .where(table.c.account.in_(accounts))
        .order_by(table.c.account)
        .with_for_update()
    )
    return {str(r.account): int(r.balance) for r in rows}


async def post_entry(
    uow: UnitOfWork,
    entry: JournalEntry,
    *,
    actor: Actor,
    non_negative: frozenset[str] = frozenset(),
) -> None:
    """Write a balanced entry's postings and record ``LedgerEntryPosted`` on its stream.

    ``non_negative`` names accounts whose balance, seen from their natural side (see
    ``wastetrail_billing.domain.ledger.natural_balance``), must not go below zero: e.g.
    ``household:X:credit`` (credit-natured) may not be debited past what it holds. Every
    touched account's balance row is locked first (SELECT ... FOR UPDATE, in sorted order
    so concurrent entries can't deadlock), so two entries cannot both spend the same
    balance. Raises InsufficientBalance(account, natural balance before, amount drawn).
    """
    session = uow.session
    now = uow.store.clock.now()
    legs: dict[str, int] = {}
    for p in entry.postings:
        legs[p.account] = legs.get(p.account, 0) + p.amount
    balances = await _lock_accounts(session, sorted(legs))
    for account in sorted(non_negative & legs.keys()):
        before = natural_balance(account, balances[account])
        after = natural_balance(account, balances[account] + legs[account])
        # Only an entry that draws the account down is refused (a deposit into an account
        # that is somehow already negative must still be allowed to repair it).
        if after < 0 and after < before:
            raise InsufficientBalance(account, before, before - after)
    table = LedgerAccount.__table__  # type: ignore[attr-defined]
    for account, delta in legs.items():
        await session.execute(
            table.update().where(table.c.account == account)
            .values(balance=table.c.balance + delta)
        )
    for p in entry.postings:
        session.add(LedgerPosting(entry_id=entry.entry_id, account=p.account, amount=p.amount,
                                  reference=entry.reference, posted_at=now))
    await uow.record(
        entry.entry_id,
        [LedgerEntryPosted(
            entry_id=entry.entry_id,
            postings=tuple(PostingPayload(account=p.account, amount=p.amount)
                           for p in entry.postings),
            memo=entry.memo, reference=entry.reference, posted_at=now,
        )],
        actor=actor,
    )


def _legs(entry: JournalEntry) -> dict[str, int]:
    legs: dict[str, int] = {}
    for p in entry.postings:
        legs[p.account] = legs.get(p.account, 0) + p.amount
    return legs


async def write_entries(
    uow: UnitOfWork,
    entries: Sequence[tuple[JournalEntry, frozenset[str]]],
) -> list[LedgerEntryPosted]:
    """Post many balanced entries at once; returns their ``LedgerEntryPosted`` events.

    The same effect as ``post_entry`` for each ``(entry, non_negative)`` in order, in a
    few statements whatever the number of entries: the balance rows of the accounts that
    must stay non-negative are locked (sorted, as ``post_entry`` does) and the checks run
    entry by entry against their running balances; every other touched balance is added
    to by one upsert (each row locked by the upsert itself, in sorted order) — no read of
    the million receivables a month-end run touches; the postings are copied in (COPY on
    PostgreSQL). The events are returned, not recorded, so the caller records them in
    the order it wants (e.g. each right after its invoice's); their streams are new entry
    ids, so ``uow.prefetch_versions`` them first. Raises InsufficientBalance like
    ``post_entry``, before anything is written.
    """
    if not entries:
        return []
    session = uow.session
    all_legs = [_legs(entry) for entry, _ in entries]
    guarded = sorted({account for (_, non_negative), legs in zip(entries, all_legs, strict=True)
                      for account in non_negative & legs.keys()})
    running = await _lock_accounts(session, guarded) if guarded else {}
    totals: dict[str, int] = {}
    for (_, non_negative), legs in zip(entries, all_legs, strict=True):
        for account in sorted(non_negative & legs.keys()):
            before = natural_balance(account, running[account])
            after = natural_balance(account, running[account] + legs[account])
            # As in post_entry: only an entry that draws the account down is refused.
            if after < 0 and after < before:
                raise InsufficientBalance(account, before, before - after)
        for account, delta in legs.items():
            if account in running:
                running[account] += delta
            totals[account] = totals.get(account, 0) + delta
    await _add_to_balances(session, sorted(totals.items()))
    events: list[LedgerEntryPosted] = []
    rows: list[tuple[str, str, int, str, datetime]] = []
    for entry, _ in entries:
        now = uow.store.clock.now()
        rows.extend((entry.entry_id, p.account, p.amount, entry.reference, now)
                    for p in entry.postings)
        events.append(LedgerEntryPosted(
            entry_id=entry.entry_id,
            postings=tuple(PostingPayload(account=p.account, amount=p.amount)
                           for p in entry.postings),
            memo=entry.memo, reference=entry.reference, posted_at=now,
        ))
    await copy_rows(session, LedgerPosting.__table__,  # type: ignore[attr-defined]
                    ("entry_id", "account", "amount", "reference", "posted_at"), rows)
    return events


async def _add_to_balances(session: AsyncSession, deltas: list[tuple[str, int]]) -> None:
    """balance += delta for each (account, delta), creating missing rows; sorted input."""
    if not deltas:
        return
    table = LedgerAccount.__table__  # type: ignore[attr-defined]
    bind = session.bind
    if bind is None or bind.dialect.name == "postgresql":
        # One statement for any number of accounts (unnest), rows locked in array order.
        await session.execute(
            text("INSERT INTO ledger_accounts (account, balance) "
                 "SELECT * FROM unnest(CAST(:accounts AS varchar[]), "
                 "CAST(:deltas AS bigint[])) "
                 "ON CONFLICT (account) DO UPDATE "
                 "SET balance = ledger_accounts.balance + excluded.balance"),
            {"accounts": [a for a, _ in deltas], "deltas": [d for _, d in deltas]},
        )
        return
    stmt = sqlite_insert(table)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[table.c.account],
                                   set_={"balance": table.c.balance + stmt.excluded.balance}),
        [{"account": a, "balance": d} for a, d in deltas],
    )


async def copy_rows(session: AsyncSession, table: Table, columns: Sequence[str],
                    rows: Sequence[Sequence[object]]) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, else executemany.

    COPY (asyncpg ``copy_records_to_table`` on the session's own connection) sends the
    rows as one binary stream instead of batches of bound multi-row INSERTs, several
    times faster for the hundreds of thousands of rows a month-end run writes.
    """
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is not None and hasattr(driver, "copy_records_to_table"):
            await driver.copy_records_to_table(table.name, columns=list(columns),
                                               records=rows)
            return
    await session.execute(insert(table), [dict(zip(columns, row, strict=True))
                                          for row in rows])


async def balance(session: AsyncSession, account: str) -> int:
    """The account's raw balance: debits minus credits (a credit balance is negative).

    Use ``natural_balance(account, balance(...))`` for the amount an account "holds"
    (e.g. the refunds waiting in ``household:X:credit`` as a positive number).
    """
    table = LedgerAccount.__table__  # type: ignore[attr-defined]
    result = await session.execute(select(table.c.balance).where(table.c.account == account))
    value = result.scalar()
    return int(value or 0)


async def locked_balance(session: AsyncSession, account: str) -> int:
    """The account's raw balance, with its row locked until the transaction ends.

    Read a balance this way before deciding how much of it to spend (e.g. the credits an
    invoice applies), so nobody else can spend it between the read and the posting.
    """
    balances = await _lock_accounts(session, [account])
    return balances[account]


async def lock_balances(session: AsyncSession, accounts: list[str]) -> dict[str, int]:
    """Many accounts' raw balances, their rows created if missing and locked (sorted order).

    ``locked_balance`` for a batch: one insert and one SELECT ... FOR UPDATE in all.
    """
    return await _lock_accounts(session, sorted(set(accounts)))


async def postings_of(session: AsyncSession, account: str, *, limit: int = 200,
                      offset: int = 0) -> list[LedgerPosting]:
    """The account's postings, newest first."""
    result = await session.execute(
        select(LedgerPosting).where(LedgerPosting.account == account)  # type: ignore[arg-type]
        .order_by(LedgerPosting.posted_at.desc(), LedgerPosting.id.desc())  # type: ignore[attr-defined,union-attr]
        .limit(limit).offset(offset)
    )
    return list(result.scalars().all())
