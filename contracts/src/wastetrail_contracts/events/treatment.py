"""Events produced by the treatment service: plants, receipts, treatment records."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wastetrail_contracts.base import (
    Code,
    CommuneCode,
    Event,
    Grams,
    Id,
    PositiveGrams,
    Text,
    TotalGrams,
    UtcDatetime,
    Value,
)
from wastetrail_contracts.enums import AcceptanceStatus, Category, TreatmentMethod


class PlantRegistered(Event):
    """A treatment plant, its permitted methods, accepted categories and daily capacity."""

    event_type = "treatment.plant_registered"

    plant_id: Id
    name: Text
    commune: CommuneCode
    methods: tuple[TreatmentMethod, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    daily_capacity_grams: TotalGrams


class BatchReceived(Event):
    """A dispatched batch (or a direct-haul trip) crossed the plant's weighbridge.

    Declared and measured quantities are kept apart; received = accepted + refused, and
    the acceptance status must agree with the refused quantity (domain.md).
    """

    event_type = "treatment.batch_received"

    receipt_id: Id
    plant_id: Id
    batch_id: Id | None = None
    trip_id: Id | None = None
    category: Category
    declared_grams: Grams
    received_grams: PositiveGrams
    accepted_grams: Grams
    refused_grams: Grams
    status: AcceptanceStatus
    refusal_reason: Text = ""
    received_at: UtcDatetime
    over_capacity: bool = False

    @model_validator(mode="after")
    def _quantities_add_up(self) -> BatchReceived:
        if (self.batch_id is None) == (self.trip_id is None):
            raise ValueError("batch_id/trip_id: exactly one must be given")
        if self.accepted_grams + self.refused_grams != self.received_grams:
            raise ValueError("refused_grams: received_grams must equal accepted + refused")
        if self.status is AcceptanceStatus.ACCEPTED and self.refused_grams != 0:
            raise ValueError("refused_grams: must be 0 when status is ACCEPTED")
        if self.status is AcceptanceStatus.REFUSED and self.refused_grams != self.received_grams:
            raise ValueError("refused_grams: must equal received_grams when status is REFUSED")
        if self.status is AcceptanceStatus.PARTIALLY_REFUSED and not (
            0 < self.refused_grams < self.received_grams
        ):
            raise ValueError(
                "refused_grams: must be between 0 and received_grams when PARTIALLY_REFUSED"
            )
        if self.refused_grams > 0 and not self.refusal_reason:
            raise ValueError("refusal_reason: required when anything is refused")
        return self


class RefusedWasteRedirected(Event):
    """The refused part of a receipt left the plant: back to the station or to another plant."""

    event_type = "treatment.refused_waste_redirected"

    receipt_id: Id
    plant_id: Id
    batch_id: Id | None = None
    trip_id: Id | None = None
    grams: PositiveGrams
    destination_kind: Literal["station", "plant"]
    destination_id: Id
    redirected_at: UtcDatetime


class TreatmentOutput(Value):
    """Something that came out of treatment: recovered material, compost, residue."""

    kind: Code
    grams: Grams


class TreatmentRecorded(Event):
    """How much of a receipt's accepted waste went to each treatment method, and outputs.

    ``previously_treated_grams`` is what earlier records of the same receipt already
    treated, so that the cap "never more than was accepted" is checkable from the event.
    """

    event_type = "treatment.treatment_recorded"

    treatment_id: Id
    plant_id: Id
    receipt_id: Id
    batch_id: Id | None = None
    trip_id: Id | None = None
    accepted_grams: Grams
    previously_treated_grams: Grams = 0
    methods: dict[TreatmentMethod, Grams] = Field(min_length=1)
    outputs: tuple[TreatmentOutput, ...] = ()
    energy_kwh: int = Field(default=0, ge=0, le=10**12)
    residue_grams: Grams = 0
    residue_destination: Text = ""
    treated_at: UtcDatetime

    @model_validator(mode="after")
    def _split_within_accepted(self) -> TreatmentRecorded:
        treated = sum(self.methods.values())
        if treated <= 0:
            raise ValueError("methods: must treat a positive quantity")
        if self.previously_treated_grams + treated > self.accepted_grams:
            raise ValueError(
                "methods: treatment split sums to more than the accepted quantity"
            )
        if self.residue_grams > 0 and not self.residue_destination:
            raise ValueError("residue_destination: required when residue_grams > 0")
        return self

    @property
    def treated_grams(self) -> int:
        """Total grams treated by this record."""
        return sum(self.methods.values())


EVENTS: tuple[type[Event], ...] = (
    PlantRegistered,
    BatchReceived,
    RefusedWasteRedirected,
    TreatmentRecorded,
)
