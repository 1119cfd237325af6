"""Full cost (tính đúng, tính đủ): operating costs through the API and the period report,
checked against hand-computed numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from billing_support import Billing, Events, february_invoice
from wastetrail_contracts.enums import Role

pytestmark = pytest.mark.integration

FEB = datetime(2026, 2, 10, 3, tzinfo=UTC)


async def test_full_cost_report_for_a_month(billing: Billing, ev: type[Events]) -> None:
    invoice_id = await february_invoice(billing)  # 60,000 đ flat, no VAT
    await billing.feed(
        ev.load("L-1", "HH-1", 60_000, FEB),
        ev.load("L-2", "HH-1", 40_000, FEB, category="recyclable"),  # free: not chargeable
        ev.treated("T-1", {"composting": 50_000}, FEB),
    )
    await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                              json={"amount": 30_000}, headers=billing.auth(Role.CASHIER))
    costs = [
        {"period": "2026-02", "component": "collection", "driver": "trip_km",
         "quantity": 100, "amount": 1_000_000, "cost_id": "C-1"},
        {"period": "2026-02", "component": "transport", "driver": "station_tonne",
         "quantity": 2_000_000, "amount": 400_000},
        {"period": "2026-02", "component": "treatment", "driver": "plant_tonne",
         "method": "composting", "quantity": 1_000_000, "amount": 300_000},
        {"period": "2026-02", "component": "overhead", "driver": "overhead", "quantity": 1,
         "amount": 200_000, "description": "billing office"},
        {"period": "2026-01", "component": "collection", "driver": "trip_km",
         "quantity": 10, "amount": 999_999},  # another month: not in February's report
    ]
    for body in costs:
        r = await billing.client.post("/v1/costs", json=body, headers=billing.auth())
        assert r.status_code == 201, r.text
    r = await billing.client.post("/v1/costs", json=costs[0], headers=billing.auth())
    assert r.status_code == 200  # the same cost_id again records nothing new
    assert [t for t, _ in await billing.stream("cost-C-1")] == [
        "billing.operating_cost_recorded"]

    r = await billing.client.get("/v1/reports/full-cost", params={"period": "2026-02"},
                                 headers=billing.auth(Role.AUDITOR))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["total_cost"] == 1_900_000
    by_component = {c["component"]: c for c in report["components"]}
    # Overhead is charged to collection unless told otherwise.
    assert {k: v["amount"] for k, v in by_component.items()} == {
        "collection": 1_200_000, "transport": 400_000, "treatment": 300_000}
    assert by_component["treatment"]["per_tonne"] == 6_000_000  # 300,000 đ / 0.05 t
    assert report["cost_per_tonne_collected"] == 19_000_000  # 1.9 M đ / 0.1 t
    assert (report["revenue_billed"], report["revenue_collected"]) == (60_000, 30_000)
    assert report["recovery_ratio_billed"] == "0.0316"  # 60,000 / 1,900,000
    assert report["recovery_ratio_collected"] == "0.0158"
    # 1,900,000 đ over 60 chargeable kg (recyclables are free): ⌈31,666.7⌉ đ/kg.
    assert report["recovery_price_per_kg"] == 31_667
    assert report["recovery_price_per_household_month"] == 1_900_000


async def test_cost_entries_are_validated_with_the_offending_field(billing: Billing) -> None:
    r = await billing.client.post("/v1/costs", json={
        "period": "2026-02", "component": "collection", "driver": "plant_tonne",
        "method": "composting", "quantity": 1, "amount": 1}, headers=billing.auth())
    assert r.status_code == 422 and r.json()["field"] == "driver"
    r = await billing.client.post("/v1/costs", json={
        "period": "2026-02", "component": "collection", "driver": "trip_km",
        "quantity": 1, "amount": "12"}, headers=billing.auth())
    assert r.status_code == 422 and r.json()["field"] == "amount"
    r = await billing.client.post("/v1/costs", json={
        "period": "2026-13", "component": "collection", "driver": "trip_km",
        "quantity": 1, "amount": 1}, headers=billing.auth())
    assert r.status_code == 422 and r.json()["field"] == "period"
    r = await billing.client.post("/v1/costs", json={
        "period": "2026-02", "component": "collection", "driver": "trip_km",
        "quantity": 1, "amount": 1}, headers=billing.auth(Role.AUDITOR))
    assert r.status_code == 403
