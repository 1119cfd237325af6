"""Registries through the API: CSV import of Vietnamese households, idempotent registration,
conflicts, and the events billing and the audit build their views from."""

from __future__ import annotations

import pytest
from collection_support import ADMIN, AUDITOR, Service, device_token, scan, seed, start_trip
from wastetrail_collection.domain.ids import generator_id_for
from wastetrail_contracts import parse_payload
from wastetrail_contracts.events.collection import GeneratorRegistered, GeneratorStatusChanged

pytestmark = pytest.mark.integration
CSV_HEADERS = {**ADMIN, "content-type": "text/csv; charset=utf-8"}

COMMUNE_FILE = (
    "code,kind,name,commune,commune_class,customer_class,address,members,tag_ids,active\n"
    'HB-001,household,Nguyễn Thị Hương,phuong-hang-bac,urban,,"Số 5, Hàng Bạc",4,QR-A1;QR-A2,\n'
    "HB-002,household,,phuong-hang-bac,urban,,Số 7 Hàng Bạc,2,QR-A3,\n"
    "HB-003,hộ gia đình,Trần Văn Đức,phuong-hang-bac,đô thị,hộ kinh doanh,Số 9,3,QR-A4,\n"
    "HB-004,household,Phạm Minh Châu,phuong-hang-bac,urban,,Số 11,1,QR-1,\n"
    "HB-005,organisation,Chợ Hàng Bạc,phuong-hang-bac,urban,,Số 13,1,QR-A5,\n"
    "HB-006,household,Lý Thị Mai,phuong-hang-bac,ngoại ô,,Số 15,1,,\n"
)


async def test_csv_import_keeps_good_rows_and_reports_bad_ones_by_line(service: Service) -> None:
    client = service.client
    await seed(client, generators=1)  # HN-0001 holds QR-1
    r = await client.post("/v1/generators/import", headers=CSV_HEADERS,
                          content=COMMUNE_FILE.encode("utf-8"))
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["created"], report["updated"], report["unchanged"], report["rejected"]) == (
        3, 0, 0, 3)
    errors = {e["line"]: e for e in report["errors"]}
    assert sorted(errors) == [3, 5, 7]
    assert errors[3]["field"] == "name"
    assert errors[5]["field"] == "tag_ids"
    assert "QR-1" in errors[5]["reason"]
    assert errors[5]["code"] == "HB-004"
    assert errors[7]["field"] == "commune_class"

    listed = (await client.get("/v1/generators", headers=AUDITOR,
                               params={"commune": "phuong-hang-bac"})).json()
    by_code = {g["code"]: g for g in listed}
    assert set(by_code) == {"HN-0001", "HB-001", "HB-003", "HB-005"}
    assert by_code["HB-001"]["name"] == "Nguyễn Thị Hương"
    assert by_code["HB-001"]["address"] == "Số 5, Hàng Bạc"
    assert by_code["HB-001"]["tag_ids"] == ["QR-A1", "QR-A2"]
    assert by_code["HB-003"]["customer_class"] == "individual_business"
    assert by_code["HB-005"]["customer_class"] == "organisation"

    # The imported tags scan straight away.
    await start_trip(client)
    r = await client.post("/v1/loads", headers=device_token(), json=scan("k-1", tag="QR-A2"))
    assert r.status_code == 201, r.text

    # Each good row was registered as an event, in the same transaction.
    stream = await service.rt.store.stream(generator_id_for("HB-001"))
    assert [type(parse_payload(e)) for e in stream] == [GeneratorRegistered]
    assert await service.rt.store.stream(generator_id_for("HB-002")) == []

    # Importing the same file again changes nothing and emits nothing.
    again = (await client.post("/v1/generators/import", headers=CSV_HEADERS,
                               content=COMMUNE_FILE.encode())).json()
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (
        0, 0, 3, 3)
    assert len(await service.rt.store.stream(generator_id_for("HB-001"))) == 1

    # A corrected file updates what changed.
    fixed = COMMUNE_FILE.replace('"Số 5, Hàng Bạc"', '"Số 5A, Hàng Bạc"')
    third = (await client.post("/v1/generators/import", headers=CSV_HEADERS,
                               content=fixed.encode())).json()
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 2)
    stream = await service.rt.store.stream(generator_id_for("HB-001"))
    latest = parse_payload(stream[-1])
    assert isinstance(latest, GeneratorRegistered)
    assert latest.address == "Số 5A, Hàng Bạc"


async def test_an_unreadable_file_is_refused_whole(service: Service) -> None:
    latin = ("code,name,commune,commune_class\nHB-1,Nguyen,p,urban\nHB-2,Tr\xe2n,p,urban\n"
             ).encode("latin-1")
    r = await service.client.post("/v1/generators/import", headers=CSV_HEADERS, content=latin)
    assert r.status_code == 422
    assert (r.json()["line"], r.json()["field"]) == (3, "file")
    r = await service.client.post("/v1/generators/import", headers=CSV_HEADERS,
                                  content=b"code,ten,commune\n")
    assert r.status_code == 422
    assert r.json()["field"] == "header"
    assert (await service.client.get("/v1/generators", headers=ADMIN)).json() == []


async def test_registration_is_idempotent_and_conflicts_are_named(service: Service) -> None:
    client = service.client
    await seed(client, generators=2)
    body = {"code": "HN-0001", "name": "Hộ Nguyễn Văn 1", "commune": "phuong-hang-bac",
            "commune_class": "urban", "address": "Số 1 Hàng Bạc", "tag_ids": ["QR-1"]}
    r = await client.post("/v1/generators", headers=ADMIN, json=body)
    assert (r.status_code, r.json()["outcome"]) == (200, "unchanged")
    r = await client.post("/v1/generators", headers=ADMIN, json={**body, "tag_ids": ["QR-2"]})
    assert (r.status_code, r.json()["field"]) == (409, "tag_ids")
    r = await client.post("/v1/generators", headers=ADMIN,
                          json={**body, "kind": "organisation", "customer_class": "household"})
    assert (r.status_code, r.json()["field"]) == (422, "customer_class")
    r = await client.post("/v1/vehicles", headers=ADMIN, json={
        "vehicle_id": "veh-9", "plate": "29C-00001", "collector_id": "col-1",
        "capacity_grams": 1_000, "registered_tare_grams": 1_000})
    assert (r.status_code, r.json()["field"]) == (409, "plate")
    r = await client.post("/v1/vehicles", headers=ADMIN, json={
        "vehicle_id": "veh-9", "plate": "29C-99999", "collector_id": "col-404",
        "capacity_grams": 1_000, "registered_tare_grams": 1_000})
    assert (r.status_code, r.json()["field"]) == (422, "collector_id")
    r = await client.post("/v1/vehicles", headers=ADMIN, json={
        "vehicle_id": "veh-1", "plate": "29C-00001", "collector_id": "col-1",
        "capacity_grams": 0, "registered_tare_grams": 1_000})
    assert (r.status_code, r.json()["field"]) == (422, "capacity_grams")


async def test_deactivating_a_generator_emits_an_event_and_stops_its_scans(
    service: Service,
) -> None:
    client = service.client
    await seed(client, generators=1)
    await start_trip(client)
    gid = generator_id_for("HN-0001")
    r = await client.post(f"/v1/generators/{gid}/status", headers=ADMIN,
                          json={"active": False, "reason": "chuyển nhà"})
    assert (r.status_code, r.json()["active"]) == (200, False)
    events = [parse_payload(e) for e in await service.rt.store.stream(gid)]
    assert isinstance(events[-1], GeneratorStatusChanged)
    assert events[-1].reason == "chuyển nhà"
    r = await client.post("/v1/loads", headers=device_token(), json=scan("k-1"))
    assert r.json()["type"].endswith("/inactive-generator")
    await client.post(f"/v1/generators/{gid}/status", headers=ADMIN, json={"active": True})
    r = await client.post("/v1/loads", headers=device_token(), json=scan("k-1"))
    assert r.status_code == 201
