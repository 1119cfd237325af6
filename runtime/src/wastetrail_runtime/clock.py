"""Time as a dependency: the domain never reads the clock itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, simulations)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        """The time it was set to."""
        return self._at

    def set(self, at: datetime) -> None:
        """Jump to a time."""
        self._at = at

    def advance(self, delta: timedelta) -> None:
        """Move forward."""
        self._at += delta
