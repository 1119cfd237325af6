"""Bounds on what a caller may send, written once for the four services.

A value outside these bounds is refused with a 422 problem naming the field, before any
handler runs, instead of reaching PostgreSQL or the clock arithmetic and coming back as a 500:

- pages: ``Limit`` (1..1000) and ``Offset`` (0..10⁹; PostgreSQL's OFFSET is a 64-bit integer);
- times and days: years 2000..2099 (``datetime.astimezone`` overflows on year 1; nothing in
  a waste trail happened before 2000);
- text: no NUL (PostgreSQL cannot store it) and no other control character except tab and
  line breaks, in every string of every request body (``RequestBody``) — path and query
  strings are checked by ``wastetrail_runtime.guard``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from fastapi import Query
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

MAX_LIMIT = 1000
MAX_OFFSET = 10**9
FIRST_YEAR = 2000
LAST_YEAR = 2099

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]

# C0 controls but tab, line feed and carriage return, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable_text(value: str) -> str:
    """``value`` unchanged, or ValueError when it holds NUL or a control character."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"must not contain control characters (found U+{ord(found[0]):04X})")
    return value


def in_window(value: date) -> date:
    """A day or time of years FIRST_YEAR..LAST_YEAR, else ValueError."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be in the years {FIRST_YEAR}..{LAST_YEAR}")
    return value


Day = Annotated[date, AfterValidator(in_window)]
# A name a person typed (a station, a collector): trimmed, never empty.
Name = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
Instant = Annotated[datetime, AfterValidator(in_window)]


def _check(value: Any) -> None:
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, date):  # datetime too
        in_window(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check(key)
            _check(item)


class RequestBody(BaseModel):
    """Base of every request body: unknown fields are refused (a typo is an error, not a
    silent default); every string must be storable text and every date or time in the
    sane window, wherever it sits in the body (nested bodies check themselves)."""

    model_config = ConfigDict(extra="forbid")
    # Fields holding raw items that the handler validates one by one (an offline batch:
    # one bad item is rejected on its own, the others are kept).
    items_judged_alone: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name not in cls.items_judged_alone:
            _check(value)
        return value
