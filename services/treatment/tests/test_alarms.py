"""The plant's custody alarms on a fixed clock: raised when overdue, cleared by the event
that accounts for the last waiting gram (real PostgreSQL and Kafka relay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from treatment_testkit import T0, Treatment, batch_events, seed, uid
from wastetrail_contracts.enums import Category
from wastetrail_treatment.app import SPEC, alarm_loop, sweep_alarms
from wastetrail_treatment.domain.alarms import (
    AlarmDelays,
    redirect_deadline,
    refused_overdue,
    treatment_deadline,
    untreated_overdue,
)
from wastetrail_treatment.domain.receipt import ReceiptBalance

DELAYS = AlarmDelays(untreated=timedelta(days=7), refused=timedelta(hours=48))
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def balance(accepted: int, refused: int, treated: int = 0, redirected: int = 0
            ) -> ReceiptBalance:
    return ReceiptBalance("R", "P", Category.FOOD, accepted, refused, treated, redirected)


def test_deadlines_count_from_the_weighbridge_receipt() -> None:
    assert treatment_deadline(NOW, DELAYS) == NOW + timedelta(days=7)
    assert redirect_deadline(NOW, DELAYS) == NOW + timedelta(hours=48)


def test_untreated_is_overdue_only_with_grams_left_past_the_deadline() -> None:
    late = NOW + timedelta(days=7)
    assert untreated_overdue(balance(8_000, 0, treated=7_999), NOW, DELAYS, late)
    assert not untreated_overdue(balance(8_000, 0, treated=8_000), NOW, DELAYS, late)
    assert not untreated_overdue(balance(8_000, 0), NOW, DELAYS, late - timedelta(minutes=1))
    assert not untreated_overdue(balance(0, 8_000), NOW, DELAYS, late)  # all refused


def test_refused_is_overdue_only_while_grams_are_still_at_the_gate() -> None:
    late = NOW + timedelta(hours=48)
    assert refused_overdue(balance(8_000, 2_000, redirected=1_500), NOW, DELAYS, late)
    assert not refused_overdue(balance(8_000, 2_000, redirected=2_000), NOW, DELAYS, late)
    assert not refused_overdue(balance(8_000, 2_000), NOW, DELAYS, late - timedelta(seconds=1))
    assert not refused_overdue(balance(8_000, 0), NOW, DELAYS, late)


async def _stream(t: Treatment, stream_id: str, event_type: str) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in await t.rt.store.stream(stream_id) if e.type == event_type]


async def _open(t: Treatment, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = await t.client.get("/v1/alerts", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


@pytest.mark.integration
async def test_plant_alarms_fire_on_time_and_clear_on_treatment_and_redirect(
        treatment: Treatment) -> None:
    t = treatment
    plant, other, batch, trip = uid("P"), uid("Q"), uid("B"), uid("T")
    await t.register_plant(plant, methods=["composting", "sanitary_landfill"])
    await t.register_plant(other, methods=["sanitary_landfill"])
    await seed(t, *batch_events(batch, plant, [(trip, 10_000)], station_id="ST-7"))
    op = t.operator(plant)
    r = await t.client.post(f"/v1/plants/{plant}/receipts", headers=op, json={
        "batch_id": batch, "measured_grams": 10_000, "status": "PARTIALLY_REFUSED",
        "refused_grams": 2_000, "refusal_reason": "plastic bags in food waste"})
    assert r.status_code == 201, r.text
    receipt = r.json()["receipt_id"]

    # Refused waste: 48 h in these settings (the defaults).
    t.clock.set(T0 + timedelta(hours=47, minutes=59))
    assert await sweep_alarms(t.rt) == 0
    t.clock.set(T0 + timedelta(hours=48))
    assert await sweep_alarms(t.rt) == 1
    [refused] = await _open(t, op, kind="refused_not_redirected")
    assert (refused["subject_id"], refused["plant_id"], refused["expected_grams"]) == (
        receipt, plant, 2_000)
    assert "plastic bags in food waste" in refused["detail"]

    # Accepted waste: 7 days.
    t.clock.set(T0 + timedelta(days=7) - timedelta(minutes=1))
    assert await sweep_alarms(t.rt) == 0
    t.clock.set(T0 + timedelta(days=7))
    assert await sweep_alarms(t.rt) == 1
    assert await sweep_alarms(t.rt) == 0  # raised once, not on every sweep
    [untreated] = await _open(t, op, kind="accepted_not_treated")
    assert (untreated["subject_id"], untreated["expected_grams"]) == (receipt, 8_000)
    raised = await _stream(t, receipt, "custody.alert_raised")
    assert {(e["kind"], e["subject_kind"], e["commune"]) for e in raised} >= {
        ("refused_not_redirected", "receipt", "XA-01"),
        ("accepted_not_treated", "receipt", "XA-01")}

    # Listed for the plant's operator and auditors; not for another plant's operator.
    assert {a["alert_id"] for a in await _open(t, t.auditor())} >= {
        refused["alert_id"], untreated["alert_id"]}
    foreign = await t.client.get("/v1/alerts", headers=t.operator(other),
                                 params={"plant_id": plant})
    assert foreign.status_code == 403
    assert await _open(t, t.operator(other)) == []

    # Part of the accepted grams treated: still open; the rest: cleared.
    t.clock.advance(timedelta(hours=1))
    first = await t.client.post(f"/v1/receipts/{receipt}/treatments", headers=op,
                                json={"methods": {"composting": 5_000}})
    assert first.status_code == 201, first.text
    assert await _stream(t, receipt, "custody.alert_cleared") == []
    rest = await t.client.post(f"/v1/receipts/{receipt}/treatments", headers=op,
                               json={"methods": {"sanitary_landfill": 3_000}})
    assert rest.status_code == 201, rest.text
    [cleared] = await _stream(t, receipt, "custody.alert_cleared")
    assert (cleared["alert_id"], cleared["kind"], cleared["cleared_at"]) == (
        untreated["alert_id"], "accepted_not_treated",
        (T0 + timedelta(days=7, hours=1)).isoformat().replace("+00:00", "Z"))
    assert "covered the accepted 8000 g" in cleared["resolution"]

    # Refused grams: part back to the station (open), the rest to another plant (cleared).
    back = await t.client.post(f"/v1/receipts/{receipt}/redirects", headers=op,
                               json={"destination_kind": "station", "grams": 1_500})
    assert back.status_code == 201, back.text
    assert len(await _stream(t, receipt, "custody.alert_cleared")) == 1
    on = await t.client.post(f"/v1/receipts/{receipt}/redirects", headers=op,
                             json={"destination_kind": "plant", "destination_id": other})
    assert on.status_code == 201, on.text
    cleared_refused = (await _stream(t, receipt, "custody.alert_cleared"))[1]
    assert (cleared_refused["alert_id"], cleared_refused["kind"]) == (
        refused["alert_id"], "refused_not_redirected")
    assert f"sent to plant {other}" in cleared_refused["resolution"]
    assert "2000 g of 2000 g refused now redirected" in cleared_refused["resolution"]
    assert await _open(t, op) == []
    assert len(await _open(t, op, open_only="false")) == 2

    t.clock.set(T0 + timedelta(days=60))
    assert await sweep_alarms(t.rt) == 0  # nothing waits any more


@pytest.mark.integration
async def test_waste_treated_in_time_never_alarms(treatment: Treatment) -> None:
    t = treatment
    plant, batch, trip = uid("P"), uid("B"), uid("T")
    await t.register_plant(plant, methods=["composting"])
    await seed(t, *batch_events(batch, plant, [(trip, 4_000)]))
    op = t.operator(plant)
    r = await t.client.post(f"/v1/plants/{plant}/receipts", headers=op, json={
        "batch_id": batch, "measured_grams": 4_000, "status": "ACCEPTED"})
    receipt = r.json()["receipt_id"]
    t.clock.advance(timedelta(days=2))
    await t.client.post(f"/v1/receipts/{receipt}/treatments", headers=op,
                        json={"methods": {"composting": 4_000}})
    t.clock.set(T0 + timedelta(days=30))
    assert await sweep_alarms(t.rt) == 0
    assert alarm_loop in SPEC.background
