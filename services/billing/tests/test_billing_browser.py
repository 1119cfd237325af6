"""The whole pay flow in headless Chromium: the household signs in with its token, presses
Pay, pays on the VNPay sandbox's page and comes back to a result page that shows the state
the IPN recorded. Billing and the sandbox are both served by uvicorn on loopback ports, and
the sandbox's IPN reaches billing over a real socket."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from billing_support import (
    SECRET,
    T0,
    TMN,
    VNPAY_SECRET,
    LiveServer,
    billing_settings,
    february_invoice,
    free_socket,
)
from wastetrail_billing.app import create_app
from wastetrail_billing.vnpay_sandbox import create_app as create_sandbox
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token
from wastetrail_runtime.clock import FixedClock

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(shutil.which("chromium") is None and not shutil.which(CHROMIUM),
                    reason="Debian's chromium package is not installed")
async def test_household_pays_an_invoice_through_vnpay_in_a_browser(
        billing_factory: Callable[..., Any], database_url: str, kafka_bootstrap: str,
        topic_prefix: str, tmp_path: Any) -> None:
    from playwright.async_api import async_playwright

    clock = FixedClock(T0)
    async with billing_factory(clock=clock) as setup:  # an open 60,000 đ invoice
        invoice_id = await february_invoice(setup)

    billing_socket = free_socket()
    public_url = f"http://127.0.0.1:{billing_socket.getsockname()[1]}"
    sandbox_app = create_sandbox(TMN, VNPAY_SECRET, ipn_url=f"{public_url}/v1/payments/vnpay/ipn",
                                 ipn_delays=(0.2,), clock=clock.now)
    with LiveServer(sandbox_app) as sandbox:
        settings = billing_settings(
            database_url, kafka_bootstrap, topic_prefix, tmp_path, public_url=public_url,
            vnpay_payment_url=f"{sandbox.url}/paymentv2/vpcpay.html",
            vnpay_api_url=f"{sandbox.url}/merchant_webapi/api/transaction")
        with LiveServer(create_app(settings, clock=clock), billing_socket):
            token = issue_token(SECRET, "household-HH-1", Role.HOUSEHOLD, account_id="HH-1")
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    # A household's phone: 360 px wide.
                    page = await browser.new_page(viewport={"width": 360, "height": 780})
                    page.set_default_timeout(20_000)
                    await page.goto(f"{public_url}/account")
                    await page.fill("#token", token)
                    await page.click("#sign-in")
                    row = page.locator(f"#invoice-{invoice_id}")
                    assert "Chưa thanh toán" in await row.inner_text()
                    # Each invoice is a card on a phone: nothing scrolls sideways.
                    width = await page.evaluate("document.documentElement.scrollWidth")
                    assert width <= 360, width

                    await page.click(f"#pay-{invoice_id}")
                    await page.wait_for_url(f"{sandbox.url}/paymentv2/vpcpay.html*")
                    assert "60.000 VND" in await page.inner_text("#amount")
                    await page.click("#pay")

                    await page.wait_for_url(f"{public_url}/v1/payments/vnpay/return*")
                    # Pending until the IPN lands; the page refreshes itself until then.
                    await page.wait_for_selector('#payment-state[data-state="succeeded"]')
                    assert "Thanh toán thành công" in await page.inner_text("#payment-state")
                    assert await page.get_attribute("#invoice-status", "data-status") == "paid"

                    await page.click("#lang-switch")
                    await page.wait_for_selector('#payment-state[data-state="succeeded"]')
                    assert "Payment succeeded" in await page.inner_text("#payment-state")

                    await page.click("#back")
                    assert "Paid" in await page.locator(f"#invoice-{invoice_id}").inner_text()
                    assert await page.locator(f"#pay-{invoice_id}").count() == 0
                finally:
                    await browser.close()

            auditor = {"authorization": "Bearer " + issue_token(SECRET, "a", Role.AUDITOR)}
            async with httpx.AsyncClient() as http:
                balances = (await http.get(f"{public_url}/v1/audit/balances",
                                           headers=auditor)).json()
                payments = (await http.get(f"{public_url}/v1/invoices/{invoice_id}",
                                           headers=auditor)).json()["payments"]
                (payment,) = payments
                gateway = (await http.get(
                    f"{sandbox.url}/sandbox/transactions/{payment['txn_ref']}")).json()
    assert balances["accounts"]["HH-1"] == {"invoiced": 60_000, "paid": 60_000, "refunded": 0,
                                            "credited": 0, "balance": 0}
    assert payment["status"] == "succeeded" and payment["gateway_transaction_no"]
    assert gateway["ipn"]["status"] == "confirmed"
    assert [a["rsp_code"] for a in gateway["ipn"]["attempts"]] == ["00"]
