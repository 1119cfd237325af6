"""Custody gaps over time: when a trip or a batch becomes overdue.

Three gaps are this service's to watch, each raised by the periodic sweep past its delay
(settings) and cleared by the event that closes it:

* ``LOAD_NOT_RECEIVED`` — a collected trip weighed nowhere (no station, no plant for direct
  haul): suspected illegal dumping (điểm đen). **One alarm per trip**, not per load: the
  trip is the unit of custody (its loads ride together and turn up together), so a
  Department reads one gap with its load count, grams and commune, not ninety-seven copies
  that all clear at once and inflate the count of gaps. The name says what the Department
  cares about — household waste that was collected and never received — rather than the
  station's word for it (``TRIP_NOT_WEIGHED``, which it replaces and which is no longer
  raised). Cleared by the trip's weigh-in at a station or its receipt at a plant.
* ``BATCH_NOT_RECEIVED`` — a dispatched batch no plant received. Cleared by the receipt.
* ``WASTE_HELD_AT_STATION`` — a trip weighed in at a station whose net weight has not all
  left in dispatched batches (unallocated, or in a batch still open or sealed) within the
  holding delay, counted from the weigh-in. Cleared when the batch that takes its last
  grams is dispatched.
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
    held_at_station: timedelta


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


def station_hold_deadline(weighed_in_at: datetime, delays: AlarmDelays) -> datetime:
    """When waste weighed in at a station and not yet dispatched becomes overdue."""
    return weighed_in_at + delays.held_at_station


def held_grams(net_grams: int | None, gross_grams: int | None, dispatched_grams: int) -> int:
    """Grams of a trip still at its station: its net less what left in dispatched batches.

    Before the weigh-out the net is unknown; the gross weight bounds what is held.
    """
    weighed = net_grams if net_grams is not None else gross_grams or 0
    return max(0, weighed - dispatched_grams)


def released(net_grams: int | None, dispatched_grams: int) -> bool:
    """Whether all of a trip's net weight has left its station in dispatched batches."""
    return net_grams is not None and dispatched_grams >= net_grams
