"""Month end through billing's HTTP API: tariff, invoicing, VNPay and cash payments."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx

TARIFFS = Path(__file__).resolve().parents[3] / "services" / "billing" / "tariffs"
# Every tariff the simulated communes use; each covers the customer classes generated in
# its communes (Hanoi's example prices urban households only, so organisations sit in a
# ward priced by the HCMC example, which has per-kg organisation rules).
TARIFF_NAMES = ("hanoi_per_kg_example", "hcmc_tiered_example", "rural_flat_example")
VNPAY_MINIMUM_VND = 5_000  # VNPay refuses smaller amounts (vnp_Amount ≥ 5,000 đ)


def expected_invoice(tariff_name: str, commune_class: str, customer_class: str, period: str,
                     loads: list[dict[str, object]], credit_vnd: int = 0) -> int | None:
    """Amount due: the tariff applied to one account's simulated loads, less its credit
    (None: the tariff has no rule for the account)."""
    from wastetrail_contracts.pricing.fees import (
        Account,
        BillingMonth,
        ChargedQuantity,
        Credit,
        InvoiceError,
        compute_invoice,
    )
    from wastetrail_contracts.pricing.tariff import load_tariff

    tariff = load_tariff((TARIFFS / f"{tariff_name}.toml").read_text(encoding="utf-8"))
    year, month = (int(x) for x in period.split("-"))
    quantities = [ChargedQuantity.model_validate({
        "category": f["category"], "grams": f["grams"],
        "collected_on": date.fromisoformat(str(f["day"]))}) for f in loads]
    credits = [Credit.model_validate({"reference": "epr-refunds", "amount": credit_vnd})
               ] if credit_vnd else []
    try:
        invoice = compute_invoice(
            Account.model_validate({"commune_class": commune_class,
                                    "customer_class": customer_class}),
            BillingMonth.model_validate({"year": year, "month": month}), tariff, quantities,
            credits=credits)
    except InvoiceError:
        return None
    return invoice.amount_due


def expected_invoices(generators: list[dict[str, str]], loads: dict[str, dict[str, object]],
                      period: str, credits: dict[str, int] | None = None
                      ) -> dict[str, object]:
    """The billing ground truth: each account's tariff applied to its simulated loads."""
    by_gen: dict[str, list[dict[str, object]]] = defaultdict(list)
    for facts in loads.values():
        by_gen[str(facts["generator_id"])].append(facts)
    per_generator: dict[str, int | None] = {}
    for g in generators:
        per_generator[g["generator_id"]] = expected_invoice(
            g["tariff"], g["commune_class"], g["customer_class"], period,
            by_gen[g["generator_id"]], (credits or {}).get(g["generator_id"], 0))
    priced = [v for v in per_generator.values() if v is not None]
    return {"count": len(priced), "total_vnd": sum(priced),
            "unpriced": len(per_generator) - len(priced), "per_generator": per_generator}


async def month_end(client: httpx.AsyncClient, billing: str, sandbox: str,
                    tokens: dict[str, str], generators: list[dict[str, str]],
                    loads: dict[str, dict[str, object]], period: str,
                    say: Callable[[str], None], credits: dict[str, int] | None = None,
                    pay: bool = True) -> dict[str, object]:
    """Publish tariffs, wait for billing to see the loads, invoice, pay some invoices.

    ``generators`` carry their commune's ``tariff``; ``credits`` are the EPR refunds
    billing credited to each generator before the run (they reduce its invoice)."""
    h, ok = _bearer(tokens), ok_json

    for name in sorted({g["tariff"] for g in generators}):
        await ok(await client.post(f"{billing}/v1/tariffs/{name}", headers={
            **h("admin"), "Content-Type": "application/toml"},
            content=(TARIFFS / f"{name}.toml").read_bytes()))
    communes = {g["commune"]: g["tariff"] for g in generators}
    for commune, tariff in sorted(communes.items()):
        await ok(await client.put(f"{billing}/v1/communes/{commune}/tariff", headers=h("admin"),
                                  json={"tariff_id": tariff}))
    accounts = await _wait_charged(client, billing, h, ok, generators, loads, period)
    run = await ok(await client.post(f"{billing}/v1/invoicing/runs", headers=h("admin"),
                                     json={"period": period}))
    skipped: dict[str, int] = defaultdict(int)
    for item in run.get("skipped") or []:
        reason = item.get("reason", item) if isinstance(item, dict) else item
        skipped[str(reason)[:80]] += 1
    say(f"invoicing {period}: {len(run.get('issued') or [])} issued, "
        f"skipped {dict(skipped) or 0}")
    expected = expected_invoices(generators, loads, period, credits)
    per_gen = expected["per_generator"]
    assert isinstance(per_gen, dict)
    invoices, mismatches, billed_total = await _billed(
        client, billing, h, ok, generators, accounts, period, per_gen)
    result: dict[str, object] = {
        "issued": len(invoices), "skipped": dict(skipped), "billed_total_vnd": billed_total,
        "expected_count": expected["count"], "expected_total_vnd": expected["total_vnd"],
        "credits_vnd": sum(int(i["credits"]) for i in invoices),
        "mismatches": mismatches[:20], "mismatch_count": len(mismatches),
        "billing_matches_tariff": not mismatches and len(invoices) == len(generators),
        "expected_per_generator": per_gen,
    }
    if pay:
        result["payments"] = await _pay(client, billing, sandbox, h, ok, invoices)
    return result


async def _pay(client: httpx.AsyncClient, billing: str, sandbox: str,
               h: Callable[[str], dict[str, str]],
               ok: Callable[[httpx.Response], Any], invoices: list[dict[str, Any]]
               ) -> dict[str, object]:
    """Households pay a third of the invoices through VNPay (one cancels at the gateway);
    VNPay takes nothing under 5,000 đ, so a cashier takes cash for two small ones. The
    count is billing's: payments it reports succeeded once the IPNs arrived."""
    big = [i for i in invoices if int(i["total"]) >= VNPAY_MINIMUM_VND]
    small = [i for i in invoices if 0 < int(i["total"]) < VNPAY_MINIMUM_VND]
    tried: list[str] = []
    cancelled = 0
    for n, inv in enumerate(big[: max(2, len(big) // 3)]):
        aid = str(inv["account_id"])
        tok = (await ok(await client.post(f"{billing}/v1/accounts/{aid}/token",
                                          headers=h("admin"), json={"valid_days": 30})))["token"]
        started = await ok(await client.post(
            f"{billing}/v1/invoices/{inv['invoice_id']}/pay",
            headers={"Authorization": f"Bearer {tok}"}, json={"locale": "vn"}))
        outcome = "cancel" if n == 0 else "success"
        await ok(await client.post(f"{sandbox}/sandbox/pay", json={
            "payment_url": started["payment_url"], "outcome": outcome}))
        cancelled += outcome == "cancel"
        tried.append(str(inv["invoice_id"]))
    for inv in small[:2]:
        await ok(await client.post(
            f"{billing}/v1/invoices/{inv['invoice_id']}/cash-payments", headers=h("cashier"),
            json={"amount": int(inv["total"])}))
        tried.append(str(inv["invoice_id"]))
    # Billing's view, after the IPNs: the payments of every invoice we tried to pay.
    by_channel: dict[str, dict[str, int]] = {}
    statuses: dict[str, int] = defaultdict(int)
    for inv_id in tried:
        view = await ok(await client.get(f"{billing}/v1/invoices/{inv_id}",
                                         headers=h("auditor")))
        for pay in view["payments"]:
            statuses[str(pay["status"])] += 1
            if pay["status"] == "succeeded":
                row = by_channel.setdefault(str(pay["channel"]), {"count": 0, "vnd": 0})
                row["count"] += 1
                row["vnd"] += int(pay["amount"])
    return {"count": sum(r["count"] for r in by_channel.values()),
            "vnd": sum(r["vnd"] for r in by_channel.values()),
            "by_channel": by_channel, "statuses": dict(statuses),
            "vnpay_cancelled": cancelled}


async def bill_late_loads(client: httpx.AsyncClient, billing: str, tokens: dict[str, str],
                          generators: list[dict[str, str]],
                          loads: dict[str, dict[str, object]], period: str,
                          say: Callable[[str], None], late: int,
                          credits: dict[str, int] | None = None) -> dict[str, object]:
    """After ``late`` loads of an invoiced month reached billing: invoice the month again
    (supplementary invoices), then check that each account's invoices of the month
    together bill what the tariff gives for all of its loads."""
    h, ok = _bearer(tokens), ok_json
    accounts = await _wait_charged(client, billing, h, ok, generators, loads, period)
    run = await ok(await client.post(f"{billing}/v1/invoicing/runs", headers=h("admin"),
                                     json={"period": period}))
    supplements = list(run.get("supplements") or [])
    say(f"invoicing {period} again: {late} late loads, {len(supplements)} supplementary "
        f"invoices, {run.get('late_charges')} loads still unbilled")
    expected = expected_invoices(generators, loads, period, credits)
    per_gen = expected["per_generator"]
    assert isinstance(per_gen, dict)
    _, mismatches, billed_total = await _billed(
        client, billing, h, ok, generators, accounts, period, per_gen)
    return {
        "late_loads": late, "supplements": len(supplements),
        "late_charges_left": run.get("late_charges"),
        "billed_total_vnd": billed_total, "expected_total_vnd": expected["total_vnd"],
        "mismatches": mismatches[:20], "mismatch_count": len(mismatches),
        "billing_matches_tariff": not mismatches,
    }


async def _billed(client: httpx.AsyncClient, billing: str, h: Callable[[str], dict[str, str]],
                  ok: Callable[[httpx.Response], Any], generators: list[dict[str, str]],
                  accounts: dict[str, str], period: str, per_gen: dict[str, int | None]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, object]], int]:
    """Each account's invoices of the month (its invoice and any supplements) against the
    amount due the tariff gives: (the invoices, the mismatches, the total billed)."""
    invoices: list[dict[str, Any]] = []
    mismatches: list[dict[str, object]] = []
    billed_total = 0
    for g in generators:
        aid = accounts[g["generator_id"]]
        page = await ok(await client.get(f"{billing}/v1/accounts/{aid}/invoices",
                                         headers=h("auditor")))
        mine = [i for i in page["items"] if i["period"] == period]
        billed = sum(int(i["total"]) for i in mine) if mine else None
        billed_total += billed or 0
        invoices.extend(mine)
        if billed != per_gen[g["generator_id"]]:
            mismatches.append({"account_id": aid, "billed": billed,
                               "expected": per_gen[g["generator_id"]]})
    return invoices, mismatches, billed_total


def _bearer(tokens: dict[str, str]) -> Callable[[str], dict[str, str]]:
    def h(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}
    return h


async def ok_json(resp: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 2xx answer; a RuntimeError naming the call otherwise."""
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} → "
                           f"{resp.status_code}: {resp.text[:300]}")
    data: dict[str, Any] = resp.json()
    return data


async def _wait_charged(client: httpx.AsyncClient, billing: str,
                        h: Callable[[str], dict[str, str]],
                        ok: Callable[[httpx.Response], Any],
                        generators: list[dict[str, str]], loads: dict[str, dict[str, object]],
                        period: str) -> dict[str, str]:
    """Wait until billing's consumer has every account and every load of the month; the
    account id of each generator."""
    communes = {g["commune"] for g in generators}
    accounts: dict[str, str] = {}
    sem = asyncio.Semaphore(6)
    deadline = time.monotonic() + 240
    while True:
        for commune in communes:
            offset = 0
            while True:
                page = await ok(await client.get(
                    f"{billing}/v1/accounts", headers=h("auditor"),
                    params={"commune": commune, "limit": 500, "offset": offset}))
                items = page["items"]
                for a in items:
                    accounts[a["generator_id"]] = a["account_id"]
                if len(items) < 500:
                    break
                offset += 500
        missing = [g for g in generators if g["generator_id"] not in accounts]
        charged = 0
        if not missing:
            async def count(gid: str) -> int:
                async with sem:
                    page = await ok(await client.get(
                        f"{billing}/v1/accounts/{accounts[gid]}/charges", headers=h("auditor"),
                        params={"period": period, "limit": 500}))
                    return len(page["items"])
            charged = sum(await asyncio.gather(
                *(count(g["generator_id"]) for g in generators)))
        if not missing and charged >= len(loads):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"billing did not catch up: {len(missing)} accounts missing, "
                               f"{charged}/{len(loads)} loads charged")
        await asyncio.sleep(2)
    return accounts
