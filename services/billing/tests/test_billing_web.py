"""The household page over HTTP: sign in with the account's token (httpOnly cookie),
Vietnamese by default with an English toggle, invoices with a Pay button."""

from __future__ import annotations

import re

import pytest
from billing_support import SECRET, Billing, february_invoice
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

pytestmark = pytest.mark.integration


async def test_sign_in_with_the_account_token_shows_its_invoices(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    r = await billing.client.post("/v1/accounts/HH-1/token", json={}, headers=billing.auth())
    token = r.json()["token"]

    page = await billing.client.get("/account")
    assert 'name="token"' in page.text and "Đăng nhập" in page.text

    r = await billing.client.post("/account/sign-in", data={"token": token, "lang": "vi"})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("wt_token=") and "HttpOnly" in cookie and "SameSite=lax" in cookie

    page = await billing.client.get("/account")  # the client keeps the cookie
    assert page.status_code == 200
    assert f'id="invoice-{invoice_id}"' in page.text
    assert "60.000\u00a0₫" in page.text and "Chưa thanh toán" in page.text
    assert re.search(r"Tháng \d{1,2}/\d{4}", page.text)  # periods as people write them
    assert f'id="pay-{invoice_id}"' in page.text

    english = await billing.client.get("/account?lang=en")
    assert "Unpaid" in english.text and "Pay 60.000\u00a0₫" in english.text

    # The cookie authenticates the API too (the runtime reads wt_token).
    assert (await billing.client.get("/v1/accounts/HH-1")).status_code == 200
    assert (await billing.client.get("/v1/accounts/HH-2")).status_code == 403

    await billing.client.post("/account/sign-out", data={"lang": "vi"})
    assert 'name="token"' in (await billing.client.get("/account")).text


async def test_a_bad_or_foreign_token_is_refused(billing: Billing) -> None:
    r = await billing.client.post("/account/sign-in", data={"token": "nonsense"})
    assert r.status_code == 401 and "không hợp lệ" in r.text
    cashier = issue_token(SECRET, "c-1", Role.CASHIER)
    r = await billing.client.post("/account/sign-in", data={"token": cashier, "lang": "en"})
    assert r.status_code == 401 and "not valid" in r.text


async def test_pay_button_redirects_to_the_gateway(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    billing.client.cookies.set("wt_token", issue_token(SECRET, "h", Role.HOUSEHOLD,
                                                       account_id="HH-1"))
    r = await billing.client.post(f"/account/invoices/{invoice_id}/pay", data={"lang": "en"})
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("http://127.0.0.1:9/paymentv2/vpcpay.html?")
    assert "vnp_Amount=6000000" in location and "vnp_Locale=en" in location
    assert "vnp_ReturnUrl=http%3A%2F%2Fbilling.test%2Fv1%2Fpayments%2Fvnpay%2Freturn" in location


async def test_paying_a_settled_invoice_goes_back_to_the_account_page(billing: Billing) -> None:
    invoice_id = await february_invoice(billing)
    await billing.client.post(f"/v1/invoices/{invoice_id}/cash-payments",
                              json={"amount": 60_000}, headers=billing.auth(Role.CASHIER))
    billing.client.cookies.set("wt_token", issue_token(SECRET, "h", Role.HOUSEHOLD,
                                                       account_id="HH-1"))
    r = await billing.client.post(f"/account/invoices/{invoice_id}/pay", data={"lang": "vi"})
    assert r.status_code == 303 and r.headers["location"] == "/account?lang=vi"
    page = await billing.client.get("/account")
    assert "Đã thanh toán" in page.text and f'id="pay-{invoice_id}"' not in page.text
