"""Response bodies of the treatment HTTP API (what /docs shows)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from wastetrail_contracts.fate import FateNode
from wastetrail_runtime import alarms

from wastetrail_treatment.adapters.tables import Plant, Receipt, Redirect, TreatmentRecord

T = TypeVar("T")


class Out(BaseModel):
    """Base of the response models: built from table rows."""

    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    limit: int
    offset: int


class AlertOut(alarms.AlertOut):
    """A custody alert raised by this service, with the plant it concerns."""

    model_config = ConfigDict(from_attributes=True)

    plant_id: str | None


class PlantOut(Out):
    """A plant as registered."""

    plant_id: str
    name: str
    commune: str
    methods: list[str]
    categories: list[str]
    daily_capacity_grams: int
    registered_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Plant) -> PlantOut:
        """From the table row."""
        return cls.model_validate(row)


class PlantDayOut(BaseModel):
    """What a plant received on one operating day (UTC+7) against its capacity."""

    plant_id: str
    day: date
    received_grams: int
    receipts: int
    daily_capacity_grams: int
    over_capacity: bool


class RedirectOut(Out):
    """Refused waste sent back to a station or on to another plant."""

    redirect_id: str
    receipt_id: str
    plant_id: str
    grams: int
    destination_kind: str
    destination_id: str
    redirected_at: datetime
    received_receipt_id: str | None
    actor: str


class OutputOut(BaseModel):
    """One output of a treatment."""

    kind: str
    grams: int


class TreatmentOut(Out):
    """A treatment record."""

    treatment_id: str
    receipt_id: str
    plant_id: str
    methods: dict[str, int]
    outputs: list[OutputOut]
    energy_kwh: int
    residue_grams: int
    residue_destination: str
    treated_grams: int
    previously_treated_grams: int
    treated_at: datetime
    actor: str


class ReceiptOut(Out):
    """A weighbridge receipt with its running totals (and, when asked, its history)."""

    receipt_id: str
    plant_id: str
    batch_id: str | None
    trip_id: str | None
    redirect_id: str | None
    source_receipt_id: str | None
    category: str
    declared_grams: int
    received_grams: int
    accepted_grams: int
    refused_grams: int
    status: str
    refusal_reason: str
    received_at: datetime
    plant_day: date
    discrepancy: bool
    over_capacity: bool
    gross_grams: int | None
    tare_grams: int | None
    tare_source: str | None
    treated_grams: int
    redirected_grams: int
    untreated_grams: int
    held_refused_grams: int
    actor: str
    treatments: list[TreatmentOut] = []
    redirects: list[RedirectOut] = []

    @classmethod
    def of(cls, row: Receipt, treatments: list[TreatmentRecord] | None = None,
           redirects: list[Redirect] | None = None) -> ReceiptOut:
        """From the table rows."""
        data = row.model_dump()
        data.update(
            untreated_grams=row.accepted_grams - row.treated_grams,
            held_refused_grams=row.refused_grams - row.redirected_grams,
            treatments=[TreatmentOut.model_validate(t) for t in treatments or ()],
            redirects=[RedirectOut.model_validate(x) for x in redirects or ()],
        )
        return cls.model_validate(data)


class IncomingBatchOut(Out):
    """A batch dispatched to the plant and not received yet."""

    batch_id: str
    station_id: str
    category: str
    seal_number: str
    dispatched_grams: int | None
    vehicle_id: str | None
    dispatched_at: datetime | None


class IncomingOut(BaseModel):
    """What is on its way to a plant."""

    plant_id: str
    batches: list[IncomingBatchOut]
    redirects: list[RedirectOut]


class LoadOut(Out):
    """A scanned load as the collection topic described it."""

    load_id: str
    trip_id: str
    generator_id: str
    commune: str
    category: str
    grams: int
    collected_at: datetime
    device_id: str
    vehicle_id: str


class TripOut(Out):
    """A trip as the collection and transfer topics (or the plant) described it."""

    trip_id: str
    vehicle_id: str | None
    collector_id: str | None
    started_at: datetime | None
    closed_at: datetime | None
    declared_total_grams: int | None
    scanned_total_grams: int | None
    weighed_site: str | None
    weighed_site_id: str | None
    net_grams: int | None
    weighed_at: datetime | None
    weighed_by: str | None
    reconciled_discrepancy: bool | None


class BatchOut(Out):
    """A batch the load travelled in."""

    batch_id: str
    station_id: str
    category: str
    seal_number: str
    total_grams: int | None
    consolidated_at: datetime | None
    consolidated_by: str | None
    plant_id: str | None
    dispatched_grams: int | None
    dispatched_at: datetime | None
    dispatched_by: str | None


class FateNodeOut(BaseModel):
    """One step of a load's path, with the load's grams that took it."""

    kind: str
    grams: int
    ref: str | None = None
    site_id: str | None = None
    at: datetime | None = None
    actor: str | None = None
    children: list[FateNodeOut] = []

    @classmethod
    def of(cls, node: FateNode) -> FateNodeOut:
        """From the domain's tree."""
        return cls(kind=node.kind, grams=node.grams, ref=node.ref, site_id=node.site_id,
                   at=node.at, actor=node.actor, children=[cls.of(c) for c in node.children])


class DestinationOut(BaseModel):
    """Where some of the load ended up (a leaf of the tree)."""

    kind: str
    grams: int
    ref: str | None
    site_id: str | None
    at: datetime | None


class FateOut(BaseModel):
    """Where a load went: its path and the split of its grams (rule: wastetrail_contracts.fate)."""

    load: LoadOut
    trip: TripOut
    batches: list[BatchOut]
    grams: int
    treated_by_method: dict[str, int]
    destinations: list[DestinationOut]
    tree: FateNodeOut



class TripFatesOut(BaseModel):
    """The fate of every known load of one trip."""

    trip: TripOut
    loads: list[FateOut]
