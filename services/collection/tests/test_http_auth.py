"""Who may call what: admins register and import, collectors' devices scan, auditors read."""

from __future__ import annotations

import pytest
from collection_support import (
    ADMIN,
    AUDITOR,
    HOUSEHOLD,
    Service,
    device_token,
    scan,
    seed,
    start_trip,
    token,
)
from wastetrail_contracts.enums import Role

pytestmark = pytest.mark.integration

GENERATOR = {"code": "HN-9001", "name": "Hộ Lê Thị Hoa", "commune": "phuong-hang-bac",
             "commune_class": "urban", "tag_ids": ["QR-9001"]}
CSV = "code,name,commune,commune_class\nHN-9002,Hộ Vũ Văn Nam,phuong-hang-bac,urban\n"
ADMIN_WRITES: list[tuple[str, dict[str, object]]] = [
    ("/v1/generators", GENERATOR),
    ("/v1/collectors", {"collector_id": "col-9", "name": "X"}),
    ("/v1/vehicles", {"vehicle_id": "veh-9", "plate": "30A-1", "collector_id": "col-1",
                      "capacity_grams": 1, "registered_tare_grams": 1}),
    ("/v1/devices", {"device_id": "dev-9", "collector_id": "col-1"}),
    ("/v1/collection-points", {"point_id": "p-9", "name": "Điểm tập kết", "commune": "p",
                               "latitude": 21.0, "longitude": 105.8}),
]


async def test_a_collector_token_cannot_register_or_import(service: Service) -> None:
    client = service.client
    await seed(client)
    for path, body in ADMIN_WRITES:
        r = await client.post(path, headers=device_token(), json=body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["type"].endswith("/forbidden")
    r = await client.post("/v1/generators/import", headers={**device_token(),
                          "content-type": "text/csv"}, content=CSV.encode())
    assert r.status_code == 403
    generators = (await client.get("/v1/generators", headers=ADMIN)).json()
    assert {g["code"] for g in generators} == {"HN-0001", "HN-0002", "HN-0003"}
    # ... while the admin may, with the very same bodies.
    r = await client.post("/v1/generators", headers=ADMIN, json=GENERATOR)
    assert r.status_code == 201, r.text
    r = await client.post("/v1/generators/import", headers={**ADMIN, "content-type": "text/csv"},
                          content=CSV.encode())
    assert r.json()["created"] == 1


async def test_household_and_auditor_tokens_cannot_scan(service: Service) -> None:
    client = service.client
    await seed(client)
    await start_trip(client)
    for headers in (HOUSEHOLD, AUDITOR, token(Role.STATION_OPERATOR, "op-1")):
        r = await client.post("/v1/loads", headers=headers, json=scan("k-1"))
        assert r.status_code == 403, r.text
        r = await client.post("/v1/loads/batch", headers=headers, json={"scans": [scan("k-1")]})
        assert r.status_code == 403
        r = await client.post("/v1/trips", headers=headers, json={
            "vehicle_id": "veh-1", "crew": ["A"], "commune": "p"})
        assert r.status_code == 403
    trip = (await client.get("/v1/trips/trip-1", headers=AUDITOR)).json()
    assert trip["load_count"] == 0


async def test_a_collector_scans_only_with_its_own_registered_device(service: Service) -> None:
    client = service.client
    await seed(client)
    await start_trip(client)
    no_device = token(Role.COLLECTOR, "crew-x")
    r = await client.post("/v1/loads", headers=no_device, json=scan("k-1"))
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (403, "device-required")
    stranger = token(Role.COLLECTOR, "crew-y", device_id="dev-unknown")
    r = await client.post("/v1/loads", headers=stranger, json=scan("k-1"))
    assert (r.status_code, r.json()["type"].rsplit("/", 1)[1]) == (403, "unknown-device")
    r = await client.post("/v1/loads", headers=device_token("dev-1"), json=scan("k-1"))
    assert r.status_code == 201


async def test_no_token_or_a_forged_one_is_unauthorized(service: Service) -> None:
    r = await service.client.get("/v1/generators")
    assert r.status_code == 401
    forged = {"Authorization": "Bearer " + "x.y.z"}
    r = await service.client.post("/v1/loads", headers=forged, json=scan("k-1"))
    assert r.status_code == 401


async def test_auditors_read_everything_and_write_nothing(service: Service) -> None:
    client = service.client
    await seed(client)
    for path in ("/v1/generators", "/v1/collectors", "/v1/vehicles", "/v1/devices",
                 "/v1/collection-points", "/v1/trips",
                 "/v1/communes/phuong-hang-bac/daily-totals?from=2026-03-01&to=2026-03-02",
                 "/v1/communes/phuong-hang-bac/compliance?from=2026-03-01&to=2026-03-02"):
        r = await client.get(path, headers=AUDITOR)
        assert r.status_code == 200, (path, r.text)
    r = await client.post("/v1/generators", headers=AUDITOR, json=GENERATOR)
    assert r.status_code == 403
    # Reports are not for collectors' devices.
    r = await client.get("/v1/communes/phuong-hang-bac/daily-totals?from=2026-03-01&to=2026-03-02",
                         headers=device_token())
    assert r.status_code == 403
