"""Events of the EPR deposit-refund scheme (run inside the billing service)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wastetrail_contracts.base import (
    Code,
    Day,
    Dong,
    Event,
    Grams,
    Id,
    Period,
    PositiveGrams,
    Text,
    Units,
    UtcDatetime,
)
from wastetrail_contracts.enums import ClaimRejection, Material, PaymentChannel


class ProducerRegistered(Event):
    """A producer or importer that places packaged goods on the market."""

    event_type = "epr.producer_registered"

    producer_id: Id
    name: Text
    tax_code: Code
    kind: Literal["producer", "importer"]


class PackagingRegistered(Event):
    """A packaging SKU with its material, unit weight and deposit per unit."""

    event_type = "epr.packaging_registered"

    sku: Code
    producer_id: Id
    material: Material
    unit_grams: PositiveGrams
    deposit_per_unit: Dong
    effective_from: Day


class UnitsPlacedOnMarket(Event):
    """A producer's report of units placed on the market in a period → deposits owed."""

    event_type = "epr.units_placed_on_market"

    report_id: Id
    producer_id: Id
    sku: Code
    period: Period
    province: Code
    units: Units = Field(gt=0)
    deposit_owed: Dong
    deposit_per_unit: Dong | None = None  # the registered rate applied, when known

    @model_validator(mode="after")
    def _owed_is_units_times_rate(self) -> UnitsPlacedOnMarket:
        if self.deposit_per_unit is not None and (
            self.deposit_owed != self.units * self.deposit_per_unit
        ):
            raise ValueError("deposit_owed: must equal units × deposit_per_unit")
        return self


class DepositPaid(Event):
    """A producer paid deposits into the scheme's escrow account."""

    event_type = "epr.deposit_paid"

    payment_id: Id
    producer_id: Id
    amount: Dong = Field(gt=0)
    channel: PaymentChannel
    reference: Code
    paid_at: UtcDatetime


class DepositClaimOpened(Event):
    """A household returned packaging to a collector: a refund claim, pending confirmation."""

    event_type = "epr.deposit_claim_opened"

    claim_id: Id
    account_id: Id
    generator_id: Id
    load_id: Id
    producer_id: Id
    sku: Code
    material: Material
    units: Units = Field(gt=0)
    grams: Grams
    amount: Dong
    deposit_per_unit: Dong | None = None  # the registered rate applied, when known
    flagged_over_market: bool = False
    opened_at: UtcDatetime

    @model_validator(mode="after")
    def _amount_is_units_times_rate(self) -> DepositClaimOpened:
        if self.deposit_per_unit is not None and (
            self.amount != self.units * self.deposit_per_unit
        ):
            raise ValueError("amount: must equal units × deposit_per_unit")
        return self


class DepositClaimConfirmed(Event):
    """The plant confirmed the material was received and recycled: the claim is payable."""

    event_type = "epr.deposit_claim_confirmed"

    claim_id: Id
    batch_id: Id | None = None
    receipt_id: Id
    treatment_id: Id
    amount: Dong
    confirmed_at: UtcDatetime


class DepositClaimRejected(Event):
    """The claim will not be paid (material refused or landfilled, or a double claim)."""

    event_type = "epr.deposit_claim_rejected"

    claim_id: Id
    reason: Text
    reason_code: ClaimRejection = ClaimRejection.OTHER
    rejected_at: UtcDatetime


class DepositClaimCredited(Event):
    """A payable claim was credited to the household's account (or paid out)."""

    event_type = "epr.deposit_claim_credited"

    claim_id: Id
    account_id: Id
    amount: Dong = Field(gt=0)
    method: Literal["account_credit", "payout"]
    credited_at: UtcDatetime


EVENTS: tuple[type[Event], ...] = (
    ProducerRegistered,
    PackagingRegistered,
    UnitsPlacedOnMarket,
    DepositPaid,
    DepositClaimOpened,
    DepositClaimConfirmed,
    DepositClaimRejected,
    DepositClaimCredited,
)
