"""The IPN table of vnpay.md §2, case by case, with the ledger changed exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from billing_support import (
    SECRET,
    Billing,
    february_invoice,
    ipn_params,
    send_ipn,
    start_vnpay,
)
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

pytestmark = pytest.mark.integration


async def payment_state(billing: Billing, payment_id: str) -> str:
    r = await billing.client.get(f"/v1/payments/{payment_id}", headers=billing.auth())
    return str(r.json()["status"])


async def cash_postings(billing: Billing) -> list[tuple[str, str, int]]:
    return [p for p in await billing.postings() if p[1].startswith("cash:")]


async def test_ipn_table_case_by_case(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    ref, amount = pay["payment_id"], pay["amount"]
    assert amount == 60_000

    # 97: the hash does not verify (signed with another secret) — nothing recorded.
    answer = await send_ipn(billing, ipn_params(ref, amount), secret="not-the-merchant-secret")
    assert answer == {"RspCode": "97", "Message": "Invalid signature"}
    # 01: a correctly signed IPN for an order we never created.
    answer = await send_ipn(billing, ipn_params("PAY-unknown", amount))
    assert answer == {"RspCode": "01", "Message": "Order not found"}
    # 04: vnp_Amount is not the order amount × 100.
    answer = await send_ipn(billing, ipn_params(ref, amount - 1))
    assert answer == {"RspCode": "04", "Message": "invalid amount"}
    assert await payment_state(billing, ref) == "pending"
    assert await cash_postings(billing) == []

    # 00: success — PaymentSucceeded, Dr cash:vnpay / Cr receivable, invoice paid.
    answer = await send_ipn(billing, ipn_params(ref, amount))
    assert answer == {"RspCode": "00", "Message": "Confirm Success"}
    assert await payment_state(billing, ref) == "succeeded"
    payment_events = [t for t, _ in await billing.stream(ref)]
    assert payment_events == ["billing.payment_initiated", "billing.payment_succeeded"]
    assert sorted(p[1:] for p in await billing.postings(ref)) == [
        ("cash:vnpay", 60_000), ("household:HH-1:receivable", -60_000)]
    invoice = (await billing.client.get(f"/v1/invoices/{invoice_id}",
                                        headers=billing.auth())).json()
    assert (invoice["status"], invoice["paid"], invoice["outstanding"]) == ("paid", 60_000, 0)

    # 02: VNPay repeats the IPN — answered "already confirmed", the ledger is untouched.
    answer = await send_ipn(billing, ipn_params(ref, amount))
    assert answer == {"RspCode": "02", "Message": "Order already confirmed"}
    assert len(await billing.postings(ref)) == 2
    assert len(await billing.stream(ref)) == 2
    account = (await billing.client.get("/v1/accounts/HH-1", headers=billing.auth())).json()
    assert account["balance_due"] == 0


async def test_a_failed_payment_is_confirmed_00_and_changes_no_money(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    ref = pay["payment_id"]

    answer = await send_ipn(billing, ipn_params(ref, pay["amount"], response="24",
                                                status="02", transaction_no="0"))

    assert answer == {"RspCode": "00", "Message": "Confirm Success"}
    assert await payment_state(billing, ref) == "failed"
    (_, failed), = [e for e in await billing.stream(ref) if e[0] == "billing.payment_failed"]
    assert (failed["response_code"], failed["transaction_status"]) == ("24", "02")
    assert await cash_postings(billing) == []
    # A later success IPN for the same (finished) order is a repeat: 02, no money moves.
    answer = await send_ipn(billing, ipn_params(ref, pay["amount"]))
    assert answer["RspCode"] == "02"
    assert await cash_postings(billing) == []
    # The household can try again with a new payment.
    again = await start_vnpay(billing, invoice_id)
    assert again["payment_id"] != ref and again["amount"] == 60_000


async def test_concurrent_duplicate_ipns_post_to_the_ledger_once(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    params = ipn_params(pay["payment_id"], pay["amount"])

    answers = await asyncio.gather(*(send_ipn(billing, params) for _ in range(6)))

    assert sorted(a["RspCode"] for a in answers) == ["00", "02", "02", "02", "02", "02"]
    assert sorted(p[1:] for p in await cash_postings(billing)) == [("cash:vnpay", 60_000)]


async def test_the_return_url_shows_state_but_never_marks_paid(billing: Billing) -> None:
    from billing_support import VNPAY_SECRET
    from wastetrail_billing.adapters.vnpay import signed_query

    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    query = signed_query(VNPAY_SECRET, ipn_params(pay["payment_id"], pay["amount"]))

    page = await billing.client.get(f"/v1/payments/vnpay/return?{query}")
    assert page.status_code == 200
    assert 'data-state="pending"' in page.text  # the IPN has not arrived: not paid yet
    assert await payment_state(billing, pay["payment_id"]) == "pending"

    await send_ipn(billing, ipn_params(pay["payment_id"], pay["amount"]))
    page = await billing.client.get(f"/v1/payments/vnpay/return?{query}&lang=en")
    assert 'data-state="succeeded"' in page.text and "Payment succeeded" in page.text
    assert 'data-status="paid"' in page.text

    forged = query.replace("vnp_SecureHash=", "vnp_SecureHash=00")
    page = await billing.client.get(f"/v1/payments/vnpay/return?{forged}")
    assert 'data-state="bad_signature"' in page.text


async def test_only_the_household_itself_may_start_a_payment(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/pay", json={},
                                  headers=billing.auth(Role.HOUSEHOLD, "HH-OTHER"))
    assert r.status_code == 403 and r.json()["field"] == "account_id"


async def test_a_second_payment_waits_while_one_is_open_on_vnpay(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    first = await start_vnpay(billing, invoice_id)

    # Another tab, or a second click: the first order may still be paid on VNPay's page.
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/pay", json={},
                                  headers=billing.auth(Role.HOUSEHOLD, "HH-1"))
    assert r.status_code == 409
    problem = r.json()
    assert problem["type"].endswith("payment-pending") and problem["field"] == "invoice_id"
    assert problem["payment_id"] == first["payment_id"]
    assert first["payment_id"] in problem["detail"]
    # The web page shows the payment in progress instead of a second "pay" button.
    billing.client.cookies.set("wt_token", issue_token(SECRET, "h", Role.HOUSEHOLD,
                                                       account_id="HH-1"))
    page = await billing.client.get("/account?lang=en")
    billing.client.cookies.clear()
    assert f'id="pending-{invoice_id}"' in page.text
    assert f'id="pay-{invoice_id}"' not in page.text

    # Once the order has expired on VNPay (15 minutes by default), a new one may start.
    billing.clock.advance(timedelta(minutes=16))
    again = await start_vnpay(billing, invoice_id)
    assert again["payment_id"] != first["payment_id"] and again["amount"] == 60_000


async def test_money_that_arrives_for_a_paid_invoice_is_kept_as_account_credit(
        billing: Billing) -> None:
    # A VNPay order paid after the invoice was settled another way (cash at the counter
    # while the order was open): VNPay has taken the money, so the IPN is confirmed and
    # the payment recorded; the surplus shows as the account's credit, refundable.
    invoice_id = await february_invoice(billing)
    pay = await start_vnpay(billing, invoice_id)
    cash = await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                                     json={"amount": 60_000}, headers=billing.auth(Role.CASHIER))
    assert cash.status_code == 201, cash.text

    answer = await send_ipn(billing, ipn_params(pay["payment_id"], pay["amount"]))

    assert answer == {"RspCode": "00", "Message": "Confirm Success"}
    assert await payment_state(billing, pay["payment_id"]) == "succeeded"
    invoice = (await billing.client.get(f"/v1/invoices/{invoice_id}",
                                        headers=billing.auth())).json()
    assert (invoice["status"], invoice["paid"], invoice["outstanding"], invoice["overpaid"]) == (
        "paid", 120_000, 0, 60_000)
    account = (await billing.client.get("/v1/accounts/HH-1", headers=billing.auth())).json()
    assert account["balance_due"] == -60_000
    # The cashier gives the cash back: the account owes nothing and holds nothing.
    r = await billing.client.post(f"/v1/payments/{cash.json()['payment_id']}/refunds",
                                  json={"reason": "paid twice"},
                                  headers=billing.auth(Role.CASHIER))
    assert r.status_code == 201, r.text
    account = (await billing.client.get("/v1/accounts/HH-1", headers=billing.auth())).json()
    assert account["balance_due"] == 0


async def test_two_payments_started_at_once_open_one_vnpay_order(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    answers = await asyncio.gather(*(
        billing.client.post(f"/v1/invoices/{invoice_id}/pay", json={},
                            headers=billing.auth(Role.HOUSEHOLD, "HH-1")) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
