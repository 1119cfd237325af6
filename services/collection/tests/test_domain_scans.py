"""Scan validation rules (issue 3 item 5), one test per rule, pure and fast."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from wastetrail_collection.domain.ids import load_id_for
from wastetrail_collection.domain.rules import (
    DeviceFacts,
    GeneratorFacts,
    GeoBounds,
    Rejection,
    ScanPolicy,
    TripFacts,
)
from wastetrail_collection.domain.scans import RefusalInput, ScanInput, decide_load, decide_refusal
from wastetrail_contracts.enums import Category, RefusalReason
from wastetrail_contracts.events.collection import LoadCollected, LoadRefused

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STARTED = NOW - timedelta(hours=2)
# Hà Nội, roughly.
POLICY = ScanPolicy(bounds=GeoBounds(20.5, 21.4, 105.3, 106.1), clock_skew=timedelta(minutes=2),
                    bag_grams={"M": 5_000}, grams_per_litre=150)
DEVICE = DeviceFacts("dev-1", "col-1", "veh-1")
TRIP = TripFacts("trip-1", "veh-1", True, STARTED, capacity_grams=2_000_000)
GENERATOR = GeneratorFacts("gen-1", "phuong-1", True)
SCAN = ScanInput(idempotency_key="k-1", trip_id="trip-1", category=Category.FOOD,
                 measure="scale", collected_at=NOW - timedelta(minutes=30), tag_id="QR-1",
                 grams=3_250, latitude=21.03, longitude=105.85)


def decide(scan: ScanInput = SCAN, **over: object) -> LoadCollected | Rejection:
    args: dict[str, object] = {"device": DEVICE, "trip": TRIP, "generator": GENERATOR,
                               "now": NOW, "policy": POLICY}
    args.update(over)
    return decide_load(scan, **args)  # type: ignore[arg-type]


def rejected(result: LoadCollected | Rejection) -> Rejection:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def test_a_valid_scan_becomes_a_load_with_a_stable_id() -> None:
    load = decide()
    assert isinstance(load, LoadCollected)
    assert load.load_id == load_id_for("dev-1", "k-1") == decide().load_id  # type: ignore[union-attr]
    assert (load.generator_id, load.commune, load.grams, load.vehicle_id) == (
        "gen-1", "phuong-1", 3_250, "veh-1")
    assert load.collected_at.tzinfo is not None


def test_the_same_key_on_another_device_is_another_load() -> None:
    assert load_id_for("dev-1", "k-1") != load_id_for("dev-2", "k-1")


def test_unknown_tag() -> None:
    r = rejected(decide(generator=None))
    assert (r.reason, r.field) == ("unknown-tag", "tag_id")
    assert "QR-1" in r.detail


def test_unknown_generator_code() -> None:
    r = rejected(decide(replace(SCAN, tag_id=None, generator_code="HN-0001"), generator=None))
    assert (r.reason, r.field) == ("unknown-generator", "generator_code")


def test_neither_tag_nor_code() -> None:
    r = rejected(decide(replace(SCAN, tag_id=None)))
    assert (r.reason, r.field) == ("generator-missing", "tag_id")


def test_inactive_generator() -> None:
    r = rejected(decide(generator=replace(GENERATOR, active=False)))
    assert (r.reason, r.field) == ("inactive-generator", "tag_id")


@pytest.mark.parametrize("grams", [0, -5])
def test_weight_not_positive(grams: int) -> None:
    r = rejected(decide(replace(SCAN, grams=grams)))
    assert (r.reason, r.field) == ("weight-not-positive", "grams")


def test_weight_above_vehicle_capacity() -> None:
    r = rejected(decide(replace(SCAN, grams=2_000_001)))
    assert (r.reason, r.field) == ("weight-above-capacity", "grams")
    assert decide(replace(SCAN, grams=2_000_000)).grams == 2_000_000  # type: ignore[union-attr]


def test_closed_trip() -> None:
    r = rejected(decide(trip=replace(TRIP, is_open=False)))
    assert (r.reason, r.field) == ("trip-closed", "trip_id")


def test_trip_of_another_vehicle() -> None:
    r = rejected(decide(trip=replace(TRIP, vehicle_id="veh-2")))
    assert (r.reason, r.field) == ("trip-of-another-vehicle", "trip_id")


def test_unknown_trip() -> None:
    r = rejected(decide(trip=None))
    assert (r.reason, r.field) == ("unknown-trip", "trip_id")


def test_scan_time_in_the_future() -> None:
    r = rejected(decide(replace(SCAN, collected_at=NOW + timedelta(minutes=10))))
    assert (r.reason, r.field) == ("time-in-future", "collected_at")
    # Device clocks drift: a minute ahead is still "now".
    assert isinstance(decide(replace(SCAN, collected_at=NOW + timedelta(minutes=1))),
                      LoadCollected)


def test_scan_time_before_the_trip_started() -> None:
    r = rejected(decide(replace(SCAN, collected_at=STARTED - timedelta(seconds=1))))
    assert (r.reason, r.field) == ("time-before-trip-start", "collected_at")


def test_scan_time_without_zone() -> None:
    r = rejected(decide(replace(SCAN, collected_at=datetime(2026, 3, 2, 7, 0))))
    assert (r.reason, r.field) == ("time-without-zone", "collected_at")


def test_scan_time_in_local_zone_is_stored_in_utc() -> None:
    local = (NOW - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=7)))
    load = decide(replace(SCAN, collected_at=local))
    assert isinstance(load, LoadCollected)
    assert load.collected_at == NOW - timedelta(minutes=5)
    assert load.collected_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("lat", "lon", "field"), [(10.78, 106.70, "latitude"),
                                                   (21.03, 107.5, "longitude")])
def test_gps_outside_the_province(lat: float, lon: float, field: str) -> None:
    r = rejected(decide(replace(SCAN, latitude=lat, longitude=lon)))
    assert (r.reason, r.field) == ("gps-outside-province", field)


def test_gps_half_given() -> None:
    r = rejected(decide(replace(SCAN, longitude=None)))
    assert (r.reason, r.field) == ("gps-incomplete", "longitude")


def test_no_gps_is_accepted() -> None:
    assert isinstance(decide(replace(SCAN, latitude=None, longitude=None)), LoadCollected)


def test_bag_weight_is_estimated_from_the_configured_bag_size() -> None:
    load = decide(replace(SCAN, measure="bag", bag_size="M", grams=None))
    assert isinstance(load, LoadCollected)
    assert (load.measure, load.bag_size, load.grams) == ("bag", "M", 5_000)
    r = rejected(decide(replace(SCAN, measure="bag", bag_size="XXL", grams=None)))
    assert (r.reason, r.field) == ("unknown-bag-size", "bag_size")


def test_volume_weight_is_estimated_from_litres() -> None:
    load = decide(replace(SCAN, measure="volume", litres=120, grams=None))
    assert isinstance(load, LoadCollected)
    assert load.grams == 120 * 150
    r = rejected(decide(replace(SCAN, measure="volume", litres=None, grams=None)))
    assert (r.reason, r.field) == ("litres-missing", "litres")


def test_scale_without_grams() -> None:
    r = rejected(decide(replace(SCAN, grams=None)))
    assert (r.reason, r.field) == ("weight-missing", "grams")


def test_trip_rules_come_before_generator_rules() -> None:
    # A collector fixes the trip first; reporting the tag would send them the wrong way.
    r = rejected(decide(trip=replace(TRIP, is_open=False), generator=None))
    assert r.reason == "trip-closed"


REFUSAL = RefusalInput(idempotency_key="r-1", reason=RefusalReason.UNSORTED,
                       refused_at=NOW - timedelta(minutes=3), trip_id="trip-1", tag_id="QR-1",
                       photo_sha256="a" * 64)


def test_a_refusal_becomes_a_load_refused_event() -> None:
    refused = decide_refusal(REFUSAL, device=DEVICE, trip=TRIP, generator=GENERATOR, now=NOW,
                             policy=POLICY)
    assert isinstance(refused, LoadRefused)
    assert (refused.reason, refused.generator_id, refused.commune, refused.photo_sha256) == (
        RefusalReason.UNSORTED, "gen-1", "phuong-1", "a" * 64)


def test_a_refusal_follows_the_same_rules() -> None:
    r = decide_refusal(REFUSAL, device=DEVICE, trip=TRIP, generator=None, now=NOW,
                       policy=POLICY)
    assert isinstance(r, Rejection)
    assert r.reason == "unknown-tag"
    r = decide_refusal(replace(REFUSAL, refused_at=NOW + timedelta(hours=1)), device=DEVICE,
                       trip=TRIP, generator=GENERATOR, now=NOW, policy=POLICY)
    assert isinstance(r, Rejection)
    assert r.reason == "time-in-future"


def test_a_refusal_without_trip_is_allowed() -> None:
    refused = decide_refusal(replace(REFUSAL, trip_id=None), device=DEVICE, trip=None,
                             generator=GENERATOR, now=NOW, policy=POLICY)
    assert isinstance(refused, LoadRefused)
    assert refused.trip_id is None
