"""Account and producer balances recomputed from events alone — the one derivation.

``verify-balances`` and its tests both use this module, so "what the log says an
account owes" is defined exactly once.

Accounts (all amounts integer đồng):

=============  ===============================================================
``invoiced``   Σ ``billing.invoice_issued.total`` of the account (one per invoice_id)
``paid``       Σ ``billing.payment_succeeded.amount`` (one per payment_id)
``refunded``   Σ ``billing.payment_refunded.amount`` (one per payment_id + refund_ref)
``credited``   Σ ``epr.deposit_claim_credited.amount`` with ``method = account_credit``
               (one per claim_id); payouts are paid to the household, not its bill
``balance``    invoiced + Σ invoice ``credits`` − credited − paid + refunded:
               what the account owes (negative: it holds a credit). Invoice totals
               are already net of the credits applied on them, so those are added
               back before every credit received is subtracted once.
=============  ===============================================================

Producers (EPR deposit-refund):

==============  ==============================================================
``owed``        Σ ``epr.units_placed_on_market.deposit_owed`` (one per report_id)
``paid``        Σ ``epr.deposit_paid.amount`` (one per payment_id)
``refunded``    Σ ``epr.deposit_claim_credited.amount`` of the producer's claims
                (the producer of a claim is ``epr.deposit_claim_opened.producer_id``),
                account credits and payouts alike
``unredeemed``  paid − refunded: deposits still held in the scheme
==============  ==============================================================

An account or producer appears once it is opened/registered or has any of these events.
A repeated event (same id) is counted once — a redelivered message must not double a bill.

The billing service exposes its own view for comparison (implemented by billing):

``GET {billing_url}/v1/audit/balances`` with ``Authorization: Bearer <token>`` →
``200`` and::

    {"accounts":  {"<account_id>":  {"invoiced": int, "paid": int, "refunded": int,
                                     "credited": int, "balance": int}},
     "producers": {"<producer_id>": {"owed": int, "paid": int, "refunded": int,
                                     "unredeemed": int}}}

An account or producer missing from one side counts as all zeros on that side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from wastetrail_contracts.base import Event
from wastetrail_contracts.events.billing import (
    AccountOpened,
    InvoiceIssued,
    PaymentRefunded,
    PaymentSucceeded,
)
from wastetrail_contracts.events.epr import (
    DepositClaimCredited,
    DepositClaimOpened,
    DepositPaid,
    ProducerRegistered,
    UnitsPlacedOnMarket,
)

ACCOUNT_FIELDS = ("invoiced", "paid", "refunded", "credited", "balance")
PRODUCER_FIELDS = ("owed", "paid", "refunded", "unredeemed")
# The event types the derivation reads (verify-balances loads only these).
BALANCE_EVENTS: tuple[type[Event], ...] = (
    AccountOpened, InvoiceIssued, PaymentSucceeded, PaymentRefunded, ProducerRegistered,
    UnitsPlacedOnMarket, DepositPaid, DepositClaimOpened, DepositClaimCredited,
)


@dataclass(frozen=True)
class AccountBalance:
    """One billing account's totals (đồng)."""

    invoiced: int = 0
    paid: int = 0
    refunded: int = 0
    credited: int = 0
    balance: int = 0


@dataclass(frozen=True)
class ProducerBalance:
    """One producer's deposit totals (đồng)."""

    owed: int = 0
    paid: int = 0
    refunded: int = 0
    unredeemed: int = 0


@dataclass(frozen=True)
class Balances:
    """Every account's and producer's totals."""

    accounts: dict[str, AccountBalance]
    producers: dict[str, ProducerBalance]

    def to_json(self) -> dict[str, dict[str, dict[str, int]]]:
        """The shape of ``GET /v1/audit/balances``."""
        return {
            "accounts": {k: asdict(v) for k, v in sorted(self.accounts.items())},
            "producers": {k: asdict(v) for k, v in sorted(self.producers.items())},
        }


@dataclass
class _Account:
    invoiced: int = 0
    credits_applied: int = 0
    paid: int = 0
    refunded: int = 0
    credited: int = 0


@dataclass
class BalanceLedger:
    """Apply events one at a time (any order); ``balances()`` gives the totals."""

    _accounts: dict[str, _Account] = field(default_factory=dict)
    _owed: dict[str, int] = field(default_factory=dict)
    _deposits: dict[str, int] = field(default_factory=dict)
    _producers: set[str] = field(default_factory=set)
    _claim_producer: dict[str, str] = field(default_factory=dict)
    _claim_credit: dict[str, int] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, event: Event) -> None:
        """Take one event into account; events of other types are ignored."""
        match event:
            case AccountOpened():
                self._account(event.account_id)
            case InvoiceIssued() if self._first("invoice", event.invoice_id):
                account = self._account(event.account_id)
                account.invoiced += event.total
                account.credits_applied += event.credits
            case PaymentSucceeded() if self._first("payment", event.payment_id):
                self._account(event.account_id).paid += event.amount
            case PaymentRefunded() if self._first(
                "refund", f"{event.payment_id}|{event.refund_ref}"
            ):
                self._account(event.account_id).refunded += event.amount
            case DepositClaimCredited() if self._first("credit", event.claim_id):
                if event.method == "account_credit":
                    self._account(event.account_id).credited += event.amount
                self._claim_credit[event.claim_id] = event.amount
            case ProducerRegistered():
                self._producers.add(event.producer_id)
            case UnitsPlacedOnMarket() if self._first("placed", event.report_id):
                self._producers.add(event.producer_id)
                self._owed[event.producer_id] = self._owed.get(event.producer_id, 0) + (
                    event.deposit_owed
                )
            case DepositPaid() if self._first("deposit", event.payment_id):
                self._producers.add(event.producer_id)
                self._deposits[event.producer_id] = self._deposits.get(event.producer_id, 0) + (
                    event.amount
                )
            case DepositClaimOpened():
                self._claim_producer.setdefault(event.claim_id, event.producer_id)
            case _:
                pass

    def balances(self) -> Balances:
        """The totals of everything applied so far."""
        accounts = {
            account_id: AccountBalance(
                invoiced=a.invoiced, paid=a.paid, refunded=a.refunded, credited=a.credited,
                balance=a.invoiced + a.credits_applied - a.credited - a.paid + a.refunded,
            )
            for account_id, a in self._accounts.items()
        }
        refunded: dict[str, int] = {}
        for claim_id, amount in self._claim_credit.items():
            # A credit whose claim was never opened has no producer to charge: it is kept
            # under "?" so the difference shows up instead of vanishing.
            producer = self._claim_producer.get(claim_id, "?")
            refunded[producer] = refunded.get(producer, 0) + amount
        producers = {}
        for producer in sorted(self._producers | set(refunded)):
            paid = self._deposits.get(producer, 0)
            out = refunded.get(producer, 0)
            producers[producer] = ProducerBalance(
                owed=self._owed.get(producer, 0), paid=paid, refunded=out,
                unredeemed=paid - out,
            )
        return Balances(accounts=accounts, producers=producers)

    def _account(self, account_id: str) -> _Account:
        return self._accounts.setdefault(account_id, _Account())

    def _first(self, kind: str, ident: str) -> bool:
        key = (kind, ident)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def derive_balances(events: Iterable[Event]) -> Balances:
    """Every account's and producer's balances from these events (see the module docstring)."""
    ledger = BalanceLedger()
    for event in events:
        ledger.apply(event)
    return ledger.balances()


@dataclass(frozen=True)
class Difference:
    """One number on which the log and the billing service disagree."""

    subject: str  # "account" | "producer"
    subject_id: str
    field: str
    log: int
    billing: int

    def line(self) -> str:
        """``account A2 paid: log 32,400 đ, billing 27,400 đ (billing − log = -5,000)``."""
        return (
            f"{self.subject} {self.subject_id} {self.field}: log {self.log:,} đ, billing "
            f"{self.billing:,} đ (billing − log = {self.billing - self.log:,})"
        )


def parse_billing_view(data: object) -> Balances:
    """The billing service's JSON as Balances; raises ValueError on a wrong shape."""
    if not isinstance(data, Mapping):
        raise ValueError("the balances response is not a JSON object")
    accounts = {
        k: AccountBalance(**_numbers(v, ACCOUNT_FIELDS, f"accounts.{k}"))
        for k, v in _section(data, "accounts").items()
    }
    producers = {
        k: ProducerBalance(**_numbers(v, PRODUCER_FIELDS, f"producers.{k}"))
        for k, v in _section(data, "producers").items()
    }
    return Balances(accounts=accounts, producers=producers)


def _section(data: Mapping[object, object], name: str) -> dict[str, object]:
    section = data.get(name, {})
    if not isinstance(section, Mapping):
        raise ValueError(f"{name}: not an object")
    return {str(k): v for k, v in section.items()}


def _numbers(value: object, fields: tuple[str, ...], where: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: not an object")
    out: dict[str, int] = {}
    for name in fields:
        number = value.get(name, 0)
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"{where}.{name}: not an integer number of đồng")
        out[name] = number
    return out


def compare(log: Balances, billing: Balances) -> list[Difference]:
    """Every field where the two disagree (a missing side counts as zeros)."""
    differences: list[Difference] = []
    for account_id in sorted(log.accounts.keys() | billing.accounts.keys()):
        ours = asdict(log.accounts.get(account_id, AccountBalance()))
        theirs = asdict(billing.accounts.get(account_id, AccountBalance()))
        differences.extend(
            Difference("account", account_id, f, ours[f], theirs[f])
            for f in ACCOUNT_FIELDS if ours[f] != theirs[f]
        )
    for producer_id in sorted(log.producers.keys() | billing.producers.keys()):
        ours = asdict(log.producers.get(producer_id, ProducerBalance()))
        theirs = asdict(billing.producers.get(producer_id, ProducerBalance()))
        differences.extend(
            Difference("producer", producer_id, f, ours[f], theirs[f])
            for f in PRODUCER_FIELDS if ours[f] != theirs[f]
        )
    return differences
