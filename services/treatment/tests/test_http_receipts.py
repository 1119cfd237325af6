"""The plant's HTTP API on real PostgreSQL: plants, weighbridge receipts and their rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from treatment_testkit import Treatment, batch_events, seed, uid
from wastetrail_contracts.enums import Role

pytestmark = pytest.mark.integration


async def test_plants_are_registered_by_admins_only(treatment: Treatment) -> None:
    t = treatment
    plant = uid("P")
    body = {"plant_id": plant, "name": "Nam Sơn", "commune": "SOC-SON",
            "methods": ["composting", "sanitary_landfill"], "categories": ["food"],
            "daily_capacity_grams": 5_000_000_000}
    denied = await t.client.post("/v1/plants", json=body, headers=t.operator(plant))
    assert denied.status_code == 403
    created = await t.client.post("/v1/plants", json=body, headers=t.admin())
    assert created.status_code == 201
    assert created.json()["methods"] == ["composting", "sanitary_landfill"]
    again = await t.client.post("/v1/plants", json=body, headers=t.admin())
    assert again.status_code == 409 and again.json()["field"] == "plant_id"

    bad = await t.client.post("/v1/plants", headers=t.admin(),
                              json={**body, "plant_id": uid("P"), "methods": ["burying"]})
    assert bad.status_code == 422 and bad.json()["field"].startswith("methods")
    fractional = await t.client.post("/v1/plants", headers=t.admin(),
                                     json={**body, "plant_id": uid("P"),
                                           "daily_capacity_grams": 1.5})
    assert fractional.status_code == 422 and fractional.json()["field"] == "daily_capacity_grams"

    changed = await t.client.put(f"/v1/plants/{plant}", headers=t.admin(),
                                 json={k: v for k, v in body.items() if k != "plant_id"}
                                 | {"daily_capacity_grams": 1})
    assert changed.status_code == 200 and changed.json()["daily_capacity_grams"] == 1
    listed = await t.client.get("/v1/plants?limit=1", headers=t.auditor())
    assert listed.status_code == 200 and listed.json()["total"] == 1


async def _plant_with_batch(t: Treatment, grams: int = 10_000,
                            dispatched: int | None = None) -> tuple[str, str]:
    plant, batch = uid("P"), uid("B")
    await t.register_plant(plant, methods=["composting", "sanitary_landfill"])
    await seed(t, *batch_events(batch, plant, [(uid("T"), grams)], dispatched_grams=dispatched))
    return plant, batch


async def test_received_is_accepted_plus_refused_and_inconsistent_decisions_fail(
    treatment: Treatment,
) -> None:
    t = treatment
    plant, batch = await _plant_with_batch(t)
    url, auth = f"/v1/plants/{plant}/receipts", t.operator(plant)

    accepted_but_refusing = await t.client.post(url, headers=auth, json={
        "batch_id": batch, "measured_grams": 10_000, "status": "ACCEPTED",
        "refused_grams": 300, "refusal_reason": "wet"})
    assert accepted_but_refusing.status_code == 422
    assert accepted_but_refusing.json()["field"] == "refused_grams"
    assert accepted_but_refusing.json()["type"].endswith("/acceptance-inconsistent")

    partial_everything = await t.client.post(url, headers=auth, json={
        "batch_id": batch, "measured_grams": 10_000, "status": "PARTIALLY_REFUSED",
        "refused_grams": 10_000, "refusal_reason": "wet"})
    assert partial_everything.status_code == 422
    no_reason = await t.client.post(url, headers=auth, json={
        "batch_id": batch, "measured_grams": 10_000, "status": "PARTIALLY_REFUSED",
        "refused_grams": 1_000})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "refusal_reason"

    ok = await t.client.post(url, headers=auth, json={
        "batch_id": batch, "measured_grams": 10_200, "status": "PARTIALLY_REFUSED",
        "refused_grams": 1_200, "refusal_reason": "mixed with plastic"})
    assert ok.status_code == 201, ok.text
    r = ok.json()
    assert (r["received_grams"], r["accepted_grams"], r["refused_grams"]) == (10_200, 9_000,
                                                                              1_200)
    assert r["received_grams"] == r["accepted_grams"] + r["refused_grams"]
    assert r["declared_grams"] == 10_000 and r["discrepancy"] is False

    twice = await t.client.post(url, headers=auth, json={
        "batch_id": batch, "measured_grams": 10_200, "status": "ACCEPTED"})
    assert twice.status_code == 409 and twice.json()["field"] == "batch_id"


async def test_only_dispatched_batches_for_this_plant_by_its_own_operator(
    treatment: Treatment,
) -> None:
    t = treatment
    plant, batch = await _plant_with_batch(t)
    other = uid("P")
    await t.register_plant(other, methods=["composting"])
    body = {"batch_id": batch, "measured_grams": 10_000, "status": "ACCEPTED"}

    wrong_plant = await t.client.post(f"/v1/plants/{other}/receipts", json=body,
                                      headers=t.operator(other))
    assert wrong_plant.status_code == 422 and wrong_plant.json()["field"] == "batch_id"
    assert plant in wrong_plant.json()["detail"]
    unknown = await t.client.post(f"/v1/plants/{plant}/receipts", headers=t.operator(plant),
                                  json={**body, "batch_id": "B-never-dispatched"})
    assert unknown.status_code == 422 and unknown.json()["type"].endswith("batch-not-dispatched")
    foreign_token = await t.client.post(f"/v1/plants/{plant}/receipts", json=body,
                                        headers=t.operator(other))
    assert foreign_token.status_code == 403
    no_site = await t.client.post(f"/v1/plants/{plant}/receipts", json=body,
                                  headers=t.auth(Role.PLANT_OPERATOR))
    assert no_site.status_code == 403
    auditor = await t.client.post(f"/v1/plants/{plant}/receipts", json=body,
                                  headers=t.auditor())
    assert auditor.status_code == 403
    both = await t.client.post(f"/v1/plants/{plant}/receipts", headers=t.operator(plant),
                               json={**body, "trip_id": "T-1"})
    assert both.status_code == 422 and both.json()["field"] == "batch_id"

    incoming = await t.client.get(f"/v1/plants/{plant}/incoming", headers=t.operator(plant))
    assert [b["batch_id"] for b in incoming.json()["batches"]] == [batch]
    assert incoming.json()["batches"][0]["dispatched_grams"] == 10_000
    ok = await t.client.post(f"/v1/plants/{plant}/receipts", json=body,
                             headers=t.operator(plant))
    assert ok.status_code == 201
    incoming = await t.client.get(f"/v1/plants/{plant}/incoming", headers=t.auditor())
    assert incoming.json()["batches"] == []


async def test_discrepancy_beyond_ten_percent_warns_but_accepts(treatment: Treatment) -> None:
    t = treatment
    plant, batch = await _plant_with_batch(t, grams=10_000)
    plant2, batch2 = await _plant_with_batch(t, grams=10_000)
    far = await t.client.post(f"/v1/plants/{plant}/receipts", headers=t.operator(plant),
                              json={"batch_id": batch, "measured_grams": 8_900,
                                    "status": "ACCEPTED"})
    assert far.status_code == 201
    assert far.json()["discrepancy"] is True and far.json()["accepted_grams"] == 8_900
    near = await t.client.post(f"/v1/plants/{plant2}/receipts", headers=t.operator(plant2),
                               json={"batch_id": batch2, "measured_grams": 11_000,
                                     "status": "ACCEPTED"})
    assert near.status_code == 201 and near.json()["discrepancy"] is False  # exactly 10 %
    listed = (await t.client.get("/v1/alerts", headers=t.operator(plant))).json()["items"]
    assert [(a["kind"], a["subject_id"], a["observed_grams"]) for a in listed] == [
        ("receipt_discrepancy", far.json()["receipt_id"], 8_900)]
    assert (await t.client.get("/v1/alerts", headers=t.operator(plant2))).json()["items"] == []


async def test_receipts_beyond_daily_capacity_are_accepted_and_flagged(
    treatment: Treatment,
) -> None:
    t = treatment
    plant = uid("P")
    await t.register_plant(plant, methods=["composting"], capacity=100_000)
    batches = [uid("B") for _ in range(3)]
    for b in batches:
        await seed(t, *batch_events(b, plant, [(uid("T"), 60_000)]))
    url, auth = f"/v1/plants/{plant}/receipts", t.operator(plant)

    first = await t.client.post(url, headers=auth, json={
        "batch_id": batches[0], "measured_grams": 60_000, "status": "ACCEPTED"})
    assert first.json()["over_capacity"] is False
    second = await t.client.post(url, headers=auth, json={
        "batch_id": batches[1], "measured_grams": 60_000, "status": "ACCEPTED"})
    assert second.status_code == 201
    assert second.json()["over_capacity"] is True and second.json()["accepted_grams"] == 60_000
    day = second.json()["plant_day"]
    usage = (await t.client.get(f"/v1/plants/{plant}/days/{day}", headers=auth)).json()
    assert usage["received_grams"] == 120_000 and usage["over_capacity"] is True

    # 17:00 UTC is midnight in Vietnam: a new operating day, a fresh capacity.
    t.clock.set(t.clock.now().replace(hour=17) + timedelta(minutes=1))
    third = await t.client.post(url, headers=auth, json={
        "batch_id": batches[2], "measured_grams": 60_000, "status": "ACCEPTED"})
    assert third.json()["over_capacity"] is False
    assert third.json()["plant_day"] != day
