"""Posting journal entries to the ledger tables, with balance checks under row locks."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, insert, select
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

    The same effect as ``post_entry`` for each ``(entry, non_negative)`` in order, with a
    handful of statements instead of a few per entry: every touched balance row is locked
    once (sorted, as ``post_entry`` does), the non-negative checks run entry by entry
    against the running balances, each balance is updated once by the sum of its legs and
    all postings are inserted in one statement. The events are returned, not recorded, so
    the caller records them in the order it wants (e.g. each right after its invoice's);
    their streams are new entry ids, so ``uow.prefetch_versions`` them first. Raises
    InsufficientBalance like ``post_entry``, before anything is written.
    """
    if not entries:
        return []
    session = uow.session
    all_legs = [_legs(entry) for entry, _ in entries]
    touched = sorted({account for legs in all_legs for account in legs})
    running = await _lock_accounts(session, touched)
    start = dict(running)
    for (_, non_negative), legs in zip(entries, all_legs, strict=True):
        for account in sorted(non_negative & legs.keys()):
            before = natural_balance(account, running[account])
            after = natural_balance(account, running[account] + legs[account])
            # As in post_entry: only an entry that draws the account down is refused.
            if after < 0 and after < before:
                raise InsufficientBalance(account, before, before - after)
        for account, delta in legs.items():
            running[account] += delta
    table = LedgerAccount.__table__  # type: ignore[attr-defined]
    changed = [{"b_account": account, "b_delta": running[account] - start[account]}
               for account in touched if running[account] != start[account]]
    if changed:
        await session.execute(
            table.update().where(table.c.account == bindparam("b_account"))
            .values(balance=table.c.balance + bindparam("b_delta")),
            changed,
        )
    events: list[LedgerEntryPosted] = []
    rows: list[dict[str, object]] = []
    for entry, _ in entries:
        now = uow.store.clock.now()
        rows.extend({"entry_id": entry.entry_id, "account": p.account, "amount": p.amount,
                     "reference": entry.reference, "posted_at": now} for p in entry.postings)
        events.append(LedgerEntryPosted(
            entry_id=entry.entry_id,
            postings=tuple(PostingPayload(account=p.account, amount=p.amount)
                           for p in entry.postings),
            memo=entry.memo, reference=entry.reference, posted_at=now,
        ))
    await session.execute(insert(LedgerPosting.__table__), rows)  # type: ignore[attr-defined]
    return events


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
