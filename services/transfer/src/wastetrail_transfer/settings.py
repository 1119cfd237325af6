"""The transfer service's own knobs (environment prefix ``WASTETRAIL_``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field
from wastetrail_runtime.settings import ServiceSettings

from wastetrail_transfer.domain.alarms import AlarmDelays
from wastetrail_transfer.domain.reconciliation import Tolerance


class TransferSettings(ServiceSettings):
    """Reconciliation tolerance and alarm delays; None switches a tolerance part off."""

    service: str = "transfer"
    # A few OIML R76 class III divisions on a 60 t bridge (20 kg each) as an absolute floor.
    reconcile_tolerance_grams: int | None = Field(default=60_000, ge=0)
    # Hundredths of a percent at most, so the tolerance stays integer arithmetic.
    reconcile_tolerance_percent: Decimal | None = Field(
        default=Decimal("5"), ge=0, le=100, decimal_places=2
    )
    trip_not_weighed_minutes: int = Field(default=240, ge=1)
    trip_unclosed_not_weighed_minutes: int = Field(default=720, ge=1)
    batch_not_received_minutes: int = Field(default=480, ge=1)
    # Waste should not sit at a transfer station for days (food rots, containers overflow);
    # two days leaves room for a weekend run.
    station_hold_hours: int = Field(default=48, ge=1)
    alarm_sweep_seconds: float = Field(default=60.0, gt=0)

    def tolerance(self) -> Tolerance:
        """The reconciliation tolerance as the domain takes it."""
        percent = self.reconcile_tolerance_percent
        return Tolerance(
            grams=self.reconcile_tolerance_grams,
            basis_points=None if percent is None else int(percent * 100),
        )

    def alarm_delays(self) -> AlarmDelays:
        """The alarm delays as the domain takes them."""
        return AlarmDelays(
            trip_after_close=timedelta(minutes=self.trip_not_weighed_minutes),
            trip_after_start=timedelta(minutes=self.trip_unclosed_not_weighed_minutes),
            batch_after_dispatch=timedelta(minutes=self.batch_not_received_minutes),
            held_at_station=timedelta(hours=self.station_hold_hours),
        )


def transfer_settings(settings: ServiceSettings) -> TransferSettings:
    """The transfer settings of a runtime (a plain ServiceSettings gets the knobs' defaults)."""
    if isinstance(settings, TransferSettings):
        return settings
    return TransferSettings(**settings.model_dump())
