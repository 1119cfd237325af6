"""Events produced by the billing service: tariffs, invoices, payments, ledger, costs."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field, model_validator

from wastetrail_contracts.base import (
    Code,
    CommuneCode,
    Day,
    Dong,
    Event,
    Id,
    Period,
    PositiveDong,
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
    effective_from: tuple[Day, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _document_matches(self) -> TariffPublished:
        # Auditors recompute fees from document_json, so the digest must be of those bytes.
        digest = hashlib.sha256(self.document_json.encode("utf-8")).hexdigest()
        if digest != self.document_sha256:
            raise ValueError("document_sha256: is not the SHA-256 of document_json")
        if any(a >= b for a, b in zip(self.effective_from, self.effective_from[1:], strict=False)):
            raise ValueError("effective_from: dates must be strictly increasing")
        return self


class InvoiceLine(Value):
    """One priced line: a category × component for part of a month."""

    category: Category
    component: CostComponent
    basis: Code
    quantity: TotalGrams  # grams, litres, bags or months, as ``unit`` says
    unit: Code
    amount: Dong
    tariff_version: Day


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
    amount: PositiveDong
    channel: PaymentChannel
    txn_ref: Code
    initiated_at: UtcDatetime


class PaymentSucceeded(Event):
    """Money arrived: a verified VNPay IPN, or cash recorded by a cashier."""

    event_type = "billing.payment_succeeded"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: PositiveDong
    channel: PaymentChannel
    gateway_transaction_no: Code | None = None
    bank_code: Code | None = None
    paid_at: UtcDatetime

    @model_validator(mode="after")
    def _gateway_reference(self) -> PaymentSucceeded:
        # Only a verified IPN marks a VNPay bill paid; its transaction number is the proof.
        if self.channel is PaymentChannel.VNPAY and self.gateway_transaction_no is None:
            raise ValueError("gateway_transaction_no: required for a VNPay payment")
        return self


class PaymentFailed(Event):
    """The gateway reported a failed or cancelled payment."""

    event_type = "billing.payment_failed"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: PositiveDong
    response_code: Code
    transaction_status: Code
    failed_at: UtcDatetime


class PaymentRefunded(Event):
    """A paid amount was refunded through the gateway."""

    event_type = "billing.payment_refunded"

    payment_id: Id
    invoice_id: Id
    account_id: Id
    amount: PositiveDong
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
    quantity: TotalGrams  # km, or grams (per tonne drivers), or 1 for overhead
    amount: Dong
    description: Text = ""

    @model_validator(mode="after")
    def _driver_fits_component(self) -> OperatingCostRecorded:
        # Treatment is costed per plant tonne by method; the other components have no method.
        if (self.driver == "plant_tonne") != (self.component is CostComponent.TREATMENT):
            raise ValueError("driver: plant_tonne is the driver of the treatment component")
        if (self.driver == "overhead") != (self.component is CostComponent.OVERHEAD):
            raise ValueError("driver: overhead is the driver of the overhead component")
        if (self.method is None) == (self.component is CostComponent.TREATMENT):
            raise ValueError("method: required for treatment costs and only for them")
        return self


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
        if any(p.amount == 0 for p in self.postings):
            raise ValueError("postings: a posting of 0 đồng moves nothing")
        if sum(p.amount for p in self.postings) != 0:
            raise ValueError("postings: debits and credits must balance")
        return self

    @property
    def debits(self) -> int:
        """The entry's size: the sum of its debits (which equals the sum of its credits)."""
        return sum(p.amount for p in self.postings if p.amount > 0)


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
