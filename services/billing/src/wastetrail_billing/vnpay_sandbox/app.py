"""A local stand-in for the VNPay 2.1.0 gateway, for tests and the province simulator.

It plays VNPay's side of ``/work/shared/vnpay.md`` for one merchant:

* ``GET /paymentv2/vpcpay.html`` checks the merchant's signed payment URL and shows a
  payment page; posting that page's form pays (``#pay``) or cancels (``#cancel``),
  sends the signed IPN to the merchant (with retries, in the background) and
  redirects the browser to ``vnp_ReturnUrl`` with the same signed query.
* ``POST /merchant_webapi/api/transaction`` answers querydr and refund, signed.

Two endpoints are **simulator conveniences, not part of VNPay**:
``POST /sandbox/pay`` (pay or cancel a payment URL without a browser) and
``GET /sandbox/transactions/{txn_ref}`` (inspect a payment and its IPN deliveries).

State lives in memory: restarting the simulator forgets every payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
import jinja2
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from wastetrail_billing.adapters.vnpay import (
    REQUEST_FIELDS,
    RESPONSE_FIELDS,
    VIETNAM_TZ,
    VNP_VERSION,
    ApiCommand,
    check_safe_text,
    format_vnp_date,
    parse_vnp_date,
    pipe_join,
    sign,
    signed_query,
    verify_signed_query,
    wire_amount_to_vnd,
)

__all__ = ["Outcome", "SandboxGateway", "create_app"]

Outcome = Literal["success", "cancel", "insufficient_funds"]
IpnStatus = Literal["not_configured", "pending", "confirmed", "gave_up", "cancelled"]

# (vnp_ResponseCode, vnp_TransactionStatus) per outcome, from vnpay.md §2's tables.
_OUTCOME_CODES: Final[Mapping[Outcome, tuple[str, str]]] = {
    "success": ("00", "00"),
    "cancel": ("24", "02"),
    "insufficient_funds": ("51", "02"),
}
_EXPIRED_CODES: Final = ("11", "02")
_BANKS: Final = ("NCB", "VNPAYQR", "VNBANK", "INTCARD")
# The merchant's IPN endpoint confirmed (00) or already had it (02): stop retrying.
_IPN_DONE: Final = frozenset({"00", "02"})
_REQUEST_ID_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)
_TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# Problem-details type for the simulator's own JSON endpoints (RFC 9457).
_PROBLEM_TYPE: Final = "urn:wastetrail:vnpay-sandbox:payment-rejected"
_VNPAY: Final = "as VNPay"
_CONVENIENCE: Final = "simulator convenience, not part of VNPay"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PaymentRejected(Exception):
    """The gateway refuses a payment URL; ``code`` is the error-page code shown."""

    def __init__(self, code: str, message: str, detail: str = "") -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail


def _bad_format(detail: str) -> PaymentRejected:
    return PaymentRejected(
        "03", "Dữ liệu gửi sang không đúng định dạng / Invalid data format", detail
    )


@dataclass
class IpnAttempt:
    """One server-to-server call of the merchant's IPN URL."""

    number: int
    at: datetime
    outcome: str
    rsp_code: str | None

    def as_json(self) -> dict[str, object]:
        """JSON view for the simulator's own endpoints."""
        return {
            "attempt": self.number,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "rsp_code": self.rsp_code,
        }


@dataclass
class IpnDelivery:
    """Every attempt to deliver one payment's IPN, and where that stands."""

    status: IpnStatus
    attempts: list[IpnAttempt] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """JSON view for the simulator's own endpoints."""
        return {"status": self.status, "attempts": [a.as_json() for a in self.attempts]}


@dataclass
class Transaction:
    """A payment as the gateway sees it, keyed by the merchant's vnp_TxnRef."""

    txn_ref: str
    amount_vnd: int
    order_info: str
    bank_code: str
    return_url: str
    create_date: str
    expire_date: str
    completed: bool = False
    response_code: str = ""
    transaction_status: str = "01"  # "not completed" until the payer acts
    transaction_no: str = ""
    bank_tran_no: str = ""
    pay_date: str = ""
    card_type: str = ""
    callback_query: str = ""
    refunded_vnd: int = 0
    refunds: int = 0  # refund requests applied (a merchant's double refund shows here)
    ipn: IpnDelivery = field(default_factory=lambda: IpnDelivery("not_configured"))

    def as_json(self) -> dict[str, object]:
        """JSON view for the simulator's own endpoints."""
        return {
            "txn_ref": self.txn_ref,
            "amount_vnd": self.amount_vnd,
            "order_info": self.order_info,
            "bank_code": self.bank_code,
            "create_date": self.create_date,
            "completed": self.completed,
            "response_code": self.response_code,
            "transaction_status": self.transaction_status,
            "transaction_no": self.transaction_no,
            "pay_date": self.pay_date,
            "refunded_vnd": self.refunded_vnd,
            "refunds": self.refunds,
            "callback_query": self.callback_query,
            "ipn": self.ipn.as_json(),
        }


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def _is_bank_code(text: str) -> bool:
    return 0 < len(text) <= 20 and text.isascii() and text.isalnum()


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


class SandboxGateway:
    """The simulator's state and rules, independent of HTTP."""

    def __init__(
        self,
        *,
        tmn_code: str,
        hash_secret: str,
        ipn_url: str | None,
        ipn_attempts: int,
        ipn_delays: Sequence[float],
        ipn_timeout: float,
        min_amount_vnd: int,
        max_amount_vnd: int,
        clock: Callable[[], datetime],
    ) -> None:
        if ipn_attempts < 1:
            raise ValueError("ipn_attempts must be at least 1")
        if ipn_attempts > 1 and not ipn_delays:
            raise ValueError("ipn_delays must not be empty when retrying")
        if any(d < 0 for d in ipn_delays):
            raise ValueError("ipn_delays must not be negative")
        self.tmn_code = tmn_code
        self._secret = hash_secret
        self.ipn_url = ipn_url
        self.ipn_attempts = ipn_attempts
        self.ipn_delays = tuple(ipn_delays)
        self.ipn_timeout = ipn_timeout
        self.min_amount_vnd = min_amount_vnd
        self.max_amount_vnd = max_amount_vnd
        self.clock = clock
        self.transactions: dict[str, Transaction] = {}
        self._sessions: dict[str, str] = {}  # payment-page token -> txn_ref
        self._request_ids: set[str] = set()
        self._transaction_nos: set[str] = set()
        self._tasks: set[asyncio.Task[IpnDelivery]] = set()
        self._http: httpx.AsyncClient | None = None
        # Fault simulation: the next ``slow_refunds`` refunds are applied, then answered
        # only after ``slow_refund_seconds`` (the merchant's client times out first).
        self.slow_refunds = 0
        self.slow_refund_seconds = 0.0
        # ...and the next ``lost_refunds`` refund requests never reach the gateway at all
        # (they hang for ``slow_refund_seconds`` and are not applied).
        self.lost_refunds = 0

    # -- payment page ---------------------------------------------------------------

    def open_payment(self, query: Mapping[str, str]) -> tuple[str, Transaction]:
        """Check a payment URL's query like the gateway; return a page token and the payment.

        Checks, in order: merchant (02), signature (70), format (03), a reference
        already used for a finished payment (01), expiry (11).
        """
        if query.get("vnp_TmnCode") != self.tmn_code:
            raise PaymentRejected("02", "Merchant không hợp lệ / Invalid merchant (vnp_TmnCode)")
        if not verify_signed_query(self._secret, query):
            raise PaymentRejected("70", "Sai chữ ký / Invalid signature")
        txn = self._parse_pay_params(query)
        existing = self.transactions.get(txn.txn_ref)
        if existing is not None and existing.completed:
            raise PaymentRejected("01", "Giao dịch đã tồn tại / Transaction already exists")
        if self.clock() > parse_vnp_date(txn.expire_date):
            raise PaymentRejected("11", "Giao dịch đã hết hạn / Payment window expired")
        # A pending payment may be reopened (the payer came back); the newest URL wins.
        self.transactions[txn.txn_ref] = txn
        token = secrets.token_urlsafe(16)
        self._sessions[token] = txn.txn_ref
        return token, txn

    def _parse_pay_params(self, q: Mapping[str, str]) -> Transaction:
        fixed = {"vnp_Version": VNP_VERSION, "vnp_Command": "pay", "vnp_CurrCode": "VND"}
        for key, expected in fixed.items():
            if q.get(key) != expected:
                raise _bad_format(f"{key} must be {expected!r}")
        if "vnp_SecureHashType" in q:
            # Stricter than needed: vnpay.md says 2.1.0 merchants must not send it.
            raise _bad_format("vnp_SecureHashType must not be sent in 2.1.0")
        try:
            amount_vnd = wire_amount_to_vnd(q.get("vnp_Amount", ""))
            check_safe_text("vnp_TxnRef", q.get("vnp_TxnRef", ""), max_length=100)
            check_safe_text("vnp_OrderInfo", q.get("vnp_OrderInfo", ""), max_length=255)
            create = parse_vnp_date(q.get("vnp_CreateDate", ""))
            expire = parse_vnp_date(q.get("vnp_ExpireDate", ""))
        except ValueError as exc:
            raise _bad_format(str(exc)) from None
        if not self.min_amount_vnd <= amount_vnd < self.max_amount_vnd:
            raise _bad_format(
                f"vnp_Amount must be from {self.min_amount_vnd} to below "
                f"{self.max_amount_vnd} VND (×100 on the wire)"
            )
        if expire <= create:
            raise _bad_format("vnp_ExpireDate must be after vnp_CreateDate")
        if q.get("vnp_Locale") not in ("vn", "en"):
            raise _bad_format("vnp_Locale must be 'vn' or 'en'")
        if not q.get("vnp_OrderType"):
            raise _bad_format("vnp_OrderType is required")
        if not q.get("vnp_IpAddr"):
            raise _bad_format("vnp_IpAddr is required")
        return_url = q.get("vnp_ReturnUrl", "")
        if urlsplit(return_url).scheme not in ("http", "https"):
            raise _bad_format("vnp_ReturnUrl must be an http(s) URL")
        bank_code = q.get("vnp_BankCode")
        if bank_code is not None and not _is_bank_code(bank_code):
            raise _bad_format("vnp_BankCode must be letters or digits; omit the key when empty")
        return Transaction(
            txn_ref=q["vnp_TxnRef"],
            amount_vnd=amount_vnd,
            order_info=q["vnp_OrderInfo"],
            bank_code=bank_code or "",
            return_url=return_url,
            create_date=q["vnp_CreateDate"],
            expire_date=q["vnp_ExpireDate"],
        )

    def transaction_for_token(self, token: str) -> Transaction:
        """The pending payment a payment-page form belongs to."""
        txn_ref = self._sessions.get(token)
        if txn_ref is None:
            raise _bad_format("unknown payment session")
        txn = self.transactions[txn_ref]
        if txn.completed:
            raise PaymentRejected("01", "Giao dịch đã tồn tại / Transaction already exists")
        return txn

    def complete(self, txn: Transaction, outcome: Outcome, bank_code: str = "") -> str:
        """Record the payer's outcome and return the signed callback query (§2)."""
        now = self.clock()
        response_code, status = _OUTCOME_CODES[outcome]
        if outcome != "cancel" and now > parse_vnp_date(txn.expire_date):
            response_code, status = _EXPIRED_CODES
        # The payer's pick on the page counts only when the merchant did not fix the bank.
        bank = txn.bank_code or (bank_code if _is_bank_code(bank_code) else "NCB")
        txn.completed = True
        txn.response_code, txn.transaction_status = response_code, status
        txn.pay_date = format_vnp_date(now)
        txn.bank_code = bank
        # Like VNPay: a payer who cancels never reached a bank, so no VNPay transaction
        # number (0) and no bank reference; a bank refusal still gets a number.
        txn.transaction_no = "0" if outcome == "cancel" else self._new_transaction_no()
        if response_code == "00":
            txn.bank_tran_no = f"VNP{txn.transaction_no}"
        if outcome != "cancel":
            txn.card_type = "QRCODE" if bank == "VNPAYQR" else "ATM"
        params = {
            "vnp_Amount": str(txn.amount_vnd * 100),
            "vnp_BankCode": bank,
            "vnp_OrderInfo": txn.order_info,
            "vnp_PayDate": txn.pay_date,
            "vnp_ResponseCode": response_code,
            "vnp_TmnCode": self.tmn_code,
            "vnp_TransactionNo": txn.transaction_no,
            "vnp_TransactionStatus": status,
            "vnp_TxnRef": txn.txn_ref,
        }
        if txn.bank_tran_no:
            params["vnp_BankTranNo"] = txn.bank_tran_no
        if txn.card_type:
            params["vnp_CardType"] = txn.card_type
        txn.callback_query = signed_query(self._secret, params)
        return txn.callback_query

    def return_url_for(self, txn: Transaction) -> str:
        """Where the browser goes after the payment: vnp_ReturnUrl plus the signed query."""
        return _with_query(txn.return_url, txn.callback_query)

    def _new_transaction_no(self) -> str:
        while True:
            number = str(10_000_000 + secrets.randbelow(90_000_000))
            if number not in self._transaction_nos:
                self._transaction_nos.add(number)
                return number

    # -- IPN --------------------------------------------------------------------------

    def start_ipn(self, txn: Transaction) -> asyncio.Task[IpnDelivery] | None:
        """Start delivering the IPN in the background; None when no IPN URL is configured."""
        if self.ipn_url is None:
            txn.ipn = IpnDelivery("not_configured")
            return None
        txn.ipn = IpnDelivery("pending")
        task = asyncio.create_task(
            self._deliver_ipn(txn, _with_query(self.ipn_url, txn.callback_query))
        )
        # Keep a reference: the event loop holds tasks only weakly.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver_ipn(self, txn: Transaction, url: str) -> IpnDelivery:
        delivery = txn.ipn
        try:
            for number in range(1, self.ipn_attempts + 1):
                outcome, rsp_code = await self._call_ipn(url)
                delivery.attempts.append(IpnAttempt(number, self.clock(), outcome, rsp_code))
                if rsp_code in _IPN_DONE:
                    delivery.status = "confirmed"
                    return delivery
                if number < self.ipn_attempts:
                    await asyncio.sleep(self.ipn_delays[min(number, len(self.ipn_delays)) - 1])
            delivery.status = "gave_up"
        except asyncio.CancelledError:
            delivery.status = "cancelled"
            raise
        return delivery

    async def _call_ipn(self, url: str) -> tuple[str, str | None]:
        try:
            response = await self.http.get(url, timeout=self.ipn_timeout)
        except httpx.HTTPError as exc:
            return f"no answer: {type(exc).__name__}", None
        try:
            body: object = response.json()
        except ValueError:
            return f"non-JSON answer (HTTP {response.status_code})", None
        if not isinstance(body, dict) or not isinstance(body.get("RspCode"), str):
            return f"answer without RspCode (HTTP {response.status_code})", None
        rsp_code: str = body["RspCode"]
        return f"RspCode {rsp_code} {_text(body.get('Message'))}".strip(), rsp_code

    @property
    def http(self) -> httpx.AsyncClient:
        """The client that calls merchants' IPN URLs, created on first use."""
        if self._http is None:
            self._http = httpx.AsyncClient()
        return self._http

    async def aclose(self) -> None:
        """Stop pending IPN deliveries and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- merchant_webapi ---------------------------------------------------------------

    def transaction_api(self, payload: object) -> dict[str, str]:
        """Answer a querydr or refund request body with a signed response (§3).

        Checks, in order: readable body (03), TmnCode (02), checksum (97), field
        formats (03), vnp_RequestId already used (94), transaction unknown (91), then
        for refunds: payment not successful or amount above what remains (95).
        """
        if not isinstance(payload, dict):
            return self._api_answer(
                "querydr", {}, "03", "Invalid request format: not a JSON object"
            )
        body = {str(k): _text(v) for k, v in payload.items()}
        command: ApiCommand
        match body.get("vnp_Command", ""):
            case "querydr":
                command = "querydr"
            case "refund":
                command = "refund"
            case _:
                return self._api_answer(
                    "querydr", body, "03", "Invalid request format: vnp_Command"
                )
        if body.get("vnp_TmnCode") != self.tmn_code:
            return self._api_answer(command, body, "02", "Merchant is not valid")
        expected = sign(self._secret, pipe_join(REQUEST_FIELDS[command], body))
        given = body.get("vnp_SecureHash", "").lower().encode("utf-8")
        if not secrets.compare_digest(expected.encode("ascii"), given):
            return self._api_answer(command, body, "97", "Invalid Checksum")
        problem = _api_format_problem(command, body)
        if problem:
            return self._api_answer(command, body, "03", f"Invalid request format: {problem}")
        if body["vnp_RequestId"] in self._request_ids:
            return self._api_answer(command, body, "94", "Duplicate request")
        self._request_ids.add(body["vnp_RequestId"])
        txn = self.transactions.get(body["vnp_TxnRef"])
        given_no = body.get("vnp_TransactionNo", "")
        if (
            txn is None
            or txn.create_date != body["vnp_TransactionDate"]
            or (given_no not in ("", "0") and given_no != txn.transaction_no)
        ):
            return self._api_answer(command, body, "91", "Transaction not found")
        if command == "querydr":
            # A refunded payment reads as its refund: type 02 (full) or 03 (partial),
            # status 05 (refund processing) and, the simulator's convention, the total
            # refunded as vnp_Amount (see domain/refunds.py).
            refunded = txn.refunded_vnd > 0
            kind = "02" if txn.refunded_vnd == txn.amount_vnd else "03"
            return self._api_answer(
                command,
                body,
                "00",
                "QueryDR Success",
                vnp_Amount=str((txn.refunded_vnd if refunded else txn.amount_vnd) * 100),
                vnp_OrderInfo=txn.order_info,
                vnp_BankCode=txn.bank_code,
                vnp_PayDate=txn.pay_date,
                vnp_TransactionNo=txn.transaction_no,
                vnp_TransactionType=kind if refunded else "01",
                vnp_TransactionStatus="05" if refunded else txn.transaction_status,
            )
        return self._refund(txn, body)

    def _refund(self, txn: Transaction, body: Mapping[str, str]) -> dict[str, str]:
        amount_vnd = wire_amount_to_vnd(body["vnp_Amount"])
        kind = body["vnp_TransactionType"]
        # Refusals of a well-formed request are 95 (refund refused), including an amount
        # above what remains; 03 is kept for requests that are malformed.
        if txn.transaction_status != "00":
            return self._api_answer("refund", body, "95", "Transaction was not paid: no refund")
        remaining = txn.amount_vnd - txn.refunded_vnd
        if amount_vnd > remaining:
            return self._api_answer(
                "refund", body, "95", f"Refund amount exceeds the {remaining} VND refundable"
            )
        if kind == "02" and (txn.refunded_vnd or amount_vnd != txn.amount_vnd):
            return self._api_answer(
                "refund", body, "95", "A full refund (02) must be the whole, unrefunded amount"
            )
        txn.refunded_vnd += amount_vnd
        txn.refunds += 1
        return self._api_answer(
            "refund",
            body,
            "00",
            "Refund success",
            vnp_Amount=str(amount_vnd * 100),
            vnp_BankCode=txn.bank_code,
            vnp_PayDate=format_vnp_date(self.clock()),
            vnp_TransactionNo=self._new_transaction_no(),
            vnp_TransactionType=kind,
            vnp_TransactionStatus="05",  # refund being processed
        )

    def _api_answer(
        self,
        command: ApiCommand,
        request: Mapping[str, str],
        code: str,
        message: str,
        **fields: str,
    ) -> dict[str, str]:
        answer = {
            "vnp_ResponseId": uuid.uuid4().hex,
            "vnp_Command": request.get("vnp_Command", command),
            "vnp_ResponseCode": code,
            "vnp_Message": message,
            "vnp_TmnCode": request.get("vnp_TmnCode", ""),
            "vnp_TxnRef": request.get("vnp_TxnRef", ""),
            **fields,
        }
        answer = {k: v for k, v in answer.items() if v}
        # One merchant, one secret: even a wrong-TmnCode answer is signed with it so
        # the merchant's client can verify and read the code.
        answer["vnp_SecureHash"] = sign(self._secret, pipe_join(RESPONSE_FIELDS[command], answer))
        return answer


def _api_format_problem(command: str, body: Mapping[str, str]) -> str:
    """The first malformed field of a checksummed API request, or "" when all are fine."""
    request_id = body.get("vnp_RequestId", "")
    if not 1 <= len(request_id) <= 32 or not set(request_id) <= _REQUEST_ID_CHARS:
        return "vnp_RequestId"
    if body.get("vnp_Version") != VNP_VERSION:
        return "vnp_Version"
    for name in ("vnp_TxnRef", "vnp_OrderInfo", "vnp_IpAddr"):
        if not body.get(name):
            return name
    for name in ("vnp_TransactionDate", "vnp_CreateDate"):
        try:
            parse_vnp_date(body.get(name, ""))
        except ValueError:
            return name
    if command == "refund":
        if body.get("vnp_TransactionType") not in ("02", "03"):
            return "vnp_TransactionType"
        try:
            if wire_amount_to_vnd(body.get("vnp_Amount", "")) <= 0:
                return "vnp_Amount"
        except ValueError:
            return "vnp_Amount"
        transaction_no = body.get("vnp_TransactionNo", "")
        if not transaction_no.isascii() or not transaction_no.isdigit():
            return "vnp_TransactionNo"
        if not body.get("vnp_CreateBy"):
            return "vnp_CreateBy"
    return ""


class SandboxFaults(BaseModel):
    """Body of ``POST /sandbox/faults`` (a simulator convenience, not part of VNPay)."""

    slow_refunds: int = 1
    slow_refund_seconds: float = 5.0
    lost_refunds: int = 0


class SandboxPayRequest(BaseModel):
    """Body of ``POST /sandbox/pay`` (a simulator convenience, not part of VNPay)."""

    payment_url: str
    outcome: Outcome = "success"
    bank_code: str = ""
    wait_for_ipn: bool = True


def _error_page(error: PaymentRejected) -> HTMLResponse:
    html = _TEMPLATES.get_template("error.html").render(
        code=error.code, message=error.message, detail=error.detail
    )
    return HTMLResponse(html, status_code=400)


def _problem(error: PaymentRejected) -> JSONResponse:
    return JSONResponse(
        {
            "type": _PROBLEM_TYPE,
            "title": error.message,
            "status": 400,
            "detail": error.detail or error.message,
            "code": error.code,
        },
        status_code=400,
        media_type="application/problem+json",
    )


def _group_thousands(amount_vnd: int) -> str:
    # Vietnamese writes 1.806.000 for one million eight hundred and six thousand.
    return f"{amount_vnd:,}".replace(",", ".")


def create_app(
    tmn_code: str,
    hash_secret: str,
    *,
    ipn_url: str | None = None,
    ipn_attempts: int = 5,
    ipn_delays: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
    ipn_timeout: float = 10.0,
    min_amount_vnd: int = 5_000,
    max_amount_vnd: int = 1_000_000_000,
    clock: Callable[[], datetime] = _utc_now,
) -> FastAPI:
    """Build the simulator for one merchant.

    ``ipn_url`` plays the IPN URL of the merchant's VNPay registration (none: no IPN
    is sent). The IPN is tried up to ``ipn_attempts`` times; before attempt n+1 the
    simulator waits ``ipn_delays[n-1]`` seconds (the last delay repeats). It retries
    when the merchant does not answer within ``ipn_timeout`` seconds, answers
    non-JSON, or answers a RspCode other than 00 or 02. Amounts outside
    [``min_amount_vnd``, ``max_amount_vnd``) are refused with code 03, like VNPay's
    5,000 VND minimum. ``clock`` returns aware UTC times.
    """
    gateway = SandboxGateway(
        tmn_code=tmn_code,
        hash_secret=hash_secret,
        ipn_url=ipn_url,
        ipn_attempts=ipn_attempts,
        ipn_delays=ipn_delays,
        ipn_timeout=ipn_timeout,
        min_amount_vnd=min_amount_vnd,
        max_amount_vnd=max_amount_vnd,
        clock=clock,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await gateway.aclose()

    app = FastAPI(title="VNPay sandbox simulator (WasteTrail)", lifespan=lifespan)
    app.state.gateway = gateway

    @app.get("/paymentv2/vpcpay.html", response_class=HTMLResponse, tags=[_VNPAY])
    async def payment_page(request: Request) -> Response:
        try:
            token, txn = gateway.open_payment(request.query_params)
        except PaymentRejected as error:
            return _error_page(error)
        html = _TEMPLATES.get_template("pay.html").render(
            tmn_code=gateway.tmn_code,
            txn=txn,
            token=token,
            amount=_group_thousands(txn.amount_vnd),
            expires=parse_vnp_date(txn.expire_date)
            .astimezone(VIETNAM_TZ)
            .strftime("%d/%m/%Y %H:%M:%S"),
            banks=_BANKS,
        )
        return HTMLResponse(html)

    @app.post("/paymentv2/vpcpay.html", tags=[_VNPAY])
    async def submit_payment(
        token: Annotated[str, Form()],
        action: Annotated[Literal["pay", "cancel"], Form()],
        bank_code: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            txn = gateway.transaction_for_token(token)
        except PaymentRejected as error:
            return _error_page(error)
        gateway.complete(txn, "success" if action == "pay" else "cancel", bank_code)
        gateway.start_ipn(txn)
        return RedirectResponse(gateway.return_url_for(txn), status_code=302)

    @app.post("/sandbox/pay", response_model=None, tags=[_CONVENIENCE])
    async def sandbox_pay(request: SandboxPayRequest) -> dict[str, object] | JSONResponse:
        """Simulator convenience, not part of VNPay: what the form does, without a browser.

        Returns the return URL the browser would be sent to and, unless
        ``wait_for_ipn`` is false, the IPN delivery after all its attempts.
        """
        query = dict(parse_qsl(urlsplit(request.payment_url).query, keep_blank_values=True))
        try:
            _, txn = gateway.open_payment(query)
        except PaymentRejected as error:
            return _problem(error)
        gateway.complete(txn, request.outcome, request.bank_code)
        task = gateway.start_ipn(txn)
        if task is not None and request.wait_for_ipn:
            # Shielded: a caller hanging up must not stop the merchant's IPN.
            await asyncio.shield(task)
        return {
            "return_url": gateway.return_url_for(txn),
            "vnp_ResponseCode": txn.response_code,
            "vnp_TransactionStatus": txn.transaction_status,
            "vnp_TransactionNo": txn.transaction_no,
            "ipn": txn.ipn.as_json(),
        }

    @app.get("/sandbox/transactions/{txn_ref}", response_model=None, tags=[_CONVENIENCE])
    async def sandbox_transaction(txn_ref: str) -> dict[str, object] | JSONResponse:
        """Simulator convenience, not part of VNPay: one payment and its IPN deliveries."""
        txn = gateway.transactions.get(txn_ref)
        if txn is None:
            return JSONResponse(
                {
                    "type": "urn:wastetrail:vnpay-sandbox:unknown-transaction",
                    "title": "Unknown transaction",
                    "status": 404,
                    "detail": f"no payment with vnp_TxnRef {txn_ref!r}",
                },
                status_code=404,
                media_type="application/problem+json",
            )
        return txn.as_json()

    @app.post("/sandbox/faults", tags=[_CONVENIENCE])
    async def sandbox_faults(faults: SandboxFaults) -> dict[str, object]:
        """Simulator convenience, not part of VNPay: the next ``slow_refunds`` refunds are
        applied at once and answered only after ``slow_refund_seconds`` — "refund done,
        then the response timed out" as the merchant sees it; the next ``lost_refunds``
        hang as long and are never applied — "the request was lost on the way"."""
        gateway.slow_refunds = faults.slow_refunds
        gateway.slow_refund_seconds = faults.slow_refund_seconds
        gateway.lost_refunds = faults.lost_refunds
        return faults.model_dump()

    @app.post("/merchant_webapi/api/transaction", tags=[_VNPAY])
    async def merchant_webapi(request: Request) -> JSONResponse:
        try:
            payload: object = await request.json()
        except ValueError:
            payload = None
        if (isinstance(payload, dict) and payload.get("vnp_Command") == "refund"
                and gateway.lost_refunds > 0):
            gateway.lost_refunds -= 1
            await asyncio.sleep(gateway.slow_refund_seconds)
            return JSONResponse({"error": "lost"}, status_code=504)
        answer = gateway.transaction_api(payload)
        if answer.get("vnp_Command") == "refund" and gateway.slow_refunds > 0:
            gateway.slow_refunds -= 1
            await asyncio.sleep(gateway.slow_refund_seconds)  # applied; the answer is late
        return JSONResponse(answer)

    return app
