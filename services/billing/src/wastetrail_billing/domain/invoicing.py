"""From a computed invoice to what is recorded: event lines and journal entries.

``fees.compute_invoice`` does the arithmetic; this module only translates its result
(pure, no I/O). Ledger effect of an invoice (see ``ledger`` for the chart of accounts):

- issue:  Dr ``household:X:receivable`` subtotal + VAT
          Cr ``revenue:fees:<component>`` each component's lines, Cr ``liability:vat`` VAT
- credit: Dr ``household:X:credit`` / Cr ``household:X:receivable`` the credits applied
  (EPR refunds waiting in the credit account offset the bill).

A payment is Dr ``cash:<channel>`` / Cr receivable; a refund reverses it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from decimal import Decimal

from wastetrail_contracts.enums import Category as ContractCategory
from wastetrail_contracts.enums import CostComponent
from wastetrail_contracts.events.billing import InvoiceLine as EventLine
from wastetrail_contracts.pricing.fees import Invoice, InvoiceLine, Unit

from wastetrail_billing.domain import ledger
from wastetrail_billing.domain.ledger import JournalEntry


def entry_id(kind: str, reference: str) -> str:
    """A deterministic journal entry id: ``<kind>-<reference>``, hashed when too long."""
    plain = f"{kind}-{reference}"
    if len(plain) <= 80:
        return plain
    return f"{kind}-{hashlib.sha256(reference.encode()).hexdigest()[:40]}"


def event_line(line: InvoiceLine) -> EventLine:
    """An invoice line as the InvoiceIssued event carries it (integer quantities).

    kg lines → grams (unit ``g``); litres → ``litre``; bags → ``bag:<size>``; fixed
    monthly amounts → the days in force, unit ``day/<days in month>``, so that an auditor
    recomputes amount = unit price × days / days in month.
    """
    if line.unit is Unit.KG:
        quantity, unit = int(line.quantity * 1000), "g"
    elif line.unit is Unit.LITRE:
        quantity, unit = int(line.quantity), "litre"
    elif line.unit is Unit.BAG:
        quantity, unit = int(line.quantity), f"bag:{line.band}"
    else:
        quantity, unit = line.days_in_force, f"day/{line.days_in_month}"
    return EventLine(
        category=ContractCategory(line.category.value),
        component=CostComponent(line.component.value),
        basis=line.basis.value,
        quantity=quantity,
        unit=unit,
        amount=line.amount,
        tariff_version=line.tariff_effective_from,
    )


def charged_grams(invoice: Invoice, collected_grams: int) -> int:
    """Collected mass minus the mass that appears on no priced line (free or unpriced)."""
    return collected_grams - sum(u.grams for u in invoice.uncharged)


def revenue_by_component(invoice: Invoice) -> dict[str, int]:
    """The invoice's subtotal split by component (for the revenue credit legs)."""
    by_component: defaultdict[str, int] = defaultdict(int)
    for line in invoice.lines:
        by_component[line.component.value] += line.amount
    return dict(by_component)


def issue_entry(invoice_id: str, account_id: str, invoice: Invoice) -> JournalEntry | None:
    """Dr receivable / Cr revenue by component / Cr VAT; None for a zero invoice."""
    gross = invoice.subtotal + invoice.vat
    if gross == 0:
        return None
    legs = {ledger.receivable(account_id): gross, ledger.VAT: -invoice.vat}
    for component, amount in sorted(revenue_by_component(invoice).items()):
        legs[ledger.revenue(component)] = -amount
    return ledger.entry(entry_id("inv", invoice_id), legs,
                        f"invoice {invoice_id}", invoice_id)


def credit_entry(invoice_id: str, account_id: str, applied: int) -> JournalEntry | None:
    """Dr household credit / Cr receivable for credits applied; None when nothing applied."""
    if applied == 0:
        return None
    return ledger.entry(
        entry_id("crd", invoice_id),
        {ledger.credit(account_id): applied, ledger.receivable(account_id): -applied},
        f"credits applied to invoice {invoice_id}", invoice_id,
    )


def payment_entry(payment_id: str, account_id: str, amount: int, cash: str) -> JournalEntry:
    """Dr cash account / Cr receivable: money received for the account."""
    return ledger.entry(entry_id("pay", payment_id),
                        {cash: amount, ledger.receivable(account_id): -amount},
                        f"payment {payment_id}", payment_id)


def refund_entry(refund_id: str, payment_id: str, account_id: str, amount: int,
                 cash: str) -> JournalEntry:
    """Dr receivable / Cr cash account: the reversal of (part of) a payment."""
    return ledger.entry(entry_id("rfd", refund_id),
                        {ledger.receivable(account_id): amount, cash: -amount},
                        f"refund {refund_id} of payment {payment_id}", payment_id)


def refund_kind_full(amount: int, paid: int, already_refunded: int) -> bool:
    """Whether a refund is VNPay's full refund (02): the whole, never-refunded amount."""
    return already_refunded == 0 and amount == paid


def ex_vat(settled: int, subtotal: int, vat: int) -> int:
    """The fee part (without VAT) of what was settled on an invoice, rounded down.

    Settled money covers subtotal and VAT in proportion; the full-cost report compares
    costs with fees, so VAT (the state's money) is taken out.
    """
    gross = subtotal + vat
    if gross == 0:
        return 0
    return int(Decimal(settled * subtotal) // Decimal(gross))
