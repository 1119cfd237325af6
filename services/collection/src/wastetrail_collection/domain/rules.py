"""What the rules need to know, and what a broken rule says: plain frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Rejection:
    """A broken rule: a stable ``reason`` code, the offending ``field`` and a human detail."""

    reason: str
    field: str
    detail: str


@dataclass(frozen=True)
class GeoBounds:
    """A latitude/longitude box: the province a device may scan in."""

    min_latitude: float
    max_latitude: float
    min_longitude: float
    max_longitude: float

    def check(self, latitude: float | None, longitude: float | None) -> Rejection | None:
        """None when the position is inside (or absent), else why it is not acceptable."""
        if latitude is None and longitude is None:
            return None
        if latitude is None or longitude is None:
            missing = "latitude" if latitude is None else "longitude"
            return Rejection("gps-incomplete", missing,
                             "give both latitude and longitude, or neither")
        if not self.min_latitude <= latitude <= self.max_latitude:
            return Rejection(
                "gps-outside-province", "latitude",
                f"latitude {latitude} is outside the province "
                f"({self.min_latitude}..{self.max_latitude})",
            )
        if not self.min_longitude <= longitude <= self.max_longitude:
            return Rejection(
                "gps-outside-province", "longitude",
                f"longitude {longitude} is outside the province "
                f"({self.min_longitude}..{self.max_longitude})",
            )
        return None


@dataclass(frozen=True)
class ScanPolicy:
    """The configurable part of scan validation (from the service settings)."""

    bounds: GeoBounds
    # Devices' clocks drift; a scan stamped a little ahead of the server is not "in the future".
    clock_skew: timedelta = timedelta(minutes=2)
    # Estimated grams per priced bag size and per litre, used when a device sends no grams.
    bag_grams: dict[str, int] = field(default_factory=dict)
    grams_per_litre: int = 0


@dataclass(frozen=True)
class GeneratorFacts:
    """What scan validation needs to know about a generator."""

    generator_id: str
    commune: str
    active: bool


@dataclass(frozen=True)
class TripFacts:
    """What scan validation needs to know about a trip and its vehicle."""

    trip_id: str
    vehicle_id: str
    is_open: bool
    started_at: datetime
    capacity_grams: int


@dataclass(frozen=True)
class DeviceFacts:
    """A collector's device and the vehicle it is bound to (if any)."""

    device_id: str
    collector_id: str
    vehicle_id: str | None
    active: bool = True
