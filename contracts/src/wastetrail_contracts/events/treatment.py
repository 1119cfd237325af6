"""Events produced by the treatment service: plants, receipts, treatment records."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

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

    @model_validator(mode="after")
    def _no_duplicates(self) -> PlantRegistered:
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("methods: a method appears twice")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories: a category appears twice")
        return self


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
    # The refused part of another receipt that this receipt weighed (absent: a batch or
    # a direct-haul trip arriving). Absent in events written before it was recorded.
    redirect_id: Id | None = None
    # The discrepancy threshold in force when the plant weighed it (percent of declared):
    # the trace and the report judge the receipt by this, not by their own setting.
    # Absent in events written before it was recorded (the rule then was 10 %).
    discrepancy_threshold_percent: Annotated[int, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _quantities_add_up(self) -> BatchReceived:
        if (self.batch_id is None) == (self.trip_id is None):
            raise ValueError("batch_id/trip_id: exactly one must be given")
        if self.refused_grams > self.received_grams:
            raise ValueError("refused_grams: must not exceed received_grams")
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

    @property
    def discrepancy_grams(self) -> int:
        """Weighbridge weight minus the declared (dispatched) weight; negative if less arrived."""
        return self.received_grams - self.declared_grams

    def significant_discrepancy(self, threshold_percent: int) -> bool:
        """Whether |received − declared| exceeds ``threshold_percent`` % of the declared weight.

        Integer arithmetic, so the decision is the same on every machine that replays it.
        """
        return abs(self.discrepancy_grams) * 100 > threshold_percent * self.declared_grams


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
    # Names the redirect for the destination plant's receipt (BatchReceived.redirect_id).
    # Absent in events written before it was recorded.
    redirect_id: Id | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> RefusedWasteRedirected:
        if (self.batch_id is None) == (self.trip_id is None):
            raise ValueError("batch_id/trip_id: exactly one must be given")
        if self.destination_kind == "plant" and self.destination_id == self.plant_id:
            raise ValueError("destination_id: refused waste cannot be redirected to the same plant")
        return self


# Methods that can produce electricity or heat (kWh in a treatment record).
ENERGY_METHODS = frozenset(
    {
        TreatmentMethod.INCINERATION_ENERGY_RECOVERY,
        TreatmentMethod.ANAEROBIC_DIGESTION,
        TreatmentMethod.CO_PROCESSING,
    }
)


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
    energy_kwh: Annotated[int, Strict(), Field(ge=0, le=10**12)] = 0
    residue_grams: Grams = 0
    residue_destination: Text = ""
    treated_at: UtcDatetime

    @model_validator(mode="after")
    def _split_within_accepted(self) -> TreatmentRecorded:
        if self.batch_id is not None and self.trip_id is not None:
            raise ValueError("batch_id/trip_id: give at most one")
        treated = sum(self.methods.values())
        if treated <= 0:
            raise ValueError("methods: must treat a positive quantity")
        if self.previously_treated_grams + treated > self.accepted_grams:
            raise ValueError(
                "methods: treatment split sums to more than the accepted quantity"
            )
        # Mass balance: what came out cannot outweigh what went in (a kg/g mix-up shows here).
        if sum(o.grams for o in self.outputs) + self.residue_grams > treated:
            raise ValueError("outputs: outputs and residue weigh more than was treated")
        if self.residue_grams > 0 and not self.residue_destination:
            raise ValueError("residue_destination: required when residue_grams > 0")
        if self.energy_kwh > 0 and not ENERGY_METHODS.intersection(
            m for m, grams in self.methods.items() if grams > 0
        ):
            raise ValueError("energy_kwh: no energy-recovering method was used")
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
