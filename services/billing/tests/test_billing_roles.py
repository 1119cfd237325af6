"""Who may do what: households see only their own account; auditors read; the audit
balances reconcile the ledger with invoices and payments."""

from __future__ import annotations

import pytest
from billing_support import Billing, february_invoice, ipn_params, send_ipn, start_vnpay
from sqlmodel import select
from wastetrail_billing.adapters.tables import Payment
from wastetrail_contracts.enums import Role

pytestmark = pytest.mark.integration


async def test_a_household_cannot_see_another_account(billing: Billing) -> None:
    invoice_id = await february_invoice(billing, "HH-1")
    await february_invoice(billing, "HH-2")
    mine = billing.auth(Role.HOUSEHOLD, "HH-1")

    assert (await billing.client.get("/v1/accounts/HH-1", headers=mine)).status_code == 200
    assert (await billing.client.get(f"/v1/invoices/{invoice_id}",
                                     headers=mine)).status_code == 200
    for path in ("/v1/accounts/HH-2", "/v1/accounts/HH-2/invoices",
                 "/v1/accounts/HH-2/credits", "/v1/invoices/INV-202602-HH-2"):
        r = await billing.client.get(path, headers=mine)
        assert r.status_code == 403, path
        assert r.json()["type"].endswith("/forbidden")
    for path in ("/v1/invoices", "/v1/accounts", "/v1/audit/balances", "/v1/tariffs"):
        assert (await billing.client.get(path, headers=mine)).status_code == 403, path
    assert (await billing.client.get("/v1/accounts/HH-1")).status_code == 401


async def test_auditors_read_everything_and_change_nothing(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    auditor = billing.auth(Role.AUDITOR)
    for path in ("/v1/accounts/HH-1", f"/v1/invoices/{invoice_id}", "/v1/invoices",
                 "/v1/tariffs", "/v1/tariffs/flat", "/v1/audit/balances",
                 "/v1/costs?period=2026-02", "/v1/reports/full-cost?period=2026-02"):
        assert (await billing.client.get(path, headers=auditor)).status_code == 200, path
    writes = [("/v1/invoicing/runs", {"period": "2026-02"}),
              (f"/v1/invoices/{invoice_id}/cash-payments", {"amount": 1}),
              (f"/v1/invoices/{invoice_id}/pay", {})]
    for path, body in writes:
        assert (await billing.client.post(path, json=body, headers=auditor)).status_code == 403
    r = await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                                  json={"amount": 1}, headers=billing.auth(Role.HOUSEHOLD,
                                                                           "HH-1"))
    assert r.status_code == 403  # households pay through VNPay, cashiers record cash


async def test_audit_balances_reconcile(billing: Billing) -> None:
    invoice_id = await february_invoice(billing, "HH-1")
    await february_invoice(billing, "HH-2")
    pay = await start_vnpay(billing, invoice_id)
    await send_ipn(billing, ipn_params(pay["payment_id"], pay["amount"]))
    await billing.client.post("/v1/invoices/INV-202602-HH-2/cash-payments",
                              json={"amount": 10_000}, headers=billing.auth(Role.CASHIER))

    r = await billing.client.get("/v1/audit/balances", headers=billing.auth(Role.AUDITOR))

    body = r.json()
    assert set(body) == {"accounts", "producers"}
    assert body["accounts"]["HH-1"] == {"invoiced": 60_000, "paid": 60_000, "refunded": 0,
                                        "credited": 0, "balance": 0}
    assert body["accounts"]["HH-2"] == {"invoiced": 60_000, "paid": 10_000, "refunded": 0,
                                        "credited": 0, "balance": 50_000}
    for figures in body["accounts"].values():
        # No EPR credit here, so none was applied either: the audit's identity reduces to
        # balance = invoiced − paid + refunded − credited.
        assert figures["balance"] == (figures["invoiced"] - figures["paid"]
                                      + figures["refunded"] - figures["credited"])
    assert isinstance(body["producers"], dict)


async def test_a_household_cannot_pay_or_read_another_households_payments(
    billing: Billing,
) -> None:
    await february_invoice(billing, "HH-1")
    theirs = await february_invoice(billing, "HH-2")
    their_payment = (await start_vnpay(billing, theirs, "HH-2"))["payment_id"]
    mine = billing.auth(Role.HOUSEHOLD, "HH-1")
    for method, path in (("POST", f"/v1/invoices/{theirs}/pay"),
                         ("GET", f"/v1/payments/{their_payment}"),
                         ("GET", "/v1/accounts/HH-2/charges?period=2026-02")):
        r = await billing.client.request(method, path, headers=mine,
                                         json={} if method == "POST" else None)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["field"] == "account_id"
    # The web page signs in with the same token (a cookie) and checks the same account.
    page = await billing.client.post(f"/account/invoices/{theirs}/pay",
                                     cookies={"wt_token": mine["authorization"][7:]})
    assert page.status_code == 403, page.text
    # Their own payment is theirs to read; A's refused attempts started no payment.
    r = await billing.client.get(f"/v1/payments/{their_payment}",
                                 headers=billing.auth(Role.HOUSEHOLD, "HH-2"))
    assert r.status_code == 200
    async with billing.rt.db.session() as session:
        payments = (await session.exec(select(Payment.payment_id))).all()
    assert list(payments) == [their_payment]
