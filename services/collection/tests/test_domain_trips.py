"""Trip start/close rules and the compliance arithmetic."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from wastetrail_collection.domain.compliance import Compliance
from wastetrail_collection.domain.rules import DeviceFacts, GeoBounds, Rejection, ScanPolicy
from wastetrail_collection.domain.trips import (
    TripStart,
    TripState,
    VehicleFacts,
    decide_trip_close,
    decide_trip_start,
)
from wastetrail_contracts.events.collection import TripClosed, TripStarted

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = ScanPolicy(bounds=GeoBounds(8, 24, 102, 110))
DEVICE = DeviceFacts("dev-1", "col-1", None)
VEHICLE = VehicleFacts("veh-1", "col-1", 2_000_000)
START = TripStart("trip-1", "veh-1", ("Nguyễn Văn A",), "phuong-1", "tuyến 3", NOW)


def start(**over: object) -> TripStarted | Rejection:
    args: dict[str, object] = {"device": DEVICE, "vehicle": VEHICLE, "vehicle_open_trip": None,
                               "device_open_trip": None, "now": NOW, "policy": POLICY}
    args.update(over)
    return decide_trip_start(START, **args)  # type: ignore[arg-type]


def test_start() -> None:
    started = start()
    assert isinstance(started, TripStarted)
    assert (started.collector_id, started.crew) == ("col-1", ("Nguyễn Văn A",))


def test_start_refusals() -> None:
    cases = {
        "unknown-vehicle": start(vehicle=None),
        "vehicle-of-another-collector": start(vehicle=replace(VEHICLE, collector_id="col-2")),
        "vehicle-busy": start(vehicle_open_trip="trip-0"),
        "device-busy": start(device_open_trip="trip-0"),
    }
    for reason, result in cases.items():
        assert isinstance(result, Rejection)
        assert result.reason == reason
    future = decide_trip_start(replace(START, started_at=NOW + timedelta(hours=1)),
                               device=DEVICE, vehicle=VEHICLE, vehicle_open_trip=None,
                               device_open_trip=None, now=NOW, policy=POLICY)
    assert isinstance(future, Rejection)
    assert future.field == "started_at"


STATE = TripState("trip-1", "veh-1", True, NOW - timedelta(hours=3), 812_000, 140)
BOUND = replace(DEVICE, vehicle_id="veh-1")


def test_close_records_declared_beside_scanned() -> None:
    closed = decide_trip_close(STATE, device=BOUND, declared_total_grams=800_000, closed_at=NOW,
                               now=NOW, policy=POLICY)
    assert isinstance(closed, TripClosed)
    assert (closed.declared_total_grams, closed.scanned_total_grams, closed.load_count) == (
        800_000, 812_000, 140)


def test_close_refusals() -> None:
    closed = decide_trip_close(replace(STATE, is_open=False), device=BOUND,
                               declared_total_grams=1, closed_at=NOW, now=NOW, policy=POLICY)
    assert isinstance(closed, Rejection)
    assert closed.reason == "trip-closed"
    other = decide_trip_close(STATE, device=DEVICE, declared_total_grams=1, closed_at=NOW,
                              now=NOW, policy=POLICY)
    assert isinstance(other, Rejection)
    assert other.reason == "trip-of-another-vehicle"
    early = decide_trip_close(STATE, device=BOUND, declared_total_grams=1,
                              closed_at=NOW - timedelta(hours=4), now=NOW, policy=POLICY)
    assert isinstance(early, Rejection)
    assert early.reason == "time-before-trip-start"


def test_compliance_rate_is_refusals_over_visits() -> None:
    c = Compliance(loads=45, refusals=5)
    assert c.visits == 50
    assert c.refusal_rate == 0.1
    assert c.compliance_rate == 0.9
    assert Compliance(0, 0).refusal_rate is None
    assert Compliance(0, 0).compliance_rate is None
    assert Compliance(0, 3).compliance_rate == 0.0
