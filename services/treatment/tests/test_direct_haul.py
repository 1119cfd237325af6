"""Direct haul: a collection vehicle weighed at the plant itself, and its certificate."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from treatment_testkit import (
    T0,
    Treatment,
    batch_events,
    read_topic,
    seed,
    treatment_topic,
    uid,
)
from wastetrail_contracts import Envelope, Event
from wastetrail_contracts.enums import Category, CustodySite
from wastetrail_contracts.events.collection import (
    LoadCollected,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.transfer import TripWeighed

pytestmark = pytest.mark.integration


def trip_events(trip: str, vehicle: str, loads: dict[str, int],
                declared: int) -> list[Event]:
    events: list[Event] = [
        VehicleRegistered(vehicle_id=vehicle, plate="29C-123.45", collector_id="C-1",
                          capacity_grams=5_000_000, registered_tare_grams=9_000),
        TripStarted(trip_id=trip, vehicle_id=vehicle, collector_id="C-1", crew=("Lan",),
                    commune="XA-01", started_at=T0 - timedelta(hours=3)),
    ]
    events += [LoadCollected(load_id=load, trip_id=trip, generator_id=f"G-{load}",
                             commune="XA-01", category=Category.FOOD, measure="scale",
                             grams=grams, collected_at=T0 - timedelta(hours=2),
                             device_id="D-1", vehicle_id=vehicle, idempotency_key=load)
               for load, grams in loads.items()]
    events.append(TripClosed(trip_id=trip, vehicle_id=vehicle, declared_total_grams=declared,
                             scanned_total_grams=sum(loads.values()), load_count=len(loads),
                             closed_at=T0 - timedelta(hours=1)))
    return events


async def test_direct_haul_weighs_the_vehicle_and_emits_trip_weighed(
    treatment: Treatment, kafka_bootstrap: str, topic_prefix: str,
) -> None:
    t = treatment
    plant, trip, vehicle = uid("P"), uid("T"), uid("V")
    load_a, load_b = uid("L"), uid("L")
    await t.register_plant(plant, methods=["composting"])
    await seed(t, *trip_events(trip, vehicle, {load_a: 2_500, load_b: 3_500}, declared=6_000))
    url, auth = f"/v1/plants/{plant}/receipts", t.operator(plant)

    unknown = await t.client.post(url, headers=auth, json={
        "trip_id": "T-nobody-started", "gross_grams": 15_000, "status": "ACCEPTED"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "trip_id"
    upside_down = await t.client.post(url, headers=auth, json={
        "trip_id": trip, "gross_grams": 9_000, "tare_grams": 9_500, "status": "ACCEPTED"})
    assert upside_down.status_code == 422 and upside_down.json()["field"] == "tare_grams"
    net_given = await t.client.post(url, headers=auth, json={
        "trip_id": trip, "measured_grams": 6_000, "status": "ACCEPTED"})
    assert net_given.status_code == 422 and net_given.json()["field"] == "measured_grams"

    # Not weighed out: the vehicle's registered tare (9 000 g) is used.
    r = await t.client.post(url, headers=auth, json={
        "trip_id": trip, "gross_grams": 15_500, "status": "ACCEPTED"})
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert (receipt["received_grams"], receipt["tare_grams"], receipt["tare_source"]) == (
        6_500, 9_000, "registered")
    assert receipt["declared_grams"] == 6_000 and receipt["category"] == "food"
    assert receipt["discrepancy"] is False  # 500 g of 6 000 g is under 10 %
    again = await t.client.post(url, headers=auth, json={
        "trip_id": trip, "gross_grams": 15_500, "status": "ACCEPTED"})
    assert again.status_code == 409

    def weighings(seen: list[tuple[Envelope, Event]]) -> list[TripWeighed]:
        return [e for _, e in seen if isinstance(e, TripWeighed) and e.trip_id == trip]

    seen = await read_topic(kafka_bootstrap, treatment_topic(topic_prefix),
                            lambda s: len(weighings(s)) >= 1)
    (weighed,) = weighings(seen)
    assert (weighed.site, weighed.site_id) == (CustodySite.PLANT, plant)
    assert (weighed.gross_grams, weighed.tare_grams, weighed.net_grams) == (15_500, 9_000, 6_500)
    assert weighed.tare_source == "registered" and weighed.vehicle_id == vehicle

    # Treat it, then its fate: load A is 2 500 / 6 000 of the 6 500 g weighed at the plant,
    # 6 500 × 2 500 / 6 000 = 2 708.33 → 2 708 g (B gets 3 791.67 → 3 792 g: remainder).
    treated = await t.client.post(f"/v1/receipts/{receipt['receipt_id']}/treatments",
                                  headers=auth, json={"methods": {"composting": 6_500}})
    assert treated.status_code == 201
    fate_a = (await t.client.get(f"/v1/loads/{load_a}/fate", headers=t.auditor())).json()
    fate_b = (await t.client.get(f"/v1/loads/{load_b}/fate", headers=t.auditor())).json()
    assert (fate_a["grams"], fate_b["grams"]) == (2_708, 3_792)
    assert fate_a["treated_by_method"] == {"composting": 2_708}
    assert fate_a["trip"]["weighed_site"] == "plant"
    denied = await t.client.get(f"/v1/loads/{load_a}/fate", headers=t.operator(plant))
    assert denied.status_code == 403


async def test_trip_that_went_through_a_station_is_not_direct_haul(treatment: Treatment) -> None:
    t = treatment
    plant, trip, vehicle = uid("P"), uid("T"), uid("V")
    await t.register_plant(plant, methods=["composting"])
    await seed(t, *trip_events(trip, vehicle, {uid("L"): 4_000}, declared=4_000),
               *batch_events(uid("B"), plant, [(trip, 4_000)]))
    r = await t.client.post(f"/v1/plants/{plant}/receipts", headers=t.operator(plant), json={
        "trip_id": trip, "gross_grams": 13_000, "tare_grams": 9_000, "status": "ACCEPTED"})
    assert r.status_code == 409 and r.json()["field"] == "trip_id"


async def test_certificate_as_json_and_printable_bilingual_html(treatment: Treatment) -> None:
    t = treatment
    plant, trip, vehicle = uid("P"), uid("T"), uid("V")
    await t.client.post("/v1/plants", headers=t.admin(), json={
        "plant_id": plant, "name": "Khu xử lý <Xuân Sơn>", "commune": "XUAN-SON",
        "methods": ["composting", "sanitary_landfill"], "categories": ["food"],
        "daily_capacity_grams": 10**9})
    await seed(t, *trip_events(trip, vehicle, {uid("L"): 6_000}, declared=6_000))
    auth = t.operator(plant)
    missing = await t.client.get(f"/v1/trips/{trip}/certificate", headers=t.auditor())
    assert missing.status_code == 404
    r = await t.client.post(f"/v1/plants/{plant}/receipts", headers=auth, json={
        "trip_id": trip, "gross_grams": 15_000, "tare_grams": 9_000,
        "status": "PARTIALLY_REFUSED", "refused_grams": 1_000, "refusal_reason": "glass"})
    receipt_id = r.json()["receipt_id"]
    await t.client.post(f"/v1/receipts/{receipt_id}/treatments", headers=auth,
                        json={"methods": {"composting": 4_000}})

    cert = (await t.client.get(f"/v1/trips/{trip}/certificate", headers=t.auditor())).json()
    assert cert["complete"] is False  # 1 000 g awaiting treatment, 1 000 g refused and held
    assert cert["totals"]["awaiting_treatment_grams"] == 1_000
    assert cert["totals"]["held_refused_grams"] == 1_000
    body = {k: v for k, v in cert.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == cert["sha256"]

    # The rest is treated and the refused part goes back to a station: complete.
    await t.client.post(f"/v1/receipts/{receipt_id}/treatments", headers=auth,
                        json={"methods": {"sanitary_landfill": 1_000}})
    back = await t.client.post(f"/v1/receipts/{receipt_id}/redirects", headers=auth,
                               json={"destination_kind": "station"})
    assert back.status_code == 422 and back.json()["field"] == "destination_id"  # which one?
    await t.client.post(f"/v1/receipts/{receipt_id}/redirects", headers=auth,
                        json={"destination_kind": "station", "destination_id": "ST-3"})
    cert = (await t.client.get(f"/v1/trips/{trip}/certificate", headers=auth)).json()
    assert cert["complete"] is True

    page = await t.client.get(f"/v1/trips/{trip}/certificate.html", headers=t.auditor())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for text in ("Giấy xác nhận xử lý chất thải", "Certificate of treatment", trip, receipt_id,
                 plant, "Ủ phân compost", "Composting", "Chôn lấp hợp vệ sinh",
                 "Từ chối một phần", "Partially refused", "6,000 kg", "4,000 kg",
                 "02/03/2026 08:00 (UTC+7)", cert["sha256"], "Đã xử lý xong / Complete"):
        assert text in html, text
    assert "<Xuân Sơn>" not in html and "&lt;Xuân Sơn&gt;" in html  # escaped
    other = uid("P")
    await t.register_plant(other, methods=["composting"])
    foreign = await t.client.get(f"/v1/trips/{trip}/certificate.html",
                                 headers=t.operator(other))
    assert foreign.status_code == 403
