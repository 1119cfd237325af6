"""Invoices recomputed from the log — the fees of every invoiced account-month.

For each account and month that has ``billing.invoice_issued`` events, the tariff
(the last ``billing.tariff_published`` document of the invoices' ``tariff_id``) is applied
to every ``collection.load_collected`` of the account's generator collected that month in
Vietnam (``wastetrail_contracts.pricing``: the rules billing itself prices with), and the
result is compared with what the month's invoices billed together — the month's invoice
and its supplements for loads that arrived late:

============  ==========================================================================
``subtotal``  Σ ``subtotal`` of the invoices vs the recomputed subtotal
``vat``       Σ ``vat`` vs the recomputed VAT
============  ==========================================================================

Credits are not fees (they are checked by ``verify-balances``). A month with loads the
invoices do not cover yet (a late load not billed by a supplement yet) shows as a
difference: the log holds a load nobody billed. The account's classes are those of its
``billing.account_opened`` event (no event tells of a later class change yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from wastetrail_contracts.base import Event
from wastetrail_contracts.events.billing import AccountOpened, InvoiceIssued, TariffPublished
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.pricing.fees import (
    Account,
    ChargedQuantity,
    InvoiceError,
    compute_invoice,
)
from wastetrail_contracts.pricing.periods import billing_month, local_date, period_of
from wastetrail_contracts.pricing.publishing import tariff_from_json
from wastetrail_contracts.pricing.tariff import Tariff

# The event types the recomputation reads (verify-invoices loads only these).
INVOICE_EVENTS: tuple[type[Event], ...] = (
    AccountOpened, TariffPublished, LoadCollected, InvoiceIssued,
)


@dataclass(frozen=True)
class InvoiceDifference:
    """One account-month whose invoices do not bill what the tariff gives for its loads."""

    account_id: str
    period: str
    field: str  # "subtotal", "vat", or "priced" when the log cannot be priced at all
    log: int | None
    billed: int
    detail: str = ""

    def line(self) -> str:
        """``account A1 2026-01 subtotal: log 52,450 đ, billed 51,650 đ (12 loads)``."""
        log = "cannot be priced" if self.log is None else f"{self.log:,} đ"
        return (f"account {self.account_id} {self.period} {self.field}: log {log}, billed "
                f"{self.billed:,} đ ({self.detail})")


@dataclass
class InvoiceCheck:
    """The outcome: how many account-months were recomputed, and where they differ."""

    months: int = 0
    invoices: int = 0
    loads: int = 0
    differences: list[InvoiceDifference] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The ``--json`` summary."""
        return {"ok": not self.differences, "account_months": self.months,
                "invoices": self.invoices, "loads": self.loads,
                "differences": [d.__dict__ for d in self.differences]}


@dataclass
class _Month:
    tariff_id: str
    subtotal: int = 0
    vat: int = 0
    invoices: int = 0


class InvoiceRecomputation:
    """Apply events one at a time (any order); ``check()`` compares once all are in."""

    def __init__(self) -> None:
        self._accounts: dict[str, AccountOpened] = {}  # by generator id
        self._tariffs: dict[str, TariffPublished] = {}  # the last one per tariff id
        self._loads: dict[str, LoadCollected] = {}  # the first one per load id
        self._invoices: set[str] = set()
        self._months: dict[tuple[str, str], _Month] = {}

    def apply(self, event: Event) -> None:
        """Take one event into account; events of other types are ignored."""
        match event:
            case AccountOpened():
                self._accounts.setdefault(event.generator_id, event)
            case TariffPublished():
                # One tariff's documents share a stream: the log orders them.
                self._tariffs[event.tariff_id] = event
            case LoadCollected():
                # A device re-sync sends the same load again: billed once.
                self._loads.setdefault(event.load_id, event)
            case InvoiceIssued() if event.invoice_id not in self._invoices:
                self._invoices.add(event.invoice_id)
                month = self._months.setdefault((event.account_id, event.period),
                                                _Month(event.tariff_id))
                month.subtotal += event.subtotal
                month.vat += event.vat
                month.invoices += 1
            case _:
                pass

    def check(self) -> InvoiceCheck:
        """Recompute every invoiced account-month and list the differences."""
        loads: defaultdict[tuple[str, str], list[ChargedQuantity]] = defaultdict(list)
        by_account = {a.account_id: a for a in self._accounts.values()}
        account_of = {g: a.account_id for g, a in self._accounts.items()}
        for load in self._loads.values():
            account_id = account_of.get(load.generator_id)
            if account_id is None:
                continue
            day = local_date(load.collected_at)
            loads[(account_id, period_of(day))].append(ChargedQuantity(
                collected_on=day, category=load.category, grams=load.grams,
                litres=load.litres, bag_size=load.bag_size))
        tariffs: dict[str, Tariff] = {}
        result = InvoiceCheck(invoices=len(self._invoices))
        for (account_id, period), month in sorted(self._months.items()):
            result.months += 1
            quantities = loads.get((account_id, period), [])
            result.loads += len(quantities)
            detail = f"{len(quantities)} loads, {month.invoices} invoice(s)"
            opened = by_account.get(account_id)
            published = self._tariffs.get(month.tariff_id)
            if opened is None or published is None:
                missing = "account_opened" if opened is None else "tariff_published"
                result.differences.append(InvoiceDifference(
                    account_id, period, "priced", None, month.subtotal + month.vat,
                    f"no {missing} event in the log; {detail}"))
                continue
            if month.tariff_id not in tariffs:
                tariffs[month.tariff_id] = tariff_from_json(published.document_json)
            try:
                bill = compute_invoice(
                    Account(commune_class=opened.commune_class,
                            customer_class=opened.customer_class),
                    billing_month(period), tariffs[month.tariff_id], quantities)
            except InvoiceError as exc:
                result.differences.append(InvoiceDifference(
                    account_id, period, "priced", None, month.subtotal + month.vat,
                    f"{exc.field}: {exc.detail}; {detail}"))
                continue
            for name, log, billed in (("subtotal", bill.subtotal, month.subtotal),
                                      ("vat", bill.vat, month.vat)):
                if log != billed:
                    result.differences.append(InvoiceDifference(
                        account_id, period, name, log, billed, detail))
        return result


def recompute_invoices(events: Iterable[Event]) -> InvoiceCheck:
    """Every invoiced account-month recomputed from these events (see the module docstring)."""
    recomputation = InvoiceRecomputation()
    for event in events:
        recomputation.apply(event)
    return recomputation.check()
