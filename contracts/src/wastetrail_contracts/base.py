"""Base class of every event payload and the constrained scalar types they use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# Grams: integers only (domain.md). The upper bound is a physical one: no vehicle or
# container on a road carries more than 100 tonnes, so anything above is a typo or an attack.
MAX_GRAMS = 100_000_000
Grams = Annotated[int, Field(ge=0, le=MAX_GRAMS)]
PositiveGrams = Annotated[int, Field(gt=0, le=MAX_GRAMS)]
# Large aggregates (a plant's month) may exceed one vehicle, so they get a wider bound.
TotalGrams = Annotated[int, Field(ge=0, le=10**15)]
Dong = Annotated[int, Field(ge=0, le=10**15)]
SignedDong = Annotated[int, Field(ge=-(10**15), le=10**15)]
Units = Annotated[int, Field(ge=0, le=10**12)]

# Identifiers: lower-case prefix, a dash, then letters, digits, '-' or '_'. Codes that come
# from outside (QR tags, plates, seals) are free-form but bounded and printable.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$")]
Code = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f]+$")]
Text = Annotated[str, StringConstraints(max_length=500)]
CommuneCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Period = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class Event(BaseModel):
    """A fact that happened, as a frozen, strict payload.

    Subclasses set ``event_type`` (dotted, e.g. ``collection.load_collected``) and
    ``schema_version``; the codec's registry maps (type, version) back to the class.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1


def _require_utc(value: datetime) -> datetime:
    """Event times are UTC (domain.md); a naive or non-UTC time is a caller's bug."""
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("must be a timezone-aware UTC datetime")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class Value(BaseModel):
    """A frozen, strict value nested inside an event payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")
