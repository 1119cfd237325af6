"""Double-entry ledger values: a journal entry is a set of postings that sum to zero.

Sign convention: a positive amount debits the account, a negative amount credits it.
Chart of accounts (plain strings, so the EPR scheme can add its own ``epr:*`` and
``producer:*`` accounts without a schema change):

- ``household:{account_id}:receivable`` — debit balance = what the household owes;
- ``household:{account_id}:credit`` — credit balance = EPR refunds waiting to offset the
  next invoice;
- ``revenue:fees:{component}`` — fee revenue per cost component;
- ``liability:vat`` — VAT collected for the state;
- ``cash:vnpay``, ``cash:cashier``, ``cash:bank`` — money received.

Natural side: an account is credit-natured (its normal balance is a credit) when its
first segment is ``liability``, ``revenue`` or ``equity``, or its last segment is
``credit``, ``payable``, ``deposits`` or ``liability``; every other account is
debit-natured. ``natural_balance`` reports a balance from that side, which is what
"must not go negative" is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnbalancedEntry(ValueError):
    """A journal entry whose postings do not sum to zero (or has fewer than two)."""


@dataclass(frozen=True)
class Posting:
    """One leg of a journal entry: positive debits ``account``, negative credits it."""

    account: str
    amount: int


@dataclass(frozen=True)
class JournalEntry:
    """A balanced journal entry; constructing an unbalanced one raises UnbalancedEntry."""

    entry_id: str
    postings: tuple[Posting, ...]
    memo: str
    reference: str

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise UnbalancedEntry(f"entry {self.entry_id!r} needs at least two postings")
        if any(p.amount == 0 for p in self.postings):
            # A zero leg moves nothing and the event contract refuses it.
            raise UnbalancedEntry(f"entry {self.entry_id!r} has a posting of 0 đồng")
        total = sum(p.amount for p in self.postings)
        if total != 0:
            raise UnbalancedEntry(
                f"entry {self.entry_id!r} does not balance: postings sum to {total}"
            )


CREDIT_NATURED_FIRST = frozenset({"liability", "revenue", "equity"})
CREDIT_NATURED_LAST = frozenset({"credit", "payable", "deposits", "liability"})


def is_credit_natured(account: str) -> bool:
    """Whether the account's normal balance is a credit (liabilities, revenue, credits)."""
    parts = account.split(":")
    return parts[0] in CREDIT_NATURED_FIRST or parts[-1] in CREDIT_NATURED_LAST


def natural_balance(account: str, raw: int) -> int:
    """A raw (debit − credit) balance seen from the account's natural side."""
    return -raw if is_credit_natured(account) else raw


def receivable(account_id: str) -> str:
    """The account's receivable: a debit balance is what the household owes."""
    return f"household:{account_id}:receivable"


def credit(account_id: str) -> str:
    """The account's credit: a credit balance is refunds waiting to offset the next bill."""
    return f"household:{account_id}:credit"


def revenue(component: str) -> str:
    """Fee revenue of one cost component (collection, transport, treatment)."""
    return f"revenue:fees:{component}"


VAT = "liability:vat"
CASH_VNPAY = "cash:vnpay"
CASH_CASHIER = "cash:cashier"
CASH_BANK = "cash:bank"


def entry(entry_id: str, legs: dict[str, int], memo: str, reference: str) -> JournalEntry:
    """A journal entry from account → amount legs, dropping zero legs (e.g. no VAT)."""
    postings = tuple(Posting(a, v) for a, v in legs.items() if v != 0)
    return JournalEntry(entry_id=entry_id, postings=postings, memo=memo, reference=reference)
