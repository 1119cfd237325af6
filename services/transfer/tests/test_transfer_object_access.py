"""A station operator acts on its own station's trips and batches, never another's.

Direct haul in particular: marking another station's trip is refused, and every marking
is recorded as ``TripMarkedDirectHaul`` with the operator who decided.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def _stations(t: Any) -> None:
    for station_id in ("S1", "S2"):
        r = await t.client.post("/v1/stations", headers=t.auth(), json={
            "station_id": station_id, "name": f"Trạm {station_id}", "commune": "PHUONG-1",
            "capacity_grams": 200_000_000, "categories": ["food"]})
        assert r.status_code == 201, r.text


async def _weighed_in_at_s1(t: Any, ev: Any) -> None:
    await _stations(t)
    await t.feed(ev.vehicle("V1"), ev.started("T1"), ev.load("T1", "L1", 500_000),
                 ev.closed("T1", 1, 500_000), ev.plant("P1", "food"))
    r = await t.client.post("/v1/stations/S1/weighings", headers=t.operator("S1"),
                            json={"trip_id": "T1", "vehicle_id": "V1", "gross_grams": 8_500_000})
    assert r.status_code == 201, r.text


async def test_another_stations_trip_is_not_an_operators(transfer: Any, ev: Any) -> None:
    t = transfer
    await _weighed_in_at_s1(t, ev)
    s2 = t.operator("S2")
    attempts = [
        ("POST", "/v1/trips/T1/direct-haul", {"plant_id": "P1"}),
        ("GET", "/v1/trips/T1/reconciliation", None),
        ("POST", "/v1/stations/S1/weighings/T1/out", {"tare_grams": 8_000_000}),
    ]
    for method, path, body in attempts:
        r = await t.client.request(method, path, headers=s2, json=body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["type"].endswith(("/another-station", "/forbidden")), r.text
    assert await t.events_of_type("T1", "transfer.trip_marked_direct_haul") == []
    # S1's own operator still reads and weighs its trip.
    mine = await t.client.get("/v1/trips/T1/reconciliation", headers=t.operator("S1"))
    assert (mine.status_code, mine.json()["status"]) == (200, "weighed_in"), mine.text

    batch = await t.client.post("/v1/stations/S1/batches", headers=t.operator("S1"),
                                json={"category": "food"})
    assert batch.status_code == 201, batch.text
    batch_id = batch.json()["batch_id"]
    for method, path, body in (("GET", f"/v1/batches/{batch_id}", None),
                               ("POST", f"/v1/batches/{batch_id}/seal",
                                {"seal_number": "SEAL-1"}),
                               ("POST", f"/v1/batches/{batch_id}/allocations",
                                {"trip_id": "T1"})):
        r = await t.client.request(method, path, headers=s2, json=body)
        assert r.status_code == 403, (path, r.text)


async def test_direct_haul_is_an_event_with_its_actor_and_binds_the_trip(
    transfer: Any, ev: Any
) -> None:
    t = transfer
    await _stations(t)
    await t.feed(ev.vehicle("V1"), ev.started("T2"), ev.load("T2", "L2", 400_000),
                 ev.closed("T2", 1, 400_000), ev.plant("P1", "food"), ev.plant("P2", "food"))

    marked = await t.client.post("/v1/trips/T2/direct-haul", headers=t.operator("S1"),
                                 json={"plant_id": "P1"})
    assert (marked.status_code, marked.json()["status"]) == (200, "direct_haul"), marked.text
    again = await t.client.post("/v1/trips/T2/direct-haul", headers=t.operator("S1"),
                                json={"plant_id": "P1"})
    assert again.status_code == 200  # the same decision again changes nothing
    [envelope] = [e for e in await t.rt.store.stream("T2")
                  if e.type == "transfer.trip_marked_direct_haul"]
    assert dict(envelope.payload) == {"trip_id": "T2", "plant_id": "P1", "station_id": "S1",
                                      "marked_at": envelope.payload["marked_at"]}
    assert (envelope.actor.id, envelope.actor.role) == ("station_operator-1",
                                                         "station_operator")

    # The trip is now S1's decision: S2 may neither redirect it nor read it.
    for body in ({"plant_id": "P2"}, {"plant_id": "P1"}):
        r = await t.client.post("/v1/trips/T2/direct-haul", headers=t.operator("S2"), json=body)
        assert (r.status_code, r.json()["field"]) == (403, "trip_id"), r.text
    assert (await t.client.get("/v1/trips/T2/reconciliation",
                               headers=t.operator("S2"))).status_code == 403
    # Changing the plant is a conflict even for S1; an admin's marking names no station.
    other = await t.client.post("/v1/trips/T2/direct-haul", headers=t.operator("S1"),
                                json={"plant_id": "P2"})
    assert (other.status_code, other.json()["field"]) == (409, "plant_id")
    await t.feed(ev.started("T3"), ev.load("T3", "L3", 100_000), ev.closed("T3", 1, 100_000))
    by_admin = await t.client.post("/v1/trips/T3/direct-haul", headers=t.auth(),
                                   json={"plant_id": "P2"})
    assert by_admin.status_code == 200, by_admin.text
    [marking] = await t.events_of_type("T3", "transfer.trip_marked_direct_haul")
    assert (marking["plant_id"], marking["station_id"]) == ("P2", None)
