"""Every validation rule of a scan through the real API: a 422 problem naming the rule and
the field, and no load recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from collection_support import (
    ADMIN,
    NOW,
    Service,
    device_token,
    running_service,
    scan,
    seed,
    start_trip,
)
from wastetrail_collection.domain.ids import generator_id_for

pytestmark = pytest.mark.integration
HANOI = {"province_min_latitude": 20.5, "province_max_latitude": 21.4,
         "province_min_longitude": 105.3, "province_max_longitude": 106.1}


@pytest.fixture(scope="module")
def rules_database(make_database: Callable[[str], str]) -> str:
    """One database for the module (make_database is synchronous: not inside the loop)."""
    return make_database("rules")


@pytest.fixture(scope="module")
async def world(
    rules_database: str, kafka_bootstrap: str, topic_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Service]:
    """Two vehicles with a device each; trip-0 closed and trip-1 open on veh-1, trip-2 open
    on veh-2; HN-0002 deactivated. Shared by the rule tests, which write nothing."""
    async with running_service(rules_database, kafka_bootstrap, topic_prefix,
                               tmp_path_factory.mktemp("rules"), **HANOI) as service:
        client = service.client
        await seed(client, generators=3, capacity=500_000, vehicles=("veh-1", "veh-2"))
        await start_trip(client, "trip-0", started_at="2026-03-01T23:00:00Z")
        closed = await client.post("/v1/trips/trip-0/close", headers=device_token(),
                                   json={"declared_total_grams": 0,
                                         "closed_at": "2026-03-01T23:30:00Z"})
        assert closed.status_code == 200, closed.text
        await start_trip(client, "trip-1")
        await start_trip(client, "trip-2", vehicle_id="veh-2", device_id="dev-2")
        off = await client.post(f"/v1/generators/{generator_id_for('HN-0002')}/status",
                                headers=ADMIN, json={"active": False, "reason": "chuyển đi"})
        assert off.status_code == 200, off.text
        yield service


async def rejected(world: Service, body: dict[str, object], reason: str, field: str) -> str:
    r = await world.client.post("/v1/loads", headers=device_token(), json=body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("/" + reason), problem
    assert problem["field"] == field
    trip = (await world.client.get("/v1/trips/trip-1", headers=ADMIN)).json()
    assert trip["load_count"] == 0  # nothing was recorded
    detail: str = problem["detail"]
    return detail


async def test_a_valid_scan_passes_every_rule(world: Service) -> None:
    # The control: the same world accepts a correct scan (on trip-2, to keep trip-1 empty).
    r = await world.client.post("/v1/loads", headers=device_token("dev-2"),
                                json=scan("ok-1", trip_id="trip-2"))
    assert r.status_code == 201, r.text


async def test_unknown_tag(world: Service) -> None:
    detail = await rejected(world, scan("u-1", tag="QR-999"), "unknown-tag", "tag_id")
    assert "QR-999" in detail


async def test_unknown_generator_code(world: Service) -> None:
    body = scan("u-2", tag=None, generator_code="HN-9999")
    await rejected(world, body, "unknown-generator", "generator_code")


async def test_tag_of_an_inactive_generator(world: Service) -> None:
    await rejected(world, scan("u-3", tag="QR-2"), "inactive-generator", "tag_id")


@pytest.mark.parametrize("grams", [0, -1])
async def test_weight_not_positive(world: Service, grams: int) -> None:
    await rejected(world, scan(f"u-4{grams}", grams=grams), "weight-not-positive", "grams")


async def test_weight_above_the_vehicle_capacity(world: Service) -> None:
    detail = await rejected(world, scan("u-5", grams=500_001), "weight-above-capacity", "grams")
    assert "500000" in detail


async def test_closed_trip(world: Service) -> None:
    await rejected(world, scan("u-6", trip_id="trip-0", at="2026-03-01T23:10:00Z"),
                   "trip-closed", "trip_id")


async def test_trip_of_another_vehicle(world: Service) -> None:
    # dev-1 is bound to veh-1; trip-2 runs on veh-2.
    detail = await rejected(world, scan("u-7", trip_id="trip-2"), "trip-of-another-vehicle",
                            "trip_id")
    assert "veh-2" in detail


async def test_unknown_trip(world: Service) -> None:
    await rejected(world, scan("u-8", trip_id="trip-404"), "unknown-trip", "trip_id")


async def test_scan_time_in_the_future(world: Service) -> None:
    later = (NOW + timedelta(minutes=30)).isoformat()
    await rejected(world, scan("u-9", at=later), "time-in-future", "collected_at")


async def test_scan_time_before_the_trip_started(world: Service) -> None:
    await rejected(world, scan("u-10", at="2026-03-01T23:59:00Z"), "time-before-trip-start",
                   "collected_at")


async def test_gps_outside_the_configured_province(world: Service) -> None:
    # Hồ Chí Minh City is in Vietnam but not in Hà Nội's configured bounds.
    body = scan("u-11", latitude=10.776, longitude=106.700)
    await rejected(world, body, "gps-outside-province", "latitude")


async def test_malformed_scan_is_a_validation_problem(world: Service) -> None:
    r = await world.client.post("/v1/loads", headers=device_token(),
                                json=scan("u-12", grams=1.5))
    assert r.status_code == 422
    assert r.json()["field"] == "grams"
