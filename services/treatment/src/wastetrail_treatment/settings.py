"""The treatment service's knobs (environment prefix ``WASTETRAIL_``)."""

from __future__ import annotations

from pydantic import Field
from wastetrail_runtime.settings import ServiceSettings

NAME = "treatment"


class TreatmentSettings(ServiceSettings):
    """Service settings plus the plant's tolerances."""

    service: str = NAME
    # Measured vs declared weight differing by MORE than this percentage of the declared
    # weight raises a RECEIPT_DISCREPANCY warning (the US e-Manifest bulk rule is 10 %). A
    # whole percentage, as BatchReceived.significant_discrepancy takes, so auditors replaying
    # the log with the same setting reach the same verdict.
    receipt_discrepancy_percent: int = Field(default=10, ge=0, le=1000)
