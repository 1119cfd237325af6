"""The VNPay client against the sandbox simulator, both served for real on loopback ports.

A tiny merchant (a FastAPI app with an IPN endpoint that uses the real client) runs on
another port, so every IPN here crossed a real socket.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from wastetrail_billing.adapters.vnpay import (
    IPN_UNKNOWN_ERROR,
    REFUND_REQUEST_FIELDS,
    REFUND_RESPONSE_FIELDS,
    IpnOrder,
    RefundKind,
    VNPayApiResponse,
    VNPayClient,
    VNPayConfig,
    VNPayResponseSignatureError,
    decide_ipn,
    format_vnp_date,
    pipe_join,
    sign,
    signed_query,
)
from wastetrail_billing.vnpay_sandbox import create_app

TMN = "WTSANDBX"
SECRET = "SANDBOXSECRETFORWASTETRAILTESTS0"
IPN_ATTEMPTS = 4


def bound_socket() -> socket.socket:
    """A loopback socket bound to a free port and not yet listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """An ASGI app served by uvicorn in a thread, on a real loopback socket."""

    def __init__(self, app: FastAPI, sock: socket.socket | None = None) -> None:
        self.sock = sock or bound_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", loop="asyncio", http="h11", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "server thread died"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Order:
    amount_vnd: int
    pending: bool = True
    paid: bool | None = None
    ipn_params: dict[str, str] = field(default_factory=dict)


class Merchant:
    """The merchant side: an order book, an IPN endpoint, a return page."""

    def __init__(self) -> None:
        self.client = VNPayClient(
            VNPayConfig(
                tmn_code=TMN,
                hash_secret=SECRET,
                payment_url="http://unset.invalid/paymentv2/vpcpay.html",
                api_url="http://unset.invalid/merchant_webapi/api/transaction",
                return_url="http://unset.invalid/return",
            )
        )
        self.orders: dict[str, Order] = {}
        self.ipn_answers: list[str] = []
        self.answer_99_times = 0
        self.app = FastAPI()

        @self.app.get("/ipn")
        async def ipn(request: Request) -> dict[str, str]:
            if self.answer_99_times > 0:  # a merchant with a broken database, say
                self.answer_99_times -= 1
                self.ipn_answers.append("99")
                return IPN_UNKNOWN_ERROR.body()
            params = dict(request.query_params)
            order = self.orders.get(params.get("vnp_TxnRef", ""))
            decision = decide_ipn(
                params,
                signature_valid=self.client.verify_callback(params),
                order=None if order is None else IpnOrder(order.amount_vnd, order.pending),
            )
            if decision.record and order is not None:
                order.pending, order.paid, order.ipn_params = False, decision.paid, params
            self.ipn_answers.append(decision.rsp_code)
            return decision.body()

        @self.app.get("/return")
        async def return_page(request: Request) -> dict[str, bool]:
            return {"valid": self.client.verify_callback(dict(request.query_params))}


def client_for(sandbox_url: str, merchant_url: str, secret: str = SECRET) -> VNPayClient:
    return VNPayClient(
        VNPayConfig(
            tmn_code=TMN,
            hash_secret=secret,
            payment_url=f"{sandbox_url}/paymentv2/vpcpay.html",
            api_url=f"{sandbox_url}/merchant_webapi/api/transaction",
            return_url=f"{merchant_url}/return",
        )
    )


@dataclass
class World:
    merchant: Merchant
    merchant_url: str
    sandbox_url: str
    client: VNPayClient
    http: httpx.AsyncClient

    def new_order(self, amount_vnd: int = 45_000) -> tuple[str, str, datetime]:
        """An order in the merchant's book and its payment URL: (txn_ref, url, created)."""
        txn_ref = f"INV-{uuid.uuid4().hex[:12]}"
        self.merchant.orders[txn_ref] = Order(amount_vnd)
        created = datetime.now(UTC)
        url = self.client.build_payment_url(
            txn_ref=txn_ref,
            amount_vnd=amount_vnd,
            order_info=f"Phi thu gom rac {txn_ref}",
            ip_addr="127.0.0.1",
            now=created,
        )
        return txn_ref, url, created

    async def pay(self, url: str, outcome: str = "success") -> dict[str, Any]:
        response = await self.http.post(
            f"{self.sandbox_url}/sandbox/pay", json={"payment_url": url, "outcome": outcome}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def sandbox_state(self, txn_ref: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.sandbox_url}/sandbox/transactions/{txn_ref}")
        assert response.status_code == 200
        state: dict[str, Any] = response.json()
        return state

    async def wait_ipn(self, txn_ref: str, status: str, within: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            ipn: dict[str, Any] = (await self.sandbox_state(txn_ref))["ipn"]
            if ipn["status"] == status:
                return ipn
            assert time.monotonic() < deadline, f"IPN still {ipn}"
            await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Merchant, str, str]]:
    merchant = Merchant()
    with LiveServer(merchant.app) as merchant_server:
        sandbox = create_app(
            TMN,
            SECRET,
            ipn_url=f"{merchant_server.url}/ipn",
            ipn_attempts=IPN_ATTEMPTS,
            ipn_delays=(0.05, 0.1),
            ipn_timeout=2.0,
        )
        with LiveServer(sandbox) as sandbox_server:
            yield merchant, merchant_server.url, sandbox_server.url


@pytest.fixture
async def world(servers: tuple[Merchant, str, str]) -> AsyncIterator[World]:
    merchant, merchant_url, sandbox_url = servers
    merchant.answer_99_times = 0
    merchant.ipn_answers.clear()
    async with (
        client_for(sandbox_url, merchant_url) as client,
        httpx.AsyncClient(timeout=20) as http,
    ):
        yield World(merchant, merchant_url, sandbox_url, client, http)


# -- payment, return URL, IPN --------------------------------------------------------------


async def test_round_trip_pay_delivers_a_verifiable_ipn_and_return_url(world: World) -> None:
    txn_ref, url, _ = world.new_order(45_000)
    result = await world.pay(url)

    order = world.merchant.orders[txn_ref]
    assert order.paid is True
    assert not order.pending
    assert order.ipn_params["vnp_Amount"] == "4500000"
    assert order.ipn_params["vnp_TransactionNo"] == result["vnp_TransactionNo"]
    assert re.fullmatch(r"\d{14}", order.ipn_params["vnp_PayDate"])
    assert world.merchant.ipn_answers == ["00"]
    assert result["ipn"]["status"] == "confirmed"
    assert [a["rsp_code"] for a in result["ipn"]["attempts"]] == ["00"]

    return_url = result["return_url"]
    assert return_url.startswith(f"{world.merchant_url}/return?")
    params = dict(parse_qsl(urlsplit(return_url).query, keep_blank_values=True))
    assert world.client.verify_callback(params)
    assert params["vnp_ResponseCode"] == "00"
    assert params["vnp_TransactionStatus"] == "00"
    assert params["vnp_TxnRef"] == txn_ref
    assert (await world.http.get(return_url)).json() == {"valid": True}


async def test_a_repeated_ipn_is_answered_02_and_a_cancel_is_recorded_unpaid(
    world: World,
) -> None:
    txn_ref, url, _ = world.new_order()
    result = await world.pay(url, "cancel")
    assert result["vnp_ResponseCode"] == "24"
    assert result["vnp_TransactionStatus"] == "02"
    assert world.merchant.orders[txn_ref].paid is False

    # VNPay may call again: the same signed query now gets 02, nothing changes.
    again = await world.http.get(f"{world.merchant_url}/ipn?{urlsplit(result['return_url']).query}")
    assert again.json()["RspCode"] == "02"
    assert world.merchant.orders[txn_ref].paid is False


async def test_browser_form_pays_redirects_302_and_sends_ipn_in_background(world: World) -> None:
    txn_ref, url, _ = world.new_order(1_806_000)
    page = await world.http.get(url)
    assert page.status_code == 200
    assert 'id="pay"' in page.text
    assert 'id="cancel"' in page.text
    assert "1.806.000" in page.text
    assert "Số tiền" in page.text
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token is not None

    submitted = await world.http.post(
        f"{world.sandbox_url}/paymentv2/vpcpay.html",
        data={"token": token.group(1), "action": "pay", "bank_code": "VNPAYQR"},
    )
    assert submitted.status_code == 302
    location = submitted.headers["location"]
    assert location.startswith(f"{world.merchant_url}/return?")
    params = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    assert world.client.verify_callback(params)
    assert params["vnp_CardType"] == "QRCODE"
    assert params["vnp_BankCode"] == "VNPAYQR"

    await world.wait_ipn(txn_ref, "confirmed")
    assert world.merchant.orders[txn_ref].paid is True

    # The form cannot be submitted twice.
    twice = await world.http.post(
        f"{world.sandbox_url}/paymentv2/vpcpay.html",
        data={"token": token.group(1), "action": "cancel"},
    )
    assert twice.status_code == 400
    assert 'id="error-code">01<' in twice.text


async def test_bad_signature_gets_error_page_70(world: World) -> None:
    _, url, _ = world.new_order(45_000)
    forged = url.replace("vnp_Amount=4500000", "vnp_Amount=500000")
    page = await world.http.get(forged)
    assert page.status_code == 400
    assert 'id="error-code">70<' in page.text
    assert "Sai chữ ký" in page.text
    paid = await world.http.post(
        f"{world.sandbox_url}/sandbox/pay", json={"payment_url": forged, "outcome": "success"}
    )
    assert paid.status_code == 400
    assert paid.json()["code"] == "70"


def signed_pay_url(sandbox_url: str, **overrides: str) -> str:
    now = datetime.now(UTC)
    params = {
        "vnp_Version": "2.1.0",
        "vnp_Command": "pay",
        "vnp_TmnCode": TMN,
        "vnp_Amount": "4500000",
        "vnp_CurrCode": "VND",
        "vnp_TxnRef": f"X{uuid.uuid4().hex[:10]}",
        "vnp_OrderInfo": "Phi rac",
        "vnp_OrderType": "billpayment",
        "vnp_Locale": "vn",
        "vnp_ReturnUrl": "http://127.0.0.1:9/return",
        "vnp_IpAddr": "127.0.0.1",
        "vnp_CreateDate": format_vnp_date(now),
        "vnp_ExpireDate": format_vnp_date(now + timedelta(minutes=15)),
    } | overrides
    return f"{sandbox_url}/paymentv2/vpcpay.html?{signed_query(SECRET, params)}"


@pytest.mark.parametrize(
    "overrides",
    [
        {"vnp_Amount": "45000.5"},
        {"vnp_Amount": "4500050"},  # not whole đồng
        {"vnp_Amount": "100000"},  # 1,000 VND: below VNPay's minimum
        {"vnp_CurrCode": "USD"},
        {"vnp_CreateDate": "2025-01-01"},
        {"vnp_TxnRef": "INV#1"},
        {"vnp_BankCode": ""},
    ],
)
async def test_bad_format_gets_error_page_03(world: World, overrides: dict[str, str]) -> None:
    page = await world.http.get(signed_pay_url(world.sandbox_url, **overrides))
    assert page.status_code == 400
    assert 'id="error-code">03<' in page.text


async def test_expired_payment_url_and_unknown_merchant_are_refused(world: World) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = signed_pay_url(
        world.sandbox_url,
        vnp_CreateDate=format_vnp_date(past),
        vnp_ExpireDate=format_vnp_date(past + timedelta(minutes=15)),
    )
    assert 'id="error-code">11<' in (await world.http.get(expired)).text
    stranger = signed_pay_url(world.sandbox_url, vnp_TmnCode="OTHERTMN")
    assert 'id="error-code">02<' in (await world.http.get(stranger)).text


# -- IPN retries -------------------------------------------------------------------------


async def test_ipn_is_retried_when_the_merchant_answers_99(world: World) -> None:
    world.merchant.answer_99_times = 2
    txn_ref, url, _ = world.new_order()
    result = await world.pay(url)
    assert [a["rsp_code"] for a in result["ipn"]["attempts"]] == ["99", "99", "00"]
    assert result["ipn"]["status"] == "confirmed"
    assert world.merchant.orders[txn_ref].paid is True


async def test_ipn_retries_are_bounded(world: World) -> None:
    world.merchant.answer_99_times = 100
    txn_ref, url, _ = world.new_order()
    result = await world.pay(url)
    assert result["ipn"]["status"] == "gave_up"
    assert len(result["ipn"]["attempts"]) == IPN_ATTEMPTS
    assert world.merchant.orders[txn_ref].pending


async def test_ipn_is_retried_when_the_merchant_is_down() -> None:
    merchant = Merchant()
    merchant_sock = bound_socket()  # bound, not listening: the merchant is down
    merchant_url = f"http://127.0.0.1:{merchant_sock.getsockname()[1]}"
    sandbox = create_app(
        TMN, SECRET, ipn_url=f"{merchant_url}/ipn", ipn_attempts=6, ipn_delays=(0.3, 0.6, 1.0)
    )
    with LiveServer(sandbox) as sandbox_server:
        async with (
            client_for(sandbox_server.url, merchant_url) as client,
            httpx.AsyncClient(timeout=20) as http,
        ):
            world = World(merchant, merchant_url, sandbox_server.url, client, http)
            txn_ref, url, _ = world.new_order()
            paid = await http.post(
                f"{sandbox_server.url}/sandbox/pay",
                json={"payment_url": url, "outcome": "success", "wait_for_ipn": False},
            )
            assert paid.json()["ipn"]["status"] == "pending"
            deadline = time.monotonic() + 5
            while not (await world.sandbox_state(txn_ref))["ipn"]["attempts"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert merchant.orders[txn_ref].pending
            with LiveServer(merchant.app, merchant_sock):  # the merchant comes back
                ipn = await world.wait_ipn(txn_ref, "confirmed")
            assert ipn["attempts"][0]["outcome"].startswith("no answer")
            assert ipn["attempts"][-1]["rsp_code"] == "00"
            assert merchant.orders[txn_ref].paid is True


# -- querydr and refund ------------------------------------------------------------------


async def test_querydr_answer_is_verified(world: World) -> None:
    txn_ref, url, created = world.new_order(60_000)

    async def query() -> VNPayApiResponse:
        return await world.client.querydr(
            txn_ref=txn_ref, order_info="Truy van", transaction_date=created,
            ip_addr="127.0.0.1", now=datetime.now(UTC),
        )  # fmt: skip

    # VNPay learns of a payment only when the payer opens the payment URL.
    assert (await query()).response_code == "91"
    assert (await world.http.get(url)).status_code == 200
    pending = await query()
    assert pending.ok
    assert pending.transaction_status == "01"

    result = await world.pay(url)
    answer = await world.client.querydr(
        txn_ref=txn_ref,
        order_info="Truy van",
        transaction_date=created,
        ip_addr="127.0.0.1",
        now=datetime.now(UTC),
        transaction_no=result["vnp_TransactionNo"],
    )
    assert answer.ok
    assert answer.command == "querydr"
    assert answer.txn_ref == txn_ref
    assert answer.amount_vnd == 60_000
    assert answer.transaction_status == "00"
    assert answer.transaction_no == result["vnp_TransactionNo"]
    assert answer.paid_at is not None

    wrong_day = await world.client.querydr(
        txn_ref=txn_ref,
        order_info="Truy van",
        transaction_date=created - timedelta(days=1),
        ip_addr="127.0.0.1",
        now=datetime.now(UTC),
    )
    assert wrong_day.response_code == "91"
    unknown = await world.client.querydr(
        txn_ref="NOPE", order_info="Truy van", transaction_date=created,
        ip_addr="127.0.0.1", now=datetime.now(UTC),
    )  # fmt: skip
    assert unknown.response_code == "91"


async def test_refund_answers_are_verified_and_limited_to_what_was_paid(world: World) -> None:
    txn_ref, url, created = world.new_order(50_000)
    result = await world.pay(url)
    common: dict[str, Any] = {
        "txn_ref": txn_ref,
        "order_info": "Hoan tien",
        "transaction_date": created,
        "create_by": "ops@wastetrail",
        "ip_addr": "127.0.0.1",
        "transaction_no": result["vnp_TransactionNo"],
    }
    partial = await world.client.refund(
        amount_vnd=20_000, kind=RefundKind.PARTIAL, now=datetime.now(UTC), **common
    )
    assert partial.ok
    assert partial.command == "refund"
    assert partial.amount_vnd == 20_000
    assert partial.transaction_type == "03"

    too_much = await world.client.refund(
        amount_vnd=30_001, kind=RefundKind.PARTIAL, now=datetime.now(UTC), **common
    )
    assert too_much.response_code == "95"
    full_after_partial = await world.client.refund(
        amount_vnd=50_000, kind=RefundKind.FULL, now=datetime.now(UTC), **common
    )
    assert full_after_partial.response_code == "95"
    rest = await world.client.refund(
        amount_vnd=30_000, kind=RefundKind.PARTIAL, now=datetime.now(UTC), **common
    )
    assert rest.ok
    assert (await world.sandbox_state(txn_ref))["refunded_vnd"] == 50_000

    duplicate = await world.client.refund(
        amount_vnd=1,
        kind=RefundKind.PARTIAL,
        now=datetime.now(UTC),
        request_id="SAMEID1",
        **common,
    )
    assert duplicate.response_code == "95"
    again = await world.client.refund(
        amount_vnd=1,
        kind=RefundKind.PARTIAL,
        now=datetime.now(UTC),
        request_id="SAMEID1",
        **common,
    )
    assert again.response_code == "94"


async def test_refund_of_a_cancelled_payment_is_refused(world: World) -> None:
    txn_ref, url, created = world.new_order(50_000)
    await world.pay(url, "insufficient_funds")
    assert world.merchant.orders[txn_ref].paid is False
    answer = await world.client.refund(
        txn_ref=txn_ref, amount_vnd=50_000, kind=RefundKind.FULL, order_info="Hoan tien",
        transaction_date=created, create_by="ops", ip_addr="127.0.0.1", now=datetime.now(UTC),
    )  # fmt: skip
    assert answer.response_code == "95"


async def test_api_checks_checksum_and_tmn_code(world: World) -> None:
    now = format_vnp_date(datetime.now(UTC))
    body = {
        "vnp_RequestId": uuid.uuid4().hex,
        "vnp_Version": "2.1.0",
        "vnp_Command": "refund",
        "vnp_TmnCode": TMN,
        "vnp_TransactionType": "02",
        "vnp_TxnRef": "ANY",
        "vnp_Amount": "4500000",
        "vnp_TransactionNo": "0",
        "vnp_TransactionDate": now,
        "vnp_CreateBy": "ops",
        "vnp_CreateDate": now,
        "vnp_IpAddr": "127.0.0.1",
        "vnp_OrderInfo": "Hoan tien",
    }
    api = f"{world.sandbox_url}/merchant_webapi/api/transaction"

    async def post(payload: dict[str, str]) -> dict[str, str]:
        answer: dict[str, str] = (await world.http.post(api, json=payload)).json()
        assert answer["vnp_SecureHash"] == sign(SECRET, pipe_join(REFUND_RESPONSE_FIELDS, answer))
        return answer

    good_hash = sign(SECRET, pipe_join(REFUND_REQUEST_FIELDS, body))
    # The checksum covers the amount: changing it after signing is caught.
    tampered = body | {"vnp_SecureHash": good_hash, "vnp_Amount": "9900000"}
    assert (await post(tampered))["vnp_ResponseCode"] == "97"
    assert (await post(body | {"vnp_SecureHash": good_hash}))["vnp_ResponseCode"] == "91"
    stranger = body | {"vnp_TmnCode": "OTHERTMN"}
    stranger["vnp_SecureHash"] = sign(SECRET, pipe_join(REFUND_REQUEST_FIELDS, stranger))
    assert (await post(stranger))["vnp_ResponseCode"] == "02"


async def test_client_rejects_answers_not_signed_with_its_secret(world: World) -> None:
    txn_ref, url, created = world.new_order()
    await world.pay(url)
    async with client_for(
        world.sandbox_url, world.merchant_url, secret="IMPOSTORSECRETIMPOSTORSECRETIMPO"
    ) as impostor:
        with pytest.raises(VNPayResponseSignatureError):
            await impostor.querydr(
                txn_ref=txn_ref, order_info="Truy van", transaction_date=created,
                ip_addr="127.0.0.1", now=datetime.now(UTC),
            )  # fmt: skip


# -- the command line --------------------------------------------------------------------


def test_python_dash_m_serves_the_sandbox() -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # uvicorn binds it itself; the race with another process is negligible
    process = subprocess.Popen(
        [
            sys.executable, "-m", "wastetrail_billing.vnpay_sandbox",
            "--port", str(port), "--tmn-code", TMN, "--hash-secret", SECRET,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        url = signed_pay_url(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 20
        while True:
            try:
                page = httpx.get(url)
                break
            except httpx.ConnectError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert page.status_code == 200
        assert 'id="pay"' in page.text
    finally:
        process.terminate()
        process.wait(10)
