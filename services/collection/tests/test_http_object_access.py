"""A collector's device sees and acts on its own collector's vehicles, devices and trips,
and only the households of the communes its collector serves."""

from __future__ import annotations

import pytest
from collection_support import ADMIN, Service, device_token, seed, start_trip

pytestmark = pytest.mark.integration


async def _second_collector(service: Service) -> None:
    """col-2 serves phuong-dong-xuan, with vehicle veh-9 and device dev-9 on it."""
    client = service.client
    for path, body in (
        ("/v1/collectors", {"collector_id": "col-2", "name": "HTX Vệ sinh Đồng Xuân",
                            "communes": ["phuong-dong-xuan"]}),
        ("/v1/vehicles", {"vehicle_id": "veh-9", "plate": "29C-99999", "collector_id": "col-2",
                          "capacity_grams": 2_000_000, "registered_tare_grams": 3_000_000}),
        ("/v1/devices", {"device_id": "dev-9", "collector_id": "col-2", "vehicle_id": "veh-9"}),
        ("/v1/generators", {"code": "DX-0001", "name": "Hộ Trần Thị Mai",
                            "commune": "phuong-dong-xuan", "commune_class": "urban",
                            "tag_ids": ["QR-DX-1"]}),
    ):
        r = await client.post(path, headers=ADMIN, json=body)
        assert r.status_code == 201, r.text


async def test_a_collector_sees_only_its_own_vehicles_devices_and_trips(service: Service) -> None:
    client = service.client
    await seed(client)
    await _second_collector(service)
    await start_trip(client)  # col-1's trip-1 on veh-1
    await start_trip(client, trip_id="trip-9", vehicle_id="veh-9", device_id="dev-9")
    mine, theirs = device_token("dev-1"), device_token("dev-9")

    vehicles = (await client.get("/v1/vehicles", headers=mine)).json()
    assert [v["vehicle_id"] for v in vehicles] == ["veh-1"]
    devices = (await client.get("/v1/devices", headers=theirs)).json()
    assert [d["device_id"] for d in devices] == ["dev-9"]
    for path in ("/v1/vehicles?collector_id=col-2", "/v1/devices?collector_id=col-2"):
        r = await client.get(path, headers=mine)
        assert (r.status_code, r.json()["field"]) == (403, "collector_id"), path
    trips = (await client.get("/v1/trips", headers=mine)).json()
    assert [t["trip_id"] for t in trips] == ["trip-1"]
    r = await client.get("/v1/trips/trip-9", headers=mine)
    assert (r.status_code, r.json()["field"]) == (403, "trip_id")
    assert (await client.get("/v1/trips/trip-9", headers=theirs)).status_code == 200
    # Writing to another collector's trip or vehicle is refused too.
    closed = await client.post("/v1/trips/trip-9/close", headers=mine,
                               json={"declared_total_grams": 0})
    assert closed.status_code in (403, 409, 422), closed.text
    assert (await client.get("/v1/trips/trip-9", headers=theirs)).json()["is_open"] is True
    on_theirs = await client.post("/v1/trips", headers=mine, json={
        "trip_id": "trip-x", "vehicle_id": "veh-9", "crew": ["A"], "commune": "phuong-hang-bac"})
    assert (on_theirs.status_code, on_theirs.json()["field"]) == (422, "vehicle_id")
    # Auditors see every collector's.
    assert len((await client.get("/v1/trips", headers=ADMIN)).json()) == 2


async def test_a_collector_sees_only_households_of_the_communes_it_serves(
    service: Service,
) -> None:
    client = service.client
    await seed(client, generators=2)  # col-1 serves phuong-hang-bac
    await _second_collector(service)
    mine, theirs = device_token("dev-1"), device_token("dev-9")

    listed = (await client.get("/v1/generators", headers=mine)).json()
    assert {g["commune"] for g in listed} == {"phuong-hang-bac"} and len(listed) == 2
    other = (await client.get("/v1/generators", headers=theirs)).json()
    assert [g["code"] for g in other] == ["DX-0001"]
    r = await client.get("/v1/generators?commune=phuong-dong-xuan", headers=mine)
    assert (r.status_code, r.json()["field"]) == (403, "commune")
    r = await client.get(f"/v1/generators/{other[0]['generator_id']}", headers=mine)
    assert (r.status_code, r.json()["field"]) == (403, "generator_id")
    assert len((await client.get("/v1/generators", headers=ADMIN)).json()) == 3

    # Serving a commune is the admin's decision, recorded with the collector.
    r = await client.post("/v1/collectors", headers=ADMIN, json={
        "collector_id": "col-1", "name": "Công ty Môi trường Đô thị",
        "communes": ["phuong-hang-bac", "phuong-dong-xuan"]})
    assert r.json()["outcome"] == "updated"
    assert len((await client.get("/v1/generators", headers=mine)).json()) == 3
    [_, changed] = [e for e in await service.rt.store.stream("collector:col-1")]
    assert changed.payload["communes"] == ["phuong-dong-xuan", "phuong-hang-bac"]
    collectors = (await client.get("/v1/collectors", headers=ADMIN)).json()
    assert collectors[0]["communes"] == ["phuong-dong-xuan", "phuong-hang-bac"]
