"""Custody alerts: gaps in the chain that someone must chase (raised by any chain service)."""

from __future__ import annotations

from typing import Literal

from wastetrail_contracts.base import Event, Id, Text, TotalGrams, UtcDatetime
from wastetrail_contracts.enums import AlertKind

SubjectKind = Literal["load", "trip", "batch", "receipt", "plant"]


class CustodyAlertRaised(Event):
    """A custody gap or anomaly was detected; it stays open until cleared."""

    event_type = "custody.alert_raised"

    alert_id: Id
    kind: AlertKind
    subject_kind: SubjectKind
    subject_id: Id
    detail: Text
    expected_grams: TotalGrams | None = None
    observed_grams: TotalGrams | None = None
    raised_at: UtcDatetime


class CustodyAlertCleared(Event):
    """A later event closed the gap (the trip was weighed, the batch arrived...)."""

    event_type = "custody.alert_cleared"

    alert_id: Id
    kind: AlertKind
    subject_kind: SubjectKind
    subject_id: Id
    resolution: Text
    cleared_at: UtcDatetime


EVENTS = (CustodyAlertRaised, CustodyAlertCleared)
