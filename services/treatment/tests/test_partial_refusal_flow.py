"""A partially refused batch end to end, on real Kafka and PostgreSQL.

The transfer service's dispatch arrives through Kafka; plant A weighs the batch, refuses
part of it, sends some of the refused part on to plant B and the rest back to the
station; B receives its part; both treat what they accepted. Every step is checked on the
treatment topic, and the certificate accounts for every gram.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from treatment_testkit import (
    Treatment,
    UpstreamFactory,
    batch_events,
    eventually,
    operator_actor,
    read_topic,
    treatment_topic,
    uid,
)
from wastetrail_contracts import Envelope, Event
from wastetrail_contracts.enums import AcceptanceStatus, AlertKind, Role
from wastetrail_contracts.events.custody import CustodyAlertRaised
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    PlantRegistered,
    RefusedWasteRedirected,
    TreatmentRecorded,
)

pytestmark = pytest.mark.integration


async def test_partial_refusal_redirect_and_treatment(
    consuming: Treatment, upstream: UpstreamFactory, kafka_bootstrap: str, topic_prefix: str,
) -> None:
    t = consuming
    plant_a, plant_b, batch, trip = uid("PA"), uid("PB"), uid("B"), uid("T")
    await t.register_plant(plant_a, methods=["composting", "sanitary_landfill"])
    await t.register_plant(plant_b, methods=["incineration_energy_recovery"])

    # The station dispatches batch B (10 000 g declared) to plant A, through Kafka.
    transfer = await upstream("transfer", operator_actor("st-op", Role.STATION_OPERATOR))
    for event in batch_events(batch, plant_a, [(trip, 10_000)], station_id="ST-7"):
        await transfer.emit(batch, event)

    async def batch_is_coming() -> bool:
        r = await t.client.get(f"/v1/plants/{plant_a}/incoming", headers=t.operator(plant_a))
        return [b["batch_id"] for b in r.json()["batches"]] == [batch]
    await eventually(batch_is_coming, what="the dispatch to reach the plant over Kafka")

    # Plant A: 10 500 g on the weighbridge, 2 000 g refused (plastic in food waste).
    a = t.operator(plant_a)
    receipt = await t.client.post(f"/v1/plants/{plant_a}/receipts", headers=a, json={
        "receipt_id": uid("RA"), "batch_id": batch, "measured_grams": 10_500,
        "status": "PARTIALLY_REFUSED", "refused_grams": 2_000,
        "refusal_reason": "plastic bags mixed into food waste"})
    assert receipt.status_code == 201, receipt.text
    ra = receipt.json()["receipt_id"]
    assert receipt.json()["accepted_grams"] == 8_500

    # The refused 2 000 g stay in custody: 1 500 g to plant B, the remaining 500 g back
    # to the station that dispatched the batch (the default destination).
    t.clock.advance(timedelta(minutes=30))
    too_much = await t.client.post(f"/v1/receipts/{ra}/redirects", headers=a, json={
        "destination_kind": "plant", "destination_id": plant_b, "grams": 2_001})
    assert too_much.status_code == 422 and too_much.json()["field"] == "grams"
    to_b = await t.client.post(f"/v1/receipts/{ra}/redirects", headers=a, json={
        "destination_kind": "plant", "destination_id": plant_b, "grams": 1_500})
    assert to_b.status_code == 201, to_b.text
    back = await t.client.post(f"/v1/receipts/{ra}/redirects", headers=a,
                               json={"destination_kind": "station"})
    assert back.status_code == 201, back.text
    assert (back.json()["destination_id"], back.json()["grams"]) == ("ST-7", 500)
    nothing_left = await t.client.post(f"/v1/receipts/{ra}/redirects", headers=a,
                                       json={"destination_kind": "station"})
    assert nothing_left.status_code == 422

    # Plant B weighs the redirected part (1 480 g) and accepts it all.
    b = t.operator(plant_b)
    incoming_b = (await t.client.get(f"/v1/plants/{plant_b}/incoming", headers=b)).json()
    assert [x["redirect_id"] for x in incoming_b["redirects"]] == [to_b.json()["redirect_id"]]
    receipt_b = await t.client.post(f"/v1/plants/{plant_b}/receipts", headers=b, json={
        "redirect_id": to_b.json()["redirect_id"], "measured_grams": 1_480,
        "status": "ACCEPTED"})
    assert receipt_b.status_code == 201, receipt_b.text
    rb = receipt_b.json()
    assert (rb["batch_id"], rb["source_receipt_id"], rb["declared_grams"]) == (batch, ra, 1_500)
    twice = await t.client.post(f"/v1/plants/{plant_b}/receipts", headers=b, json={
        "redirect_id": to_b.json()["redirect_id"], "measured_grams": 1_480,
        "status": "ACCEPTED"})
    assert twice.status_code == 409 and twice.json()["field"] == "redirect_id"

    # Plant A treats its 8 500 g accepted in two records; one gram more is refused.
    t.clock.advance(timedelta(hours=2))
    first = await t.client.post(f"/v1/receipts/{ra}/treatments", headers=a, json={
        "methods": {"composting": 6_000, "sanitary_landfill": 2_000},
        "outputs": [{"kind": "compost", "grams": 2_400}],
        "residue_grams": 300, "residue_destination": "Nam Sơn sanitary landfill cell 4"})
    assert first.status_code == 201, first.text
    beyond = await t.client.post(f"/v1/receipts/{ra}/treatments", headers=a,
                                 json={"methods": {"composting": 501}})
    assert beyond.status_code == 422
    assert beyond.json()["field"] == "methods"
    assert "8500 g accepted" in beyond.json()["detail"]
    not_permitted = await t.client.post(f"/v1/receipts/{ra}/treatments", headers=a,
                                        json={"methods": {"direct_landfill": 100}})
    assert not_permitted.status_code == 422 and not_permitted.json()["field"] == "methods"
    rest = await t.client.post(f"/v1/receipts/{ra}/treatments", headers=a,
                               json={"methods": {"composting": 500}})
    assert rest.status_code == 201 and rest.json()["previously_treated_grams"] == 8_000
    burnt = await t.client.post(f"/v1/receipts/{rb['receipt_id']}/treatments", headers=b,
                                json={"methods": {"incineration_energy_recovery": 1_480},
                                      "energy_kwh": 650})
    assert burnt.status_code == 201, burnt.text
    foreign = await t.client.post(f"/v1/receipts/{ra}/treatments", headers=b,
                                  json={"methods": {"incineration_energy_recovery": 1}})
    assert foreign.status_code == 403

    # The receipt as the plant sees it now: nothing left to treat or to send away.
    state = (await t.client.get(f"/v1/receipts/{ra}", headers=t.auditor())).json()
    assert (state["treated_grams"], state["untreated_grams"]) == (8_500, 0)
    assert (state["redirected_grams"], state["held_refused_grams"]) == (2_000, 0)
    assert len(state["treatments"]) == 2 and len(state["redirects"]) == 2
    listed = (await t.client.get(f"/v1/plants/{plant_a}/receipts?limit=1", headers=a)).json()
    assert listed["total"] == 1 and listed["items"][0]["receipt_id"] == ra
    assert (await t.client.get(f"/v1/receipts/{ra}", headers=b)).status_code == 403

    # What reached Kafka, in order per receipt.
    mine = {plant_a, plant_b, ra, rb["receipt_id"]}

    def ours(seen: list[tuple[Envelope, Event]]) -> list[Event]:
        return [e for env, e in seen if env.stream_id in mine]

    seen = await read_topic(kafka_bootstrap, treatment_topic(topic_prefix),
                            lambda s: len(ours(s)) >= 9)
    events = ours(seen)
    plants = [e for e in events if isinstance(e, PlantRegistered)]
    assert {p.plant_id for p in plants} == {plant_a, plant_b}
    received = [e for e in events if isinstance(e, BatchReceived)]
    at_a = next(e for e in received if e.plant_id == plant_a)
    assert at_a.status is AcceptanceStatus.PARTIALLY_REFUSED
    assert (at_a.received_grams, at_a.accepted_grams, at_a.refused_grams) == (10_500, 8_500,
                                                                              2_000)
    assert at_a.received_grams == at_a.accepted_grams + at_a.refused_grams
    assert at_a.declared_grams == 10_000 and at_a.refusal_reason
    at_b = next(e for e in received if e.plant_id == plant_b)
    assert (at_b.batch_id, at_b.accepted_grams) == (batch, 1_480)
    redirects = [e for e in events if isinstance(e, RefusedWasteRedirected)]
    assert {(r.destination_kind, r.destination_id, r.grams) for r in redirects} == {
        ("plant", plant_b, 1_500), ("station", "ST-7", 500)}
    assert all(r.batch_id == batch and r.receipt_id == ra for r in redirects)
    # Kafka orders events within a partition, so per receipt (stream), not across them.
    treated = [e for e in events if isinstance(e, TreatmentRecorded)]
    assert [(e.previously_treated_grams, e.treated_grams) for e in treated
            if e.receipt_id == ra] == [(0, 8_000), (8_000, 500)]
    assert [(e.plant_id, e.treated_grams, e.energy_kwh) for e in treated
            if e.receipt_id == rb["receipt_id"]] == [(plant_b, 1_480, 650)]
    assert not any(isinstance(e, CustodyAlertRaised) for e in events)  # 5 %: no warning

    # The certificate follows the refused part to plant B: every gram is accounted for.
    cert = await t.client.get(f"/v1/batches/{batch}/certificate", headers=t.auditor())
    assert cert.status_code == 200, cert.text
    c = cert.json()
    assert c["complete"] is True
    assert [r["receipt_id"] for r in c["receipts"]] == [ra, rb["receipt_id"]]
    totals = c["totals"]
    assert totals["received_grams"] == 10_500
    assert totals["treated_by_method"] == {"composting": 6_500, "sanitary_landfill": 2_000,
                                           "incineration_energy_recovery": 1_480}
    assert totals["returned_to_station_grams"] == 500
    assert totals["held_refused_grams"] == totals["in_transit_grams"] == 0
    assert totals["energy_kwh"] == 650 and len(c["sha256"]) == 64
    page = await t.client.get(f"/v1/batches/{batch}/certificate.html", headers=b)
    assert page.status_code == 200  # plant B received part of it, so B may print it
    for text in (batch, f"SEAL-{batch}", ra, rb["receipt_id"], f"Khu xử lý {plant_a}",
                 f"Khu xử lý {plant_b}", "Đốt thu hồi năng lượng", "650 kWh",
                 "Trả về trạm trung chuyển", "10,500 kg", c["sha256"]):
        assert text in page.text, text


async def test_discrepancy_and_over_capacity_alerts_reach_kafka(
    treatment: Treatment, kafka_bootstrap: str, topic_prefix: str,
) -> None:
    from treatment_testkit import seed

    t = treatment
    plant, batch = uid("P"), uid("B")
    await t.register_plant(plant, methods=["composting"], capacity=5_000)
    await seed(t, *batch_events(batch, plant, [(uid("T"), 10_000)]))
    r = await t.client.post(f"/v1/plants/{plant}/receipts", headers=t.operator(plant), json={
        "batch_id": batch, "measured_grams": 12_000, "status": "ACCEPTED"})
    assert r.status_code == 201
    assert r.json()["discrepancy"] is True and r.json()["over_capacity"] is True
    receipt_id = r.json()["receipt_id"]

    def alerts(seen: list[tuple[Envelope, Event]]) -> list[CustodyAlertRaised]:
        return [e for env, e in seen
                if env.stream_id == receipt_id and isinstance(e, CustodyAlertRaised)]

    seen = await read_topic(kafka_bootstrap, treatment_topic(topic_prefix),
                            lambda s: len(alerts(s)) >= 2)
    by_kind = {a.kind: a for a in alerts(seen)}
    gap = by_kind[AlertKind.RECEIPT_DISCREPANCY]
    assert (gap.subject_id, gap.expected_grams, gap.observed_grams) == (receipt_id, 10_000,
                                                                        12_000)
    full = by_kind[AlertKind.PLANT_OVER_CAPACITY]
    assert (full.subject_id, full.expected_grams, full.observed_grams) == (plant, 5_000, 12_000)
    received = next(e for env, e in seen
                    if env.stream_id == receipt_id and isinstance(e, BatchReceived))
    assert received.over_capacity is True
