"""The treatment service's knobs (environment prefix ``WASTETRAIL_``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from wastetrail_runtime.settings import ServiceSettings

from wastetrail_treatment.domain.alarms import AlarmDelays

NAME = "treatment"


class TreatmentSettings(ServiceSettings):
    """Service settings plus the plant's tolerances."""

    service: str = NAME
    # Measured vs declared weight differing by MORE than this percentage of the declared
    # weight raises a RECEIPT_DISCREPANCY warning (the US e-Manifest bulk rule is 10 %). A
    # whole percentage, as BatchReceived.significant_discrepancy takes, so auditors replaying
    # the log with the same setting reach the same verdict.
    receipt_discrepancy_percent: int = Field(default=10, ge=0, le=1000)
    # Accepted waste should be covered by a treatment record within a week (plants that
    # book their records weekly still make it); refused waste should leave the plant's
    # gate within two days.
    untreated_alarm_days: int = Field(default=7, ge=1)
    refused_alarm_hours: int = Field(default=48, ge=1)
    alarm_sweep_seconds: float = Field(default=60.0, gt=0)

    def alarm_delays(self) -> AlarmDelays:
        """The alarm delays as the domain takes them."""
        return AlarmDelays(untreated=timedelta(days=self.untreated_alarm_days),
                           refused=timedelta(hours=self.refused_alarm_hours))


def treatment_settings(settings: ServiceSettings) -> TreatmentSettings:
    """The treatment settings of a runtime (a plain ServiceSettings gets the knobs' defaults)."""
    if isinstance(settings, TreatmentSettings):
        return settings
    return TreatmentSettings(**settings.model_dump())
