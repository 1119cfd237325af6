"""What callers ask the plant to do: JSON bodies with constrained fields.

A value out of range is a 422 problem naming the field before any handler runs; rules
that tie several fields together are checked by the handlers (so the problem still names
the field), and the domain checks the rules that need state.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, Strict, StringConstraints
from wastetrail_contracts.base import Code, CommuneCode, Grams, Id, PositiveGrams, Text
from wastetrail_contracts.enums import AcceptanceStatus, Category, TreatmentMethod
from wastetrail_runtime.inputs import RequestBody

# Alert ids are "<receipt id>.<kind>", so a receipt id leaves room for the suffix.
ReceiptId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
PositiveTotalGrams = Annotated[int, Strict(), Field(gt=0, le=10**15)]
Kwh = Annotated[int, Strict(), Field(ge=0, le=10**12)]


class Command(RequestBody):
    """Base of every request body: unknown fields are refused, numbers are strict."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UpdatePlant(Command):
    """Change a plant's details (its permit or capacity changed)."""

    name: Text = Field(min_length=1)
    commune: CommuneCode
    methods: tuple[TreatmentMethod, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    daily_capacity_grams: PositiveTotalGrams


class RegisterPlant(UpdatePlant):
    """Register a plant: permitted methods, accepted categories, daily capacity."""

    plant_id: Id


class ReceiveDelivery(Command):
    """What crossed the weighbridge and what the plant decided.

    Exactly one of ``batch_id`` (a dispatched batch), ``trip_id`` (direct haul: give the
    vehicle's ``gross_grams`` and, if it was weighed out, ``tare_grams``; otherwise its
    registered tare is used) or ``redirect_id`` (another plant's refused waste sent here).
    For a batch or a redirect, ``measured_grams`` is the net weighbridge weight.
    """

    receipt_id: ReceiptId | None = None
    batch_id: Id | None = None
    trip_id: Id | None = None
    redirect_id: Id | None = None
    measured_grams: PositiveGrams | None = None
    gross_grams: PositiveGrams | None = None
    tare_grams: PositiveGrams | None = None
    category: Category | None = None
    status: AcceptanceStatus
    refused_grams: Grams | None = None
    refusal_reason: Text = ""


class RedirectRefused(Command):
    """Send (part of) a receipt's refused waste back to a station or on to another plant.

    ``grams`` defaults to everything still held; ``destination_id`` defaults, for a
    station, to the station that dispatched the batch.
    """

    redirect_id: Id | None = None
    destination_kind: Literal["station", "plant"]
    destination_id: Id | None = None
    grams: PositiveGrams | None = None


class Output(Command):
    """Something that came out of treatment (recovered material, compost, residue...)."""

    kind: Code
    grams: Grams


class RecordTreatment(Command):
    """How much of a receipt's accepted waste went to each method, and what came out."""

    treatment_id: Id | None = None
    methods: dict[TreatmentMethod, PositiveGrams] = Field(min_length=1)
    outputs: tuple[Output, ...] = Field(default=(), max_length=50)
    energy_kwh: Kwh = 0
    residue_grams: Grams = 0
    residue_destination: Text = ""
