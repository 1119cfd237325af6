"""Refunds exactly once: a VNPay refund that times out after the gateway refunded is
retried with the same Idempotency-Key and reconciled with querydr, never sent twice; a
late successful IPN after a recorded failure is kept and flagged, never dropped.

VNPay is the sandbox simulator on a real socket; its answer is really late (the client
times out); billing runs on real PostgreSQL and publishes to real Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from billing_support import T0, TMN, VNPAY_SECRET, Billing, LiveServer, february_invoice
from test_billing_payments import pay_through_sandbox
from wastetrail_billing.domain.refunds import RefundOutcome, refund_outcome
from wastetrail_billing.vnpay_sandbox import create_app as create_sandbox
from wastetrail_contracts.enums import Role
from wastetrail_runtime.clock import FixedClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def slow_gateway(billing_factory: Callable[..., Any], topic_prefix: str,
                       tmp_path: Path) -> AsyncIterator[tuple[Billing, str]]:
    """Billing (its own topics) against the sandbox, waiting 1 s for VNPay's answers."""
    clock = FixedClock(T0)
    sandbox = create_sandbox(TMN, VNPAY_SECRET, ipn_url=None, clock=clock.now)
    with LiveServer(sandbox) as server:
        async with billing_factory(
                clock=clock, topic_prefix=f"{topic_prefix}rfd{tmp_path.name[-6:]}.",
                vnpay_payment_url=f"{server.url}/paymentv2/vpcpay.html",
                vnpay_api_url=f"{server.url}/merchant_webapi/api/transaction",
                vnpay_api_timeout_seconds=1.0) as billing:
            yield billing, server.url


async def _gateway(sandbox: str, payment_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        body: dict[str, Any] = (await http.get(
            f"{sandbox}/sandbox/transactions/{payment_id}")).json()
    return body


async def test_refund_timing_out_after_the_gateway_refunded_then_retried_refunds_once(
        slow_gateway: tuple[Billing, str], kafka_bootstrap: str, tmp_path: Path) -> None:
    billing, sandbox = slow_gateway
    invoice_id = await february_invoice(billing)
    payment_id = await pay_through_sandbox(billing, sandbox, invoice_id)
    cashier = {**billing.auth(Role.CASHIER), "Idempotency-Key": "refund-desk-7-0001"}
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{sandbox}/sandbox/faults",
                            json={"slow_refunds": 1, "slow_refund_seconds": 3})
        assert r.status_code == 200

    url = f"/v1/payments/{payment_id}/refunds"
    body = {"amount": 20_000, "reason": "billed twice"}
    r = await billing.client.post(url, json=body, headers=cashier)
    # VNPay refunded, but its answer came after the client gave up: pending, not failed.
    assert r.status_code == 504, r.text
    assert r.json()["type"].endswith("refund-pending") and r.json()["status"] == 504
    gateway = await _gateway(sandbox, payment_id)
    assert (gateway["refunds"], gateway["refunded_vnd"]) == (1, 20_000)
    assert ("billing.payment_refunded" not in
            [t for t, _ in await billing.stream(payment_id)])  # no money moved here yet

    # Another refund of the payment waits for this one to be settled.
    r = await billing.client.post(url, json={"amount": 1_000, "reason": "other"},
                                  headers={**cashier, "Idempotency-Key": "refund-desk-7-0002"})
    assert r.status_code == 409 and r.json()["type"].endswith("refund-pending")

    # The cashier retries with the same key: querydr shows VNPay applied it, so it is
    # recorded — and VNPay is not asked to refund again.
    r = await billing.client.post(url, json=body, headers=cashier)
    assert r.status_code == 201, r.text
    refund = r.json()
    assert (refund["status"], refund["amount"], refund["attempts"]) == ("succeeded", 20_000, 1)
    r = await billing.client.post(url, json=body, headers=cashier)
    assert r.status_code == 201 and r.headers["idempotent-replayed"] == "true"
    assert r.json()["refund_id"] == refund["refund_id"]
    r = await billing.client.post(url, json={"amount": 5_000, "reason": "x"}, headers=cashier)
    assert r.status_code == 422 and r.json()["type"].endswith("idempotency-key-reused")

    # Money balance: the gateway refunded once, billing recorded once, the ledger agrees.
    gateway = await _gateway(sandbox, payment_id)
    assert (gateway["refunds"], gateway["refunded_vnd"]) == (1, 20_000)
    events = [t for t, _ in await billing.stream(payment_id)]
    assert events.count("billing.payment_refunded") == 1
    assert sorted(p[1:] for p in await billing.postings(payment_id)) == sorted([
        ("cash:vnpay", 60_000), ("household:HH-1:receivable", -60_000),
        ("household:HH-1:receivable", 20_000), ("cash:vnpay", -20_000)])
    payment = (await billing.client.get(f"/v1/payments/{payment_id}",
                                        headers=billing.auth(Role.CASHIER))).json()
    assert payment["refunded"] == 20_000

    # A refund request lost on its way to VNPay: querydr shows no new refund, so the retry
    # sends it again under a new request id (attempt 2) — and it happens once.
    async with httpx.AsyncClient() as http:
        await http.post(f"{sandbox}/sandbox/faults", json={
            "slow_refunds": 0, "lost_refunds": 1, "slow_refund_seconds": 3})
    second = {**cashier, "Idempotency-Key": "refund-desk-7-0003"}
    r = await billing.client.post(url, json={"amount": 40_000, "reason": "moved"},
                                  headers=second)
    assert r.status_code == 504
    assert (await _gateway(sandbox, payment_id))["refunds"] == 1
    # Two retries at once (a double click): one talks to VNPay, the other is told to wait
    # or is answered with the recorded refund — never a second refund.
    answers = await asyncio.gather(*(
        billing.client.post(url, json={"amount": 40_000, "reason": "moved"}, headers=second)
        for _ in range(2)))
    assert sorted(a.status_code for a in answers) in ([201, 201], [201, 409]), answers
    done = next(a for a in answers if a.status_code == 201)
    assert done.json()["attempts"] == 2
    gateway = await _gateway(sandbox, payment_id)
    assert (gateway["refunds"], gateway["refunded_vnd"]) == (2, 60_000)
    events = [t for t, _ in await billing.stream(payment_id)]
    assert events.count("billing.payment_refunded") == 2

    # The log agrees: billing's chain replays clean.
    await _audit_replay(billing, kafka_bootstrap, tmp_path)


async def test_a_late_successful_ipn_after_a_recorded_failure_is_flagged_not_dropped(
        slow_gateway: tuple[Billing, str]) -> None:
    from billing_support import start_vnpay
    from wastetrail_billing.adapters.vnpay import signed_query

    billing, _sandbox = slow_gateway
    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    params = {"vnp_Amount": str(pay["amount"] * 100), "vnp_BankCode": "NCB",
              "vnp_OrderInfo": f"Thanh toan hoa don {invoice_id}", "vnp_PayDate": "20260302100000",
              "vnp_TmnCode": TMN, "vnp_TxnRef": pay["payment_id"]}
    failed = signed_query(VNPAY_SECRET, {**params, "vnp_ResponseCode": "24",
                                         "vnp_TransactionStatus": "02",
                                         "vnp_TransactionNo": "0"})
    r = await billing.client.get(f"/v1/payments/vnpay/ipn?{failed}")
    assert r.json()["RspCode"] == "00"
    late = signed_query(VNPAY_SECRET, {**params, "vnp_ResponseCode": "00",
                                       "vnp_TransactionStatus": "00",
                                       "vnp_TransactionNo": "14000001"})
    for _ in range(2):  # VNPay may repeat it
        r = await billing.client.get(f"/v1/payments/vnpay/ipn?{late}")
        assert r.json()["RspCode"] == "02"
    payment = (await billing.client.get(f"/v1/payments/{pay['payment_id']}",
                                        headers=billing.auth(Role.CASHIER))).json()
    assert payment["status"] == "failed"
    assert payment["reconcile_reason"] == "late-success-after-failure"
    assert payment["late_transaction_no"] == "14000001" and payment["late_paid_at"]


def test_refund_outcome_from_querydr() -> None:
    paid = {"transaction_type": "01", "transaction_status": "00", "gateway_amount": 60_000}
    assert refund_outcome(amount=20_000, refunded_before=0, **paid) is (
        RefundOutcome.NOT_APPLIED)
    assert refund_outcome(amount=20_000, refunded_before=10_000, **paid) is (
        RefundOutcome.UNCLEAR)  # we recorded a refund VNPay does not show
    partly = {"transaction_type": "03", "transaction_status": "05"}
    assert refund_outcome(amount=20_000, refunded_before=10_000, gateway_amount=30_000,
                          **partly) is RefundOutcome.APPLIED
    assert refund_outcome(amount=20_000, refunded_before=10_000, gateway_amount=10_000,
                          **partly) is RefundOutcome.NOT_APPLIED
    assert refund_outcome(amount=20_000, refunded_before=10_000, gateway_amount=25_000,
                          **partly) is RefundOutcome.UNCLEAR
    assert refund_outcome(amount=60_000, refunded_before=0, transaction_type="02",
                          transaction_status="06", gateway_amount=60_000) is (
        RefundOutcome.APPLIED)
    assert refund_outcome(amount=60_000, refunded_before=0, transaction_type="02",
                          transaction_status="09", gateway_amount=60_000) is (
        RefundOutcome.REJECTED)


async def _audit_replay(billing: Billing, bootstrap: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner
    from wastetrail_audit.cli import app as audit

    await asyncio.sleep(1.5)  # the relay publishes, a checkpoint is signed
    keys = billing.rt.settings.keys_dir
    result = await asyncio.to_thread(CliRunner().invoke, audit, [
        "replay", "--bootstrap", bootstrap, "--topic-prefix", billing.prefix,
        "--keys-dir", str(keys), "--work-dir", str(tmp_path / "audit"), "--quiet"])
    assert result.exit_code == 0, result.output


