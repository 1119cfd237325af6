"""The double-entry ledger: every entry balances; accounts that must not go negative
cannot be overdrawn, even by concurrent entries."""

from __future__ import annotations

import asyncio

import pytest
from billing_support import Billing
from wastetrail_billing.adapters.ledger import InsufficientBalance, balance, post_entry
from wastetrail_billing.domain import ledger
from wastetrail_billing.domain.ledger import JournalEntry, Posting, UnbalancedEntry
from wastetrail_contracts import SYSTEM_ACTOR


def test_an_entry_must_balance_and_have_two_legs() -> None:
    with pytest.raises(UnbalancedEntry, match="sum to 1"):
        JournalEntry("e1", (Posting("cash:vnpay", 100), Posting("household:H:receivable", -99)),
                     "m", "r")
    with pytest.raises(UnbalancedEntry, match="at least two"):
        JournalEntry("e2", (Posting("cash:vnpay", 0),), "m", "r")
    with pytest.raises(UnbalancedEntry):
        JournalEntry("e3", (Posting("a", 0), Posting("b", 0)), "m", "r")
    ok = JournalEntry("e4", (Posting("cash:vnpay", 100),
                             Posting("household:H:receivable", -100)), "m", "r")
    assert sum(p.amount for p in ok.postings) == 0


def test_natural_side_of_the_chart_of_accounts() -> None:
    assert ledger.natural_balance("household:H:credit", -5_000) == 5_000
    assert ledger.natural_balance("liability:vat", -800) == 800
    assert ledger.natural_balance("revenue:fees:collection", -1) == 1
    assert ledger.natural_balance("household:H:receivable", 60_000) == 60_000
    assert ledger.natural_balance("cash:vnpay", 60_000) == 60_000
    assert ledger.natural_balance("epr:escrow", 10) == 10
    assert ledger.natural_balance("producer:P:deposits", -10) == 10


def credit_spend(entry_id: str, amount: int) -> JournalEntry:
    return JournalEntry(entry_id, (Posting("household:H:credit", amount),
                                   Posting("household:H:receivable", -amount)), "spend", "r")


@pytest.mark.integration
async def test_a_non_negative_account_cannot_be_overdrawn_concurrently(
        billing: Billing) -> None:
    store = billing.rt.store
    async with store.unit_of_work() as uow:  # 5,000 đ of credit waiting
        await post_entry(uow, JournalEntry("fund", (Posting("cash:epr_refunds", 5_000),
                                                    Posting("household:H:credit", -5_000)),
                                           "refund", "claim"), actor=SYSTEM_ACTOR)
        await uow.commit()

    async def spend(entry_id: str) -> InsufficientBalance | None:
        try:
            async with store.unit_of_work() as uow:
                await post_entry(uow, credit_spend(entry_id, 3_000), actor=SYSTEM_ACTOR,
                                 non_negative=frozenset({"household:H:credit"}))
                await asyncio.sleep(0.2)  # hold the lock while the other one tries
                await uow.commit()
            return None
        except InsufficientBalance as exc:
            return exc

    results = await asyncio.gather(spend("s1"), spend("s2"))

    refused = [r for r in results if r is not None]
    assert len(refused) == 1  # one spent 3,000 of the 5,000; the other found only 2,000
    assert (refused[0].account, refused[0].balance, refused[0].amount) == (
        "household:H:credit", 2_000, 3_000)
    async with billing.rt.db.session() as session:
        assert await balance(session, "household:H:credit") == -2_000
    # Exactly one LedgerEntryPosted for the spend that went through.
    posted = [s for s in ("s1", "s2") if await billing.stream(s)]
    assert len(posted) == 1
    (kind, payload), = await billing.stream(posted[0])
    assert kind == "billing.ledger_entry_posted"
    assert {(p["account"], p["amount"]) for p in payload["postings"]} == {
        ("household:H:credit", 3_000), ("household:H:receivable", -3_000)}


def test_vnpay_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from wastetrail_billing.settings import BillingSettings

    assert BillingSettings().vnpay_config() is None  # no credentials: VNPay is off
    monkeypatch.setenv("WASTETRAIL_VNPAY_TMN_CODE", "ABCD1234")
    monkeypatch.setenv("WASTETRAIL_VNPAY_HASH_SECRET", "s3cret")
    monkeypatch.setenv("WASTETRAIL_VNPAY_PAYMENT_URL", "https://pay.example/vpcpay.html")
    monkeypatch.setenv("WASTETRAIL_VNPAY_API_URL", "https://pay.example/api")
    monkeypatch.setenv("WASTETRAIL_PUBLIC_URL", "https://billing.example/")
    config = BillingSettings().vnpay_config()
    assert config is not None
    assert (config.tmn_code, config.hash_secret) == ("ABCD1234", "s3cret")
    assert config.payment_url == "https://pay.example/vpcpay.html"
    assert config.api_url == "https://pay.example/api"
    assert config.return_url == "https://billing.example/v1/payments/vnpay/return"
    assert "s3cret" not in repr(BillingSettings())
