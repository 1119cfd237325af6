"""Rule violations as values: each carries a stable code, the offending field and a detail.

The HTTP layer maps the kind to a status (`Invalid` → 422, `Conflict` → 409,
`Missing` → 404,
`Forbidden` → 403); the domain never knows about HTTP.
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken; ``code`` is stable, ``field`` names what the caller must change."""

    def __init__(self, code: str, detail: str, *, field: str | None = None,
                 extra: dict[str, int | str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        self.extra = extra or {}


class Invalid(DomainError):
    """The request is well-formed but breaks a rule (over-allocation, wrong category...)."""


class Conflict(DomainError):
    """The request does not fit the current state (batch already sealed, trip weighed...)."""


class Missing(DomainError):
    """Something the request refers to is not known (yet)."""


class Forbidden(DomainError):
    """The caller may not act on this object (another station's trip)."""
