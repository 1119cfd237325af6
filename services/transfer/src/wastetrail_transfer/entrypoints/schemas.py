"""Request bodies of the HTTP API: constrained fields, so bad input is a 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, Field
from wastetrail_contracts.base import Code, CommuneCode, Id, PositiveGrams, TotalGrams
from wastetrail_contracts.enums import Category
from wastetrail_runtime.inputs import Name, RequestBody

T = TypeVar("T")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$"


def _unique(values: list[Category]) -> list[Category]:
    if len(set(values)) != len(values):
        raise ValueError("a category appears twice")
    return values


class StationIn(RequestBody):
    """Register a station."""

    station_id: Id
    name: Name
    commune: CommuneCode
    capacity_grams: TotalGrams
    categories: Annotated[list[Category], Field(min_length=1), AfterValidator(_unique)]


class WeighInIn(RequestBody):
    """A loaded vehicle on the bridge."""

    trip_id: Id
    vehicle_id: Id
    gross_grams: PositiveGrams


class WeighOutIn(RequestBody):
    """The empty vehicle on the bridge; omit ``tare_grams`` when it left without weighing out."""

    tare_grams: PositiveGrams | None = None


class DirectHaulIn(RequestBody):
    """The trip goes straight to this plant."""

    plant_id: Id


class BatchIn(RequestBody):
    """Open a batch for one category."""

    category: Category


class AllocationIn(RequestBody):
    """Put a trip into a batch: ``grams`` of it, or all that is left of it when omitted."""

    trip_id: Id
    grams: PositiveGrams | None = None


class SealIn(RequestBody):
    """The seal put on the container."""

    seal_number: Code


class DispatchIn(RequestBody):
    """Where the sealed batch goes, on which vehicle, weighing how much when it left."""

    plant_id: Id
    vehicle_id: Id
    dispatched_grams: PositiveGrams | None = None


class ClearAlertIn(RequestBody):
    """Why an alert is closed by hand (after investigating a weight mismatch)."""

    resolution: Name


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    limit: int
    offset: int
