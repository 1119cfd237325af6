"""Custody gaps at a plant: when accepted or refused waste has waited too long.

Two gaps are the plant's to close, each raised by the periodic sweep once its delay
(settings) has passed since the weighbridge receipt, and cleared by the event that closes
it:

* ``ACCEPTED_NOT_TREATED`` — accepted grams not yet covered by treatment records. Cleared
  by the ``TreatmentRecorded`` that brings the treated total up to the accepted grams.
* ``REFUSED_NOT_REDIRECTED`` — refused grams still at the plant's gate, neither sent on to
  another plant nor returned to a station. Cleared by the ``RefusedWasteRedirected`` that
  accounts for the last refused gram.

Both are about one receipt (the subject), so a receipt carries at most one of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from wastetrail_treatment.domain.receipt import ReceiptBalance


@dataclass(frozen=True)
class AlarmDelays:
    """How long a plant may hold waste before an alarm is raised."""

    untreated: timedelta
    refused: timedelta


def treatment_deadline(received_at: datetime, delays: AlarmDelays) -> datetime:
    """When accepted waste not yet covered by treatment records becomes overdue."""
    return received_at + delays.untreated


def redirect_deadline(received_at: datetime, delays: AlarmDelays) -> datetime:
    """When refused waste not yet redirected or returned becomes overdue."""
    return received_at + delays.refused


def untreated_overdue(balance: ReceiptBalance, received_at: datetime, delays: AlarmDelays,
                      now: datetime) -> bool:
    """Accepted grams remain untreated at or past the deadline."""
    return balance.untreated_grams > 0 and now >= treatment_deadline(received_at, delays)


def refused_overdue(balance: ReceiptBalance, received_at: datetime, delays: AlarmDelays,
                    now: datetime) -> bool:
    """Refused grams remain at the plant at or past the deadline."""
    return balance.held_refused_grams > 0 and now >= redirect_deadline(received_at, delays)
