"""Custody gaps over time: when a trip or a batch becomes overdue.

A collected trip must be weighed somewhere (a station, or a plant for direct haul);
a dispatched batch must be received by its plant. Past the configured delay the gap
is an alarm — suspected illegal dumping until proven otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class AlarmDelays:
    """How long custody may stay open before an alarm is raised."""

    trip_after_close: timedelta
    trip_after_start: timedelta
    batch_after_dispatch: timedelta


def trip_weigh_deadline(started_at: datetime | None, closed_at: datetime | None,
                        delays: AlarmDelays) -> datetime | None:
    """When a trip not yet weighed becomes overdue; None when nothing says it was collected.

    A closed trip counts from its close. A trip never closed (the crew forgot, the device
    died) counts from its start with the longer delay, so a long route is not flagged.
    """
    if closed_at is not None:
        return closed_at + delays.trip_after_close
    if started_at is not None:
        return started_at + delays.trip_after_start
    return None


def batch_receipt_deadline(dispatched_at: datetime, delays: AlarmDelays) -> datetime:
    """When a dispatched batch not yet received becomes overdue."""
    return dispatched_at + delays.batch_after_dispatch


def overdue(deadline: datetime | None, now: datetime) -> bool:
    """Whether ``now`` is at or past the deadline."""
    return deadline is not None and now >= deadline
