"""Events produced by the billing service: tariffs, invoices, payments, ledger, costs."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from wastetrail_contracts.base import (
    Code,
    CommuneCode,
    Dong,
    Event,
    Id,
    Period,
    Sha256Hex,
    SignedDong,
    Text,
    TotalGrams,
    UtcDatetime,
    Value,
)
from wastetrail_contracts.enums import (
    Category,
    CommuneClass,
    CostComponent,
    CustomerClass,
    PaymentChannel,
    TreatmentMethod,
)


class AccountOpened(Event):
    """A billing account for a generator (one per generator)."""

    event_type = "billing.account_opened"

    account_id: Id
    generator_id: Id
    commune: CommuneCode
    commune_class: CommuneClass
    customer_class: CustomerClass


class TariffPublished(Event):
    """A province's tariff document (all its versions) was loaded; auditors recompute from it."""

    event_type = "billing.tariff_published"

    tariff_id: Id
    province: Code
    label: Text
    document_json: str = Field(max_length=1_000_000)
    document_sha256: Sha256Hex
    effective_from: tuple[date, ...] = Field(min_length=1)


class InvoiceLine(Value):
    """One priced line: a category × component for part of a month."""

    category: Category
    component: CostComponent
    basis: Code
    quantity: int = Field(ge=0)
    unit: Code
    amount: Dong
    tariff_version: date


class InvoiceIssued(Event):
    """A monthly invoice for one account."""

    event_type = "billing.invoice_issued"

    invoice_id: Id
    account_id: Id
    period: Period
    tariff_id: Id
    lines: tuple[InvoiceLine, ...]
    charged_grams: TotalGrams
    subtotal: Dong
    vat: Dong
    credits: Dong
    total: Dong
    issued_at: UtcDatetime

    @model_validator(mode="after")
    def _totals_add_up(self) -> InvoiceIssued:
        if self.subtotal != sum(line.amount for line in self.lines):
            raise ValueError("subtotal: must equal the sum of line amounts")
        if self.total != self.subtotal + self.vat - self.credits:
            raise ValueError("total: must equal subtotal + vat - credits")
        return self


class PaymentInitiated(Event):
    """A payment was started (a VNPay URL built, or a cashier about to record cash)."""

    event_type = "billing.payment_initiated"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: Dong
    channel: PaymentChannel
    txn_ref: Code
    initiated_at: UtcDatetime


class PaymentSucceeded(Event):
    """Money arrived: a verified VNPay IPN, or cash recorded by a cashier."""

    event_type = "billing.payment_succeeded"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: Dong
    channel: PaymentChannel
    gateway_transaction_no: Code | None = None
    bank_code: Code | None = None
    paid_at: UtcDatetime


class PaymentFailed(Event):
    """The gateway reported a failed or cancelled payment."""

    event_type = "billing.payment_failed"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: Dong
    response_code: Code
    transaction_status: Code
    failed_at: UtcDatetime


class PaymentRefunded(Event):
    """A paid amount was refunded through the gateway."""

    event_type = "billing.payment_refunded"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: Dong
    refund_ref: Code
    refunded_at: UtcDatetime


class OperatingCostRecorded(Event):
    """A real operating cost of the service for a period (tính đúng, tính đủ)."""

    event_type = "billing.operating_cost_recorded"

    cost_id: Id
    period: Period
    component: CostComponent
    driver: Literal["trip_km", "station_tonne", "plant_tonne", "overhead"]
    method: TreatmentMethod | None = None
    quantity: int = Field(ge=0)
    amount: Dong
    description: Text = ""


class Posting(Value):
    """One leg of a journal entry: a positive amount debits, a negative one credits."""

    account: Code
    amount: SignedDong


class LedgerEntryPosted(Event):
    """A balanced double-entry journal entry."""

    event_type = "billing.ledger_entry_posted"

    entry_id: Id
    postings: tuple[Posting, ...] = Field(min_length=2)
    memo: Text
    reference: Code
    posted_at: UtcDatetime

    @model_validator(mode="after")
    def _balanced(self) -> LedgerEntryPosted:
        if sum(p.amount for p in self.postings) != 0:
            raise ValueError("postings: debits and credits must balance")
        return self


EVENTS: tuple[type[Event], ...] = (
    AccountOpened,
    TariffPublished,
    InvoiceIssued,
    PaymentInitiated,
    PaymentSucceeded,
    PaymentFailed,
    PaymentRefunded,
    OperatingCostRecorded,
    LedgerEntryPosted,
)
