"""Payments against the VNPay sandbox served on a loopback port: querydr, refunds with
reversing postings, and cash recorded by a cashier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from billing_support import (
    TMN,
    VNPAY_SECRET,
    Billing,
    LiveServer,
    february_invoice,
    start_vnpay,
)
from wastetrail_billing.vnpay_sandbox import create_app as create_sandbox
from wastetrail_contracts.enums import Role
from wastetrail_runtime.clock import FixedClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def with_sandbox(billing_factory: Callable[..., Any]) -> AsyncIterator[
        tuple[Billing, str]]:
    """A billing app whose VNPay is the sandbox simulator on a real socket (no IPN sent:
    the tests deliver the sandbox's signed callback to the IPN endpoint themselves)."""
    from billing_support import T0

    clock = FixedClock(T0)
    sandbox = create_sandbox(TMN, VNPAY_SECRET, ipn_url=None, clock=clock.now)
    with LiveServer(sandbox) as server:
        async with billing_factory(
                clock=clock, vnpay_payment_url=f"{server.url}/paymentv2/vpcpay.html",
                vnpay_api_url=f"{server.url}/merchant_webapi/api/transaction") as billing:
            yield billing, server.url


async def pay_through_sandbox(billing: Billing, sandbox: str, invoice_id: str) -> str:
    """Pay on the sandbox and deliver its signed callback as the IPN; the payment id."""
    pay = await start_vnpay(billing, invoice_id)
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{sandbox}/sandbox/pay",
                            json={"payment_url": pay["payment_url"], "wait_for_ipn": False})
    assert r.status_code == 200, r.text
    query = urlsplit(r.json()["return_url"]).query
    answer = await billing.client.get(f"/v1/payments/vnpay/ipn?{query}")
    assert answer.json()["RspCode"] == "00"
    return str(pay["payment_id"])


async def test_querydr_reports_the_gateway_state_and_refunds_reverse_the_payment(
        with_sandbox: tuple[Billing, str]) -> None:
    billing, sandbox = with_sandbox
    invoice_id = await february_invoice(billing)
    payment_id = await pay_through_sandbox(billing, sandbox, invoice_id)
    cashier = billing.auth(Role.CASHIER)

    r = await billing.client.post(f"/v1/payments/{payment_id}/querydr", headers=cashier)
    assert r.status_code == 200, r.text
    assert r.json()["vnpay"]["transaction_status"] == "00" and r.json()["consistent"] is True

    r = await billing.client.post(f"/v1/payments/{payment_id}/refunds",
                                  json={"amount": 20_000, "reason": "billed twice"},
                                  headers=cashier)
    assert r.status_code == 201, r.text
    refund = r.json()
    assert refund["amount"] == 20_000 and refund["refund_ref"]
    assert [t for t, _ in await billing.stream(payment_id)][-1] == "billing.payment_refunded"
    assert sorted(p[1:] for p in await billing.postings(payment_id)) == sorted([
        ("cash:vnpay", 60_000), ("household:HH-1:receivable", -60_000),
        ("household:HH-1:receivable", 20_000), ("cash:vnpay", -20_000)])
    invoice = (await billing.client.get(f"/v1/invoices/{invoice_id}", headers=cashier)).json()
    assert (invoice["paid"], invoice["status"]) == (40_000, "partially_paid")
    gateway = (await httpx.AsyncClient().get(f"{sandbox}/sandbox/transactions/{payment_id}")
               ).json()
    assert gateway["refunded_vnd"] == 20_000  # VNPay really was asked

    r = await billing.client.post(f"/v1/payments/{payment_id}/refunds",
                                  json={"amount": 50_000, "reason": "too much"},
                                  headers=cashier)
    assert r.status_code == 422 and r.json()["field"] == "amount"
    r = await billing.client.post(f"/v1/payments/{payment_id}/refunds",
                                  json={"reason": "household moved"},
                                  headers=billing.auth(Role.HOUSEHOLD, "HH-1"))
    assert r.status_code == 403


async def test_querydr_of_an_unpaid_payment_is_not_consistent_with_a_paid_gateway(
        with_sandbox: tuple[Billing, str]) -> None:
    billing, sandbox = with_sandbox
    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    async with httpx.AsyncClient() as http:  # paid at VNPay, but the IPN never arrived
        await http.post(f"{sandbox}/sandbox/pay",
                        json={"payment_url": pay["payment_url"], "wait_for_ipn": False})

    r = await billing.client.post(f"/v1/payments/{pay['payment_id']}/querydr",
                                  headers=billing.auth(Role.CASHIER))

    assert r.json()["vnpay"]["transaction_status"] == "00"
    assert r.json()["payment"]["status"] == "pending"  # querydr alone never marks paid
    assert r.json()["consistent"] is False


async def test_a_cashier_records_cash_up_to_what_is_due(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    cashier = billing.auth(Role.CASHIER)

    r = await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                                  json={"amount": 70_000}, headers=cashier)
    assert r.status_code == 422 and r.json()["field"] == "amount"
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                                  json={"amount": 60_000}, headers=cashier)
    assert r.status_code == 201, r.text
    payment = r.json()
    assert (payment["channel"], payment["status"]) == ("cash", "succeeded")
    kinds = [t for t, _ in await billing.stream(payment["payment_id"])]
    assert kinds == ["billing.payment_initiated", "billing.payment_succeeded"]
    assert sorted(p[1:] for p in await billing.postings(payment["payment_id"])) == [
        ("cash:cashier", 60_000), ("household:HH-1:receivable", -60_000)]
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                                  json={"amount": 1}, headers=cashier)
    assert r.status_code == 409  # nothing left to pay
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/pay", json={},
                                  headers=billing.auth(Role.HOUSEHOLD, "HH-1"))
    assert r.status_code == 409

    # A cash refund needs no gateway and reverses the posting.
    r = await billing.client.post(f"/v1/payments/{payment['payment_id']}/refunds",
                                  json={"reason": "paid at the wrong office"}, headers=cashier)
    assert r.status_code == 201 and r.json()["amount"] == 60_000
    account = (await billing.client.get("/v1/accounts/HH-1", headers=cashier)).json()
    assert account["balance_due"] == 60_000


async def test_ipn_answers_are_counted_by_rsp_code_for_the_alerts(
        with_sandbox: tuple[Billing, str]) -> None:
    billing, sandbox = with_sandbox
    await pay_through_sandbox(billing, sandbox, await february_invoice(billing))
    forged = await billing.client.get("/v1/payments/vnpay/ipn?vnp_TxnRef=x&vnp_SecureHash=00")
    assert forged.json()["RspCode"] == "97"

    text = (await billing.client.get("/metrics")).text
    assert 'wastetrail_vnpay_ipn_total{rsp_code="00",service="billing"} 1.0' in text
    assert 'wastetrail_vnpay_ipn_total{rsp_code="97",service="billing"} 1.0' in text
    assert "process_resident_memory_bytes" in text
