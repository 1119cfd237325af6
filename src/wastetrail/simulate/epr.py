"""The deposit-refund scheme through billing's EPR API (``/v1/epr``), as its users drive it.

A producer registers a PET bottle, reports the units it placed on the province's market
and pays the deposits by bank transfer (recorded by a cashier); collectors record the
bottles households hand back at their recyclable loads. Returns are recorded before the
plants treat those loads, so the claims wait (pending) until the plant records recycling,
then are confirmed and credited to the households' accounts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from wastetrail.simulate.month_end import ok_json

PRODUCER = "sim-beverages"
SKU = "PET-500ML"
UNIT_GRAMS = 25
DEPOSIT_VND = 500
PLACED_UNITS = 10_000


async def open_scheme(client: httpx.AsyncClient, billing: str, tokens: dict[str, str],
                      province: str, period: str) -> None:
    """Register the producer and its SKU, report units on the market, pay the deposits."""
    def h(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    await ok_json(await client.post(f"{billing}/v1/epr/producers", headers=h("admin"), json={
        "producer_id": PRODUCER, "name": "Công ty Nước giải khát Mô phỏng",
        "tax_code": "0109999999", "kind": "producer"}))
    await ok_json(await client.post(f"{billing}/v1/epr/producers/{PRODUCER}/packaging",
                                headers=h("admin"), json={
        "sku": SKU, "material": "pet", "unit_grams": UNIT_GRAMS,
        "deposit_per_unit": DEPOSIT_VND, "effective_from": "2026-01-01"}))
    await ok_json(await client.post(f"{billing}/v1/epr/producers/{PRODUCER}/market-reports",
                                headers=h("producer"), json={
        "report_id": f"{PRODUCER}-{period}", "sku": SKU, "period": period,
        "province": province, "units": PLACED_UNITS}))
    await ok_json(await client.post(f"{billing}/v1/epr/producers/{PRODUCER}/deposits",
                                headers=h("cashier"), json={
        "payment_id": f"{PRODUCER}-dep-{period}", "amount": PLACED_UNITS * DEPOSIT_VND,
        "reference": f"CK-{PRODUCER}-{period}"}))


async def record_returns(client: httpx.AsyncClient, billing: str, collector_token: str,
                         province: str, returns: list[tuple[str, str, int]]
                         ) -> list[str]:
    """Collectors record (load id, generator id, units) returns; the claim ids opened."""
    claims: list[str] = []
    for load_id, generator_id, units in returns:
        out = await ok_json(await client.post(
            f"{billing}/v1/epr/returns", headers={"Authorization": f"Bearer {collector_token}"},
            json={"idempotency_key": f"ret-{load_id}", "load_id": load_id,
                  "generator_id": generator_id, "province": province,
                  "lines": [{"sku": SKU, "units": units}]}))
        claims += [str(c["claim_id"]) for c in out["claims"]]
    return claims


async def wait_credited(client: httpx.AsyncClient, billing: str, auditor_token: str,
                        claim_ids: list[str], say: Callable[[str], None],
                        limit: float = 90) -> dict[str, object]:
    """Poll the claims until none is pending or confirmed; billing's view of them."""
    deadline = time.monotonic() + limit
    views: list[dict[str, Any]] = []
    while True:
        views = [await ok_json(await client.get(
            f"{billing}/v1/epr/claims/{cid}",
            headers={"Authorization": f"Bearer {auditor_token}"})) for cid in claim_ids]
        waiting = [v for v in views if v["status"] in ("pending", "confirmed")]
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    by_status: dict[str, int] = {}
    for v in views:
        by_status[str(v["status"])] = by_status.get(str(v["status"]), 0) + 1
    credited = [v for v in views if v["status"] == "credited"]
    # Credited claims were confirmed first; a confirmed one still waits for money.
    credited_units = sum(int(v["confirmed_units"] or 0) for v in views
                         if v["status"] in ("confirmed", "credited"))
    per_generator: dict[str, int] = {}
    for v in credited:
        gid = str(v["generator_id"])
        per_generator[gid] = per_generator.get(gid, 0) + int(v["confirmed_amount"] or 0)
    say(f"EPR claims: {by_status}")
    return {
        "claims": len(views), "by_status": by_status,
        "reasons": sorted({str(v["reason"]) for v in views if v["status"] == "rejected"}),
        "confirmed_units": credited_units,
        "returned_units": sum(int(v["units"]) for v in views),
        "refunds_credited_vnd": sum(int(v["confirmed_amount"] or 0) for v in credited),
        "expected_refunds_vnd": credited_units * DEPOSIT_VND,
        "credited_by_generator": per_generator,
    }
