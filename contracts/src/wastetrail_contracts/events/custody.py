"""Custody alerts: gaps in the chain that someone must chase (raised by any chain service)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from wastetrail_contracts.base import CommuneCode, Event, Id, Text, TotalGrams, UtcDatetime
from wastetrail_contracts.enums import AlertKind

SubjectKind = Literal["load", "trip", "batch", "receipt", "plant"]

# What each kind of alert is about; a mismatch means the raiser mixed up its ids.
ALERT_SUBJECTS: dict[AlertKind, frozenset[str]] = {
    # Per trip since the sweep raises it for all loads of an unweighed trip; "load" stays
    # valid for logs that named one load.
    AlertKind.LOAD_NOT_RECEIVED: frozenset({"trip", "load"}),
    AlertKind.TRIP_NOT_WEIGHED: frozenset({"trip"}),
    AlertKind.TRIP_WEIGHT_MISMATCH: frozenset({"trip"}),
    AlertKind.BATCH_NOT_RECEIVED: frozenset({"batch"}),
    AlertKind.RECEIPT_DISCREPANCY: frozenset({"receipt", "batch", "trip"}),
    AlertKind.PLANT_OVER_CAPACITY: frozenset({"plant"}),
    AlertKind.WASTE_HELD_AT_STATION: frozenset({"trip"}),
    AlertKind.ACCEPTED_NOT_TREATED: frozenset({"receipt"}),
    AlertKind.REFUSED_NOT_REDIRECTED: frozenset({"receipt"}),
}
# Alerts about weights must say which weights disagreed.
WEIGHT_ALERTS = frozenset({AlertKind.TRIP_WEIGHT_MISMATCH, AlertKind.RECEIPT_DISCREPANCY})


def _check_subject(kind: AlertKind, subject_kind: str) -> None:
    allowed = ALERT_SUBJECTS[kind]
    if subject_kind not in allowed:
        raise ValueError(
            f"subject_kind: a {kind.value} alert is about {' or '.join(sorted(allowed))}"
        )


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
    commune: CommuneCode | None = None  # where the subject came from, for commune reports

    @model_validator(mode="after")
    def _consistent(self) -> CustodyAlertRaised:
        _check_subject(self.kind, self.subject_kind)
        if self.kind in WEIGHT_ALERTS and (
            self.expected_grams is None or self.observed_grams is None
        ):
            raise ValueError(
                f"expected_grams/observed_grams: both required for a {self.kind.value} alert"
            )
        return self


class CustodyAlertCleared(Event):
    """A later event closed the gap (the trip was weighed, the batch arrived...)."""

    event_type = "custody.alert_cleared"

    alert_id: Id
    kind: AlertKind
    subject_kind: SubjectKind
    subject_id: Id
    resolution: Text
    cleared_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> CustodyAlertCleared:
        _check_subject(self.kind, self.subject_kind)
        return self


EVENTS: tuple[type[Event], ...] = (CustodyAlertRaised, CustodyAlertCleared)
