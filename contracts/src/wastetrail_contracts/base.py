"""Base class of every event payload and the constrained scalar types they use."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)

# Grams: integers only (domain.md). The upper bound is a physical one: no vehicle or
# container on a road carries more than 100 tonnes, so anything above is a typo or an attack.
MAX_GRAMS = 100_000_000
# Large aggregates (a plant's daily capacity, a month of charged waste) exceed one vehicle.
MAX_TOTAL_GRAMS = 10**15
MAX_DONG = 10**15

# Integers are strict: a float, a numeric string or a bool is refused instead of being
# coerced, so 1.5 kg typed as grams or "12" from a form cannot slip into the log.
Grams = Annotated[int, Strict(), Field(ge=0, le=MAX_GRAMS)]
PositiveGrams = Annotated[int, Strict(), Field(gt=0, le=MAX_GRAMS)]
TotalGrams = Annotated[int, Strict(), Field(ge=0, le=MAX_TOTAL_GRAMS)]
SignedGrams = Annotated[int, Strict(), Field(ge=-MAX_TOTAL_GRAMS, le=MAX_TOTAL_GRAMS)]
Dong = Annotated[int, Strict(), Field(ge=0, le=MAX_DONG)]
PositiveDong = Annotated[int, Strict(), Field(gt=0, le=MAX_DONG)]
SignedDong = Annotated[int, Strict(), Field(ge=-MAX_DONG, le=MAX_DONG)]
Units = Annotated[int, Strict(), Field(ge=0, le=10**12)]
Count = Annotated[int, Strict(), Field(ge=0, le=10**9)]

# Identifiers: a letter or digit, then letters, digits, '_', '.', ':' or '-' (80 at most).
# Codes that come from outside (QR tags, plates, seals) are free-form but bounded and
# printable.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$")]
Code = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f]+$")]
# Free text: no NUL (PostgreSQL cannot store it) nor other control characters but tab and
# line breaks.
Text = Annotated[str, StringConstraints(max_length=500,
                                        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
CommuneCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# service ':' topic ':' partition; Kafka topic names go up to 249 characters.
ChainId = Annotated[
    str, StringConstraints(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")
]
# A billing month, YYYY-MM, of the years 2000..2099: month arithmetic and the calendar
# overflow on year 0, and nothing in a waste trail is billed before 2000.
Period = Annotated[str, StringConstraints(pattern=r"^20\d{2}-(0[1-9]|1[0-2])$")]


class Event(BaseModel):
    """A fact that happened, as a frozen, strict payload.

    Subclasses set ``event_type`` (dotted, e.g. ``collection.load_collected``) and
    ``schema_version``; the codec's registry maps (type, version) back to the class.
    Enums and times may be given as their JSON strings (that is how payloads arrive),
    but numbers are strict and unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _no_numbers(value: object) -> object:
    # Lax pydantic reads 1700000000 as a Unix timestamp; an event time given as a number is
    # far more likely a unit mix-up (ms vs s) than intent, so only ISO strings and objects pass.
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 string or a datetime/date, not a number")
    return value


def _require_utc(value: datetime) -> datetime:
    """Event times are UTC (domain.md); a naive or non-UTC time is a caller's bug."""
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("must be a timezone-aware UTC datetime")
    return value.astimezone(UTC)


def _date_only(value: object) -> object:
    # A datetime is a date subclass, and pydantic reads "2026-01-01T00:00:00Z" as a date;
    # accepting either would silently drop a time and its zone.
    if isinstance(value, datetime) or (
        isinstance(value, str) and not _ISO_DATE.fullmatch(value)
    ):
        raise ValueError("must be a calendar date (YYYY-MM-DD), not a datetime")
    return _no_numbers(value)


UtcDatetime = Annotated[datetime, BeforeValidator(_no_numbers), AfterValidator(_require_utc)]
Day = Annotated[date, BeforeValidator(_date_only)]
Latitude = Annotated[float, Strict(), Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Strict(), Field(ge=-180, le=180, allow_inf_nan=False)]


class Value(BaseModel):
    """A frozen, strict value nested inside an event payload."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
