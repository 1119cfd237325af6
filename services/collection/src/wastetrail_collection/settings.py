"""The collection service's own knobs (environment prefix ``WASTETRAIL_``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from wastetrail_runtime.settings import ServiceSettings

from wastetrail_collection.domain.rules import GeoBounds, ScanPolicy

NAME = "collection"
# Items in one offline batch: the request schema's maximum, and the setting's ceiling (a
# deployment may lower it; the handler then refuses a longer batch with 413).
BATCH_ITEMS = 1000


class CollectionSettings(ServiceSettings):
    """Province bounds, clock skew, bag weights, batch limits, report time zone."""

    service: str = NAME
    # The province a device may scan in. The default is mainland Vietnam's bounding box;
    # a deployment sets its own province (e.g. WASTETRAIL_PROVINCE_MIN_LATITUDE=20.56).
    province_min_latitude: float = Field(default=8.18, ge=-90, le=90)
    province_max_latitude: float = Field(default=23.40, ge=-90, le=90)
    province_min_longitude: float = Field(default=102.14, ge=-180, le=180)
    province_max_longitude: float = Field(default=109.47, ge=-180, le=180)
    clock_skew_seconds: int = Field(default=120, ge=0, le=3600)
    # Priced bags (Circular 02/2022): estimated grams per bag size, when a device sends none.
    bag_grams: dict[str, int] = Field(default_factory=lambda: {"S": 2_000, "M": 5_000,
                                                               "L": 10_000})
    grams_per_litre: int = Field(default=150, ge=0)
    max_batch_scans: int = Field(default=BATCH_ITEMS, ge=1, le=BATCH_ITEMS)
    max_import_rows: int = Field(default=100_000, ge=1)
    max_import_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # Daily totals are a report: days are the province's calendar days (domain.md: UTC in
    # events, local time only at the edges).
    report_timezone: str = "Asia/Ho_Chi_Minh"
    write_retries: int = Field(default=3, ge=1, le=10)

    def scan_policy(self) -> ScanPolicy:
        """The validation policy these settings describe."""
        return ScanPolicy(
            bounds=GeoBounds(self.province_min_latitude, self.province_max_latitude,
                             self.province_min_longitude, self.province_max_longitude),
            clock_skew=timedelta(seconds=self.clock_skew_seconds),
            bag_grams=dict(self.bag_grams),
            grams_per_litre=self.grams_per_litre,
        )
