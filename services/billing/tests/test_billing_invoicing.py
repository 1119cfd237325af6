"""Tariffs loaded through the API, accounts and charges from the chain, monthly invoices
with hand-computed totals (a mid-month tariff change included), idempotent re-runs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from billing_support import SECRET, TARIFFS, Billing, Events
from wastetrail_billing.adapters.ledger import post_entry
from wastetrail_billing.domain.ledger import JournalEntry, Posting
from wastetrail_billing.handlers import invoicing
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

pytestmark = pytest.mark.integration

# Two versions in January 2026 (31 days): v1 from 1 Jan, v2 from 17 Jan.
SPLIT_TARIFF = """
province = "Tỉnh Ví Dụ"
label = "TEST tariff with a mid-month change"
note = "hand-computed test tariff"

[[versions]]
effective_from = 2026-01-01
vat_rate_bp = 800
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "collection"
basis = "flat_monthly"
amount = 31000
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "treatment"
basis = "per_kg"
price_per_kg = 300

[[versions]]
effective_from = 2026-01-17
vat_rate_bp = 1000
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "collection"
basis = "flat_monthly"
amount = 62000
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "treatment"
basis = "per_kg"
price_per_kg = 400
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def january_loads(billing: Billing, ev: type[Events], account: str = "HH-1") -> None:
    await billing.feed(
        ev.generator(account),
        ev.load(f"{account}-L1", account, 10_500, utc(2026, 1, 5, 2)),    # v1: 10.5 kg × 300
        ev.load(f"{account}-L2", account, 7_250, utc(2026, 1, 20, 2)),    # v2: 7.25 kg × 400
        # 01:00 on 17 Jan in Vietnam (18:00 UTC on the 16th): priced by v2.
        ev.load(f"{account}-L3", account, 1_000, utc(2026, 1, 16, 18)),
        ev.load(f"{account}-L4", account, 3_000, utc(2026, 1, 10, 2), category="food"),
        ev.load(f"{account}-L5", account, 5_000, utc(2026, 1, 12, 2), category="recyclable"),
        # 00:30 on 1 Feb in Vietnam: February's bill, not January's.
        ev.load(f"{account}-L6", account, 9_000, utc(2026, 1, 31, 17, 30)),
        ev.refusal(f"{account}-R1", account, utc(2026, 1, 8, 2)),
    )


async def test_invoice_total_equals_the_hand_computed_value_across_a_tariff_change(
        billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("split", SPLIT_TARIFF)
    await january_loads(billing, ev)

    run = await billing.run_invoicing("2026-01")

    assert run["issued"] == ["INV-202601-HH-1"] and run["skipped"] == []
    r = await billing.client.get("/v1/invoices/INV-202601-HH-1", headers=billing.auth())
    invoice = r.json()
    # v1, 16 of 31 days: flat 31,000 × 16/31 = 16,000; 10.5 kg × 300 = 3,150 → VAT 8 % 1,532
    # v2, 15 of 31 days: flat 62,000 × 15/31 = 30,000; 8.25 kg × 400 = 3,300 → VAT 10 % 3,330
    assert [line["amount"] for line in invoice["lines"]] == [16_000, 3_150, 30_000, 3_300]
    assert invoice["subtotal"] == 52_450
    assert invoice["vat"] == 1_532 + 3_330
    assert invoice["total"] == 57_312
    # Food is not priced by this tariff, recyclables are free: neither is charged.
    assert invoice["charged_grams"] == 10_500 + 7_250 + 1_000
    assert {(u["category"], u["reason"], u["grams"]) for u in invoice["uncharged"]} == {
        ("food", "not_priced", 3_000), ("recyclable", "free_sorted", 5_000)}
    assert invoice["status"] == "open"
    assert invoice["refused_count"] == 1  # the refused pickup is on the bill, uncharged

    # The event carries integer quantities an auditor can recompute from.
    (kind, issued), = [e for e in await billing.stream("INV-202601-HH-1")]
    assert kind == "billing.invoice_issued"
    assert issued["total"] == 57_312 and issued["tariff_id"] == "split"
    assert [(x["quantity"], x["unit"], x["tariff_version"]) for x in issued["lines"]] == [
        (16, "day/31", "2026-01-01"), (10_500, "g", "2026-01-01"),
        (15, "day/31", "2026-01-17"), (8_250, "g", "2026-01-17")]

    # Dr receivable 57,312 / Cr revenue by component / Cr VAT — one balanced entry.
    postings = await billing.postings("INV-202601-HH-1")
    assert sorted(p[1:] for p in postings) == sorted([
        ("household:HH-1:receivable", 57_312), ("revenue:fees:collection", -46_000),
        ("revenue:fees:treatment", -6_450), ("liability:vat", -4_862)])


async def test_rerunning_a_month_issues_nothing_new(billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("split", SPLIT_TARIFF)
    await january_loads(billing, ev)
    first = await billing.run_invoicing("2026-01")
    second = await billing.run_invoicing("2026-01")

    assert first["issued"] == ["INV-202601-HH-1"]
    assert second["issued"] == [] and second["already_issued"] == 1
    assert len(await billing.stream("INV-202601-HH-1")) == 1
    assert len(await billing.postings("INV-202601-HH-1")) == 4  # not posted twice

    # A load of January synced after January was invoiced: billed once, by a supplement.
    await billing.feed(ev.load("HH-1-LATE", "HH-1", 2_000, utc(2026, 1, 25, 2)))
    third = await billing.run_invoicing("2026-01")
    assert third["issued"] == [] and third["supplements"] == ["SUP-202601-1-HH-1"]
    assert third["late_charges"] == 0
    fourth = await billing.run_invoicing("2026-01")
    assert (fourth["issued"], fourth["supplements"], fourth["late_charges"]) == ([], [], 0)
    assert len(await billing.stream("SUP-202601-1-HH-1")) == 1


async def test_a_month_that_has_not_ended_cannot_be_invoiced(billing: Billing) -> None:
    r = await billing.client.post("/v1/invoicing/runs", json={"period": "2026-03"},
                                  headers=billing.auth())
    assert r.status_code == 409
    assert r.json()["type"].endswith("/period-open") and r.json()["field"] == "period"


async def test_accounts_are_opened_from_generator_registered_once(
        billing: Billing, ev: type[Events]) -> None:
    await billing.feed(ev.generator("HH-9"), ev.generator("HH-9", commune="PHUONG-2"))

    events = await billing.stream("HH-9")
    assert [t for t, _ in events] == ["billing.account_opened"]
    assert events[0][1]["generator_id"] == "HH-9"
    r = await billing.client.get("/v1/accounts/HH-9", headers=billing.auth(Role.AUDITOR))
    assert r.json()["commune"] == "PHUONG-2"  # details follow the latest registration


async def test_credit_waiting_in_the_household_credit_account_reduces_the_invoice(
        billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("split", SPLIT_TARIFF)
    await january_loads(billing, ev)
    # An EPR refund of 5,000 đ credited to the household (as the EPR scheme posts it).
    async with billing.rt.store.unit_of_work() as uow:
        await post_entry(uow, JournalEntry("test-refund", (
            Posting("cash:epr_refunds", 5_000), Posting("household:HH-1:credit", -5_000)),
            "EPR refund", "claim-1"), actor=SYSTEM_ACTOR)
        await uow.commit()

    await billing.run_invoicing("2026-01")

    r = await billing.client.get("/v1/invoices/INV-202601-HH-1", headers=billing.auth())
    assert (r.json()["credits"], r.json()["total"]) == (5_000, 52_312)
    account = (await billing.client.get("/v1/accounts/HH-1", headers=billing.auth())).json()
    assert account["credit_available"] == 0
    assert account["balance_due"] == 52_312
    assert ("household:HH-1:credit", 5_000) in [
        p[1:] for p in await billing.postings("INV-202601-HH-1")]


async def test_tariff_publication_is_validated_versioned_and_idempotent(
        billing: Billing, ev: type[Events]) -> None:
    text = (TARIFFS / "hanoi_per_kg_example.toml").read_text()
    headers = billing.auth() | {"content-type": "application/toml"}

    r = await billing.client.post("/v1/tariffs/hanoi", content=text.encode(), headers=headers)
    assert r.status_code == 201 and r.json()["revision"] == 1
    again = await billing.client.post("/v1/tariffs/hanoi", content=text.encode(),
                                      headers=headers)
    assert again.status_code == 200 and again.json()["revision"] == 1

    (kind, published), = await billing.stream("tariff-hanoi")
    assert kind == "billing.tariff_published"
    assert published["document_sha256"] == hashlib.sha256(
        published["document_json"].encode()).hexdigest()
    assert json.loads(published["document_json"])["versions"][0]["rules"][0][
        "price_per_kg"] == "242.4"
    assert published["effective_from"] == ["2026-01-01", "2026-07-01", "2027-01-01",
                                         "2027-07-01"]

    bad = text.replace('price_per_kg = "242.4"', "price_per_kg = 242.4", 1)
    r = await billing.client.post("/v1/tariffs/hanoi", content=bad.encode(), headers=headers)
    assert r.status_code == 422
    assert r.json()["field"] == "versions[0].rules[0].price_per_kg"

    r = await billing.client.post("/v1/tariffs/hanoi", content=text.encode(),
                                  headers=billing.auth(Role.CASHIER))
    assert r.status_code == 403


async def test_a_revision_cannot_rewrite_versions_that_priced_invoices(
        billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("split", SPLIT_TARIFF)
    await january_loads(billing, ev)
    await billing.run_invoicing("2026-01")
    headers = billing.auth() | {"content-type": "application/toml"}

    rewritten = SPLIT_TARIFF.replace("price_per_kg = 300", "price_per_kg = 350")
    r = await billing.client.post("/v1/tariffs/split", content=rewritten.encode(),
                                  headers=headers)
    assert r.status_code == 409 and r.json()["type"].endswith("/tariff-history-rewrite")

    later = SPLIT_TARIFF + SPLIT_TARIFF[SPLIT_TARIFF.index("[[versions]]\neffective_from = "
                                                           "2026-01-17"):].replace(
        "2026-01-17", "2026-03-01")
    r = await billing.client.post("/v1/tariffs/split", content=later.encode(), headers=headers)
    assert r.status_code == 201 and r.json()["revision"] == 2


async def test_accounts_without_a_tariff_are_skipped_with_the_reason(
        billing: Billing, ev: type[Events]) -> None:
    await billing.feed(ev.generator("HH-2"), ev.load("L-1", "HH-2", 1_000, utc(2026, 2, 3)))
    run = await billing.run_invoicing("2026-02")
    assert run["issued"] == []
    assert run["skipped"] == [{"account_id": "HH-2", "reason": "no tariff is assigned to "
                               "commune 'PHUONG-1' (nor a default '*')"}]


async def test_a_late_load_is_billed_by_a_supplement_as_if_it_had_been_on_time(
        billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("split", SPLIT_TARIFF)
    await january_loads(billing, ev)
    await billing.run_invoicing("2026-01")
    late = ev.load("HH-1-LATE", "HH-1", 2_000, utc(2026, 1, 25, 2))
    await billing.feed(late)

    r = await billing.client.get("/v1/accounts/HH-1/charges", params={"period": "2026-01"},
                                 headers=billing.auth(Role.AUDITOR))
    assert {c["load_id"]: c["invoice_id"] for c in r.json()["items"]}["HH-1-LATE"] is None

    # February's run also bills January's late loads.
    run = await billing.run_invoicing("2026-02")
    assert run["supplements"] == ["SUP-202601-1-HH-1"] and run["late_charges"] == 0

    r = await billing.client.get("/v1/accounts/HH-1/charges", params={"period": "2026-01"},
                                 headers=billing.auth(Role.AUDITOR))
    on = {c["load_id"]: c["invoice_id"] for c in r.json()["items"]}
    assert on == {"HH-1-L1": "INV-202601-HH-1", "HH-1-L2": "INV-202601-HH-1",
                  "HH-1-L3": "INV-202601-HH-1", "HH-1-L4": "INV-202601-HH-1",
                  "HH-1-L5": "INV-202601-HH-1", "HH-1-LATE": "SUP-202601-1-HH-1"}
    # 2 kg on 25 Jan, v2: 2 × 400 = 800 đ; VAT 10 % on 33,300 + 800 is 3,410, 80 more.
    supplement = (await billing.client.get("/v1/invoices/SUP-202601-1-HH-1",
                                           headers=billing.auth())).json()
    assert [(x["unit"], x["quantity"], x["amount"]) for x in supplement["lines"]] == [
        ("kg", "2.000", 800)]
    assert (supplement["subtotal"], supplement["vat"], supplement["total"]) == (800, 80, 880)
    assert (supplement["period"], supplement["supplement"], supplement["charged_grams"]) == (
        "2026-01", 1, 2_000)
    billing.client.cookies.set("wt_token", issue_token(SECRET, "h", Role.HOUSEHOLD,
                                                       account_id="HH-1"))
    page = (await billing.client.get("/account?lang=en")).text
    billing.client.cookies.clear()
    assert 'id="invoice-SUP-202601-1-HH-1"' in page and "late loads, supplement 1" in page
    (kind, issued), = await billing.stream("SUP-202601-1-HH-1")
    assert kind == "billing.invoice_issued" and issued["total"] == 880
    assert sorted(p[1:] for p in await billing.postings("SUP-202601-1-HH-1")) == [
        ("household:HH-1:receivable", 880), ("liability:vat", -80),
        ("revenue:fees:treatment", -800)]

    # The month's two invoices bill what one invoice of every load would have.
    await january_loads(billing, ev, "HH-2")
    await billing.feed(ev.load("HH-2-LATE", "HH-2", 2_000, utc(2026, 1, 25, 2)))
    await billing.run_invoicing("2026-01")
    on_time = (await billing.client.get("/v1/invoices/INV-202601-HH-2",
                                        headers=billing.auth())).json()
    first = (await billing.client.get("/v1/invoices/INV-202601-HH-1",
                                      headers=billing.auth())).json()
    assert first["total"] + supplement["total"] == on_time["total"]
    assert first["vat"] + supplement["vat"] == on_time["vat"]


async def test_a_late_load_the_tariff_cannot_price_is_named_and_stays_late(
        billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("bags", PER_BAG_TARIFF)
    await billing.feed(ev.generator("HH-1"),
                       ev.load("A-1", "HH-1", 4_000, utc(2026, 1, 3, 2), bag_size="20l"))
    await billing.run_invoicing("2026-01")
    await billing.feed(ev.load("A-2", "HH-1", 1_000, utc(2026, 1, 9, 2)))  # no bag size

    run = await billing.run_invoicing("2026-01")

    assert run["supplements"] == [] and run["late_charges"] == 1
    assert run["skipped"] == [{"account_id": "HH-1", "reason": (
        "late loads of 2026-01: load A-2.bag_size: the tariff prices other/collection per "
        "bag of size 20l, 40l; the load has bag size None")}]


PER_BAG_TARIFF = """
province = "Tỉnh Ví Dụ"
label = "TEST per-bag tariff"
note = "hand-computed test tariff"

[[versions]]
effective_from = 2026-01-01
vat_rate_bp = 0
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "collection"
basis = "per_bag"
bag_prices = { "20l" = 3000, "40l" = 5500 }
"""


async def test_a_load_the_tariff_cannot_price_skips_its_account_only_and_is_named(
        billing: Billing, ev: type[Events]) -> None:
    await billing.publish_tariff("bags", PER_BAG_TARIFF)
    await billing.feed(
        ev.generator("HH-1"), ev.generator("HH-2"),
        ev.load("A-1", "HH-1", 4_000, utc(2026, 1, 3, 2), bag_size="20l"),
        ev.load("A-2", "HH-1", 5_000, utc(2026, 1, 9, 2), bag_size="20l"),
        ev.load("A-3", "HH-1", 6_000, utc(2026, 1, 9, 3), bag_size="40l"),
        ev.load("B-1", "HH-2", 1_000, utc(2026, 1, 4, 2), bag_size="20l"),
        ev.load("B-2", "HH-2", 1_000, utc(2026, 1, 5, 2)),  # no bag size
    )

    run = await billing.run_invoicing("2026-01")

    assert run["issued"] == ["INV-202601-HH-1"]
    assert run["skipped"] == [{"account_id": "HH-2", "reason": (
        "load B-2.bag_size: the tariff prices other/collection per bag of size 20l, 40l; "
        "the load has bag size None")}]
    r = await billing.client.get("/v1/invoices/INV-202601-HH-1", headers=billing.auth())
    # 2 × 20l × 3,000 + 1 × 40l × 5,500: bags counted across loads.
    assert [line["amount"] for line in r.json()["lines"]] == [6_000, 5_500]
    assert r.json()["total"] == 11_500


class Crash(BaseException):
    """A run that dies (killed, power lost): not an Exception, so nothing catches it."""


async def test_a_run_that_dies_half_way_and_is_run_again_issues_every_invoice_once(
        billing: Billing, ev: type[Events], monkeypatch: pytest.MonkeyPatch) -> None:
    await billing.publish_tariff("split", SPLIT_TARIFF)
    accounts = [f"HH-{n}" for n in range(1, 6)]
    for account in accounts:
        await january_loads(billing, ev, account)
    monkeypatch.setattr(invoicing, "CHUNK_SIZE", 2)
    real_issue_chunk = invoicing._issue_chunk
    calls = 0

    async def dies_in_the_second_chunk(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Crash
        return await real_issue_chunk(*args, **kwargs)

    monkeypatch.setattr(invoicing, "_issue_chunk", dies_in_the_second_chunk)
    now = datetime(2026, 2, 3, 3, 0, tzinfo=UTC)
    with pytest.raises(Crash):
        await invoicing.run_invoicing(billing.rt.store, "2026-01", actor=SYSTEM_ACTOR, now=now)
    monkeypatch.setattr(invoicing, "_issue_chunk", real_issue_chunk)

    again = await invoicing.run_invoicing(billing.rt.store, "2026-01", actor=SYSTEM_ACTOR,
                                          now=now)

    assert again.already_issued == 2  # the first chunk had committed
    assert sorted(again.issued) == [f"INV-202601-HH-{n}" for n in range(3, 6)]
    for account in accounts:
        invoice_id = f"INV-202601-{account}"
        assert [kind for kind, _ in await billing.stream(invoice_id)] == [
            "billing.invoice_issued"]
        r = await billing.client.get(f"/v1/invoices/{invoice_id}", headers=billing.auth())
        assert r.json()["total"] == 57_312
        assert len(await billing.postings(invoice_id)) == 4
    assert sum(amount for _, _, amount in await billing.postings()) == 0
    assert again.late_charges == 0
