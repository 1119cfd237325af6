"""VNPay 2.1.0, merchant side: payment URLs, callback checks, IPN answers, querydr, refund.

The protocol is the one in ``/work/shared/vnpay.md``; section numbers below refer to it.
Everything except :meth:`VNPayClient.querydr` and :meth:`VNPayClient.refund` is pure:
no clock (``now`` is passed in), no randomness unless no id is passed in, no I/O.
Money is integer đồng everywhere in this module's API; the ×100 happens only at the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Final, Literal, Self
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

__all__ = [
    "IPN_UNKNOWN_ERROR",
    "QUERYDR_REQUEST_FIELDS",
    "QUERYDR_RESPONSE_FIELDS",
    "REFUND_REQUEST_FIELDS",
    "REFUND_RESPONSE_FIELDS",
    "REQUEST_FIELDS",
    "RESPONSE_FIELDS",
    "VIETNAM_TZ",
    "VNP_VERSION",
    "ApiCommand",
    "IpnDecision",
    "IpnOrder",
    "RefundKind",
    "VNPayApiResponse",
    "VNPayClient",
    "VNPayConfig",
    "VNPayError",
    "VNPayProtocolError",
    "VNPayResponseSignatureError",
    "VNPayTransportError",
    "canonical_query",
    "check_safe_text",
    "decide_ipn",
    "format_vnp_date",
    "parse_vnp_date",
    "payment_succeeded",
    "pipe_join",
    "sign",
    "signed_query",
    "verify_signed_query",
    "wire_amount_to_vnd",
]

VNP_VERSION: Final = "2.1.0"
_VNP_DATE_FORMAT: Final = "%Y%m%d%H%M%S"
_HASH_KEYS: Final = frozenset({"vnp_SecureHash", "vnp_SecureHashType"})

# vnpay.md §1: the official samples disagree on how to encode ~ * ! ( ) ', so free text
# is kept to characters every sample encodes the same way.
_SAFE_TEXT: Final = re.compile(r"[A-Za-z0-9 _.:-]+")
# Refund author: pipe-joined checksums (§3) make "|" ambiguous, so it is excluded too.
_SAFE_AUTHOR: Final = re.compile(r"[A-Za-z0-9 _.:@-]+")
_TMN_CODE: Final = re.compile(r"[A-Za-z0-9]{8}")
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9]{1,32}")
_BANK_CODE: Final = re.compile(r"[A-Za-z0-9]{1,20}")
_ORDER_TYPE: Final = re.compile(r"[A-Za-z0-9_]{1,100}")
_WIRE_AMOUNT: Final = re.compile(r"[0-9]{1,20}")
_VNP_DATE: Final = re.compile(r"[0-9]{14}")


def _vietnam_tz() -> tzinfo:
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:
        # Vietnam has kept UTC+7 without DST since 1975, so a fixed offset is exact for
        # every date VNPay can see; this spares slim images the tzdata package.
        return timezone(timedelta(hours=7), "ICT")


VIETNAM_TZ: Final = _vietnam_tz()


# ---------------------------------------------------------------------------------------
# Errors


class VNPayError(Exception):
    """Base class of everything this adapter raises about VNPay itself."""


class VNPayTransportError(VNPayError):
    """VNPay could not be reached, or answered with a non-2xx HTTP status."""


class VNPayProtocolError(VNPayError):
    """VNPay answered something that is not a readable API response."""


class VNPayResponseSignatureError(VNPayError):
    """An API response's vnp_SecureHash is missing or does not verify: do not trust it."""


# ---------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class VNPayConfig:
    """Merchant credentials and endpoints; they come from settings, never from code.

    ``ipn_url`` is informational: VNPay keeps the IPN URL in the merchant's
    registration, the payment URL does not carry it.
    """

    tmn_code: str
    hash_secret: str = field(repr=False)
    payment_url: str
    api_url: str
    return_url: str
    ipn_url: str | None = None
    # How long querydr and refund calls wait for VNPay's answer (a refund that timed out
    # may still have been applied: the caller reconciles with querydr).
    api_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if _TMN_CODE.fullmatch(self.tmn_code) is None:
            raise ValueError("tmn_code must be the 8 alphanumerics VNPay assigned")
        if not self.hash_secret:
            raise ValueError("hash_secret must not be empty")
        for name in ("payment_url", "api_url", "return_url"):
            if not getattr(self, name).startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http(s) URL")


# ---------------------------------------------------------------------------------------
# §1 signing and encoding


def sign(secret: str, data: str) -> str:
    """HMAC-SHA512 of ``data`` keyed with ``secret``, lower-case hex (vnpay.md §1 step 3)."""
    return hmac.new(secret.encode("utf-8"), data.encode("utf-8"), hashlib.sha512).hexdigest()


def canonical_query(params: Mapping[str, str]) -> str:
    """The signed string of §1: keys sorted and unencoded, values ``quote_plus``-encoded.

    The same string is used verbatim as the query string, so what is signed and what
    is sent can never differ.
    """
    return "&".join(f"{key}={quote_plus(params[key])}" for key in sorted(params))


def signed_query(secret: str, params: Mapping[str, str]) -> str:
    """``canonical_query(params)`` followed by ``&vnp_SecureHash=<digest>``."""
    data = canonical_query(params)
    return f"{data}&vnp_SecureHash={sign(secret, data)}"


def _callback_data(params: Mapping[str, str]) -> str:
    # Only vnp_* keys are VNPay's; a merchant's own extra query keys are not signed.
    # Empty-valued keys stay (k=), as in the official PHP and Python samples (§2).
    kept = {k: v for k, v in params.items() if k.startswith("vnp_") and k not in _HASH_KEYS}
    return canonical_query(kept)


def _same_digest(expected: str, given: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str and the input is untrusted.
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8"))


def verify_signed_query(secret: str, params: Mapping[str, str]) -> bool:
    """Whether decoded query ``params`` carry a valid ``vnp_SecureHash`` (vnpay.md §2).

    ``vnp_SecureHash`` and ``vnp_SecureHashType`` are dropped, every other ``vnp_*``
    key is kept (empty values too), values are re-encoded with ``quote_plus``, and the
    digests are compared in constant time, ignoring case.
    """
    given = params.get("vnp_SecureHash")
    if not given:
        return False
    return _same_digest(sign(secret, _callback_data(params)), given)


def check_safe_text(field_name: str, value: str, *, max_length: int = 255) -> None:
    """Raise ``ValueError`` naming ``field_name`` unless ``value`` is in ``[A-Za-z0-9 _.:-]``."""
    if not value:
        raise ValueError(f"{field_name} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{field_name} must be at most {max_length} characters")
    if _SAFE_TEXT.fullmatch(value) is None:
        bad = "".join(sorted({c for c in value if _SAFE_TEXT.fullmatch(c) is None}))
        raise ValueError(
            f"{field_name} may only contain A-Z a-z 0-9 space _ . : - (found {bad!r}); "
            "VNPay's samples encode other characters inconsistently"
        )


def format_vnp_date(moment: datetime) -> str:
    """``yyyyMMddHHmmss`` in GMT+7 for an aware datetime (VNPay dates are never UTC)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("VNPay dates need an aware datetime (UTC inside the system)")
    return moment.astimezone(VIETNAM_TZ).strftime(_VNP_DATE_FORMAT)


def parse_vnp_date(text: str) -> datetime:
    """Inverse of :func:`format_vnp_date`: a GMT+7 ``yyyyMMddHHmmss`` as an aware UTC time."""
    if _VNP_DATE.fullmatch(text) is None:
        raise ValueError(f"not a VNPay date (yyyyMMddHHmmss): {text!r}")
    local = datetime.strptime(text, _VNP_DATE_FORMAT).replace(tzinfo=VIETNAM_TZ)
    return local.astimezone(UTC)


def wire_amount_to_vnd(text: str) -> int:
    """A ``vnp_Amount`` (đồng × 100, decimal digits) as integer đồng."""
    if _WIRE_AMOUNT.fullmatch(text) is None:
        raise ValueError(f"vnp_Amount is not a non-negative integer: {text!r}")
    hundredths = int(text)
    if hundredths % 100:
        raise ValueError(f"vnp_Amount is not a whole number of đồng: {text!r}")
    return hundredths // 100


def _check_amount(amount_vnd: int) -> None:
    # bool is an int subclass; True đồng is a bug, not a payment.
    if isinstance(amount_vnd, bool) or not isinstance(amount_vnd, int) or amount_vnd <= 0:
        raise ValueError("amount_vnd must be a positive integer number of đồng")


def _check_ip(ip_addr: str) -> None:
    try:
        ipaddress.ip_address(ip_addr)
    except ValueError:
        raise ValueError(f"ip_addr is not an IP address: {ip_addr!r}") from None


# ---------------------------------------------------------------------------------------
# §2 return URL and IPN


def payment_succeeded(params: Mapping[str, str]) -> bool:
    """A payment succeeded only when both vnp_ResponseCode and vnp_TransactionStatus are 00."""
    return params.get("vnp_ResponseCode") == "00" and params.get("vnp_TransactionStatus") == "00"


@dataclass(frozen=True, slots=True)
class IpnOrder:
    """What the merchant knows about the order an IPN names (looked up by vnp_TxnRef)."""

    amount_vnd: int
    pending: bool


@dataclass(frozen=True, slots=True)
class IpnDecision:
    """The IPN answer, and what the caller must record.

    ``record`` is true only for RspCode 00: the outcome is new and must be stored in
    the same transaction that answers. ``paid`` says whether that outcome is a
    successful payment (false for every other RspCode).
    """

    rsp_code: str
    message: str
    record: bool = False
    paid: bool = False

    def body(self) -> dict[str, str]:
        """The JSON body VNPay expects: ``{"RspCode": .., "Message": ..}``."""
        return {"RspCode": self.rsp_code, "Message": self.message}


IPN_INVALID_SIGNATURE: Final = IpnDecision("97", "Invalid signature")
IPN_ORDER_NOT_FOUND: Final = IpnDecision("01", "Order not found")
IPN_INVALID_AMOUNT: Final = IpnDecision("04", "invalid amount")
IPN_ALREADY_CONFIRMED: Final = IpnDecision("02", "Order already confirmed")
# The spelling is VNPay's own; merchants and VNPay's tooling compare the text.
IPN_UNKNOWN_ERROR: Final = IpnDecision("99", "Unknow error")


def decide_ipn(
    params: Mapping[str, str], *, signature_valid: bool, order: IpnOrder | None
) -> IpnDecision:
    """Decide the IPN answer, checking in the order of vnpay.md §2.

    97 bad signature → 01 unknown order → 04 amount differs → 02 order no longer
    pending → 00 (record the outcome; ``paid`` when ResponseCode and TransactionStatus
    are both 00). Anything unexpected (a malformed vnp_Amount, a broken order) → 99.
    The caller verifies the signature and looks the order up; if the lookup itself
    fails it should answer :data:`IPN_UNKNOWN_ERROR`.
    """
    try:
        if not signature_valid:
            return IPN_INVALID_SIGNATURE
        if order is None:
            return IPN_ORDER_NOT_FOUND
        wire_amount = params["vnp_Amount"]
        if _WIRE_AMOUNT.fullmatch(wire_amount) is None:
            raise ValueError("vnp_Amount is not an integer")
        # Compared in hundredths, as §2 states it: 1806050 is simply not 18060 đồng × 100.
        if int(wire_amount) != order.amount_vnd * 100:
            return IPN_INVALID_AMOUNT
        if not order.pending:
            return IPN_ALREADY_CONFIRMED
        return IpnDecision("00", "Confirm Success", record=True, paid=payment_succeeded(params))
    except Exception:
        # VNPay retries an IPN answered 99, so failing closed here loses nothing.
        return IPN_UNKNOWN_ERROR


# ---------------------------------------------------------------------------------------
# §3 querydr and refund

QUERYDR_REQUEST_FIELDS: Final = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
REFUND_REQUEST_FIELDS: Final = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TransactionType",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_TransactionNo",
    "vnp_TransactionDate",
    "vnp_CreateBy",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
QUERYDR_RESPONSE_FIELDS: Final = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
)
REFUND_RESPONSE_FIELDS: Final = QUERYDR_RESPONSE_FIELDS[:-2]

ApiCommand = Literal["querydr", "refund"]
REQUEST_FIELDS: Final[Mapping[ApiCommand, tuple[str, ...]]] = {
    "querydr": QUERYDR_REQUEST_FIELDS,
    "refund": REFUND_REQUEST_FIELDS,
}
RESPONSE_FIELDS: Final[Mapping[ApiCommand, tuple[str, ...]]] = {
    "querydr": QUERYDR_RESPONSE_FIELDS,
    "refund": REFUND_RESPONSE_FIELDS,
}


def _wire_str(value: object) -> str:
    # JSON may carry numbers where VNPay documents strings; missing means "" (§3).
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def pipe_join(fields: Sequence[str], body: Mapping[str, object]) -> str:
    """The §3 checksum input: the raw values of ``fields`` joined by ``|``, missing as ""."""
    return "|".join(_wire_str(body.get(name)) for name in fields)


class RefundKind(StrEnum):
    """vnp_TransactionType of a refund request."""

    FULL = "02"
    PARTIAL = "03"


@dataclass(frozen=True, slots=True)
class VNPayApiResponse:
    """A querydr or refund response whose signature has been verified.

    Amounts are in đồng; ``raw`` keeps every field as received (as strings).
    Refund responses have no promotion fields.
    """

    response_id: str
    command: str
    response_code: str
    message: str
    tmn_code: str
    txn_ref: str
    amount_vnd: int | None
    bank_code: str
    pay_date: str
    transaction_no: str
    transaction_type: str
    transaction_status: str
    order_info: str
    promotion_code: str
    promotion_amount_vnd: int | None
    raw: Mapping[str, str]

    @property
    def ok(self) -> bool:
        """VNPay accepted the request (vnp_ResponseCode 00)."""
        return self.response_code == "00"

    @property
    def paid_at(self) -> datetime | None:
        """vnp_PayDate as aware UTC, when present."""
        return parse_vnp_date(self.pay_date) if self.pay_date else None

    @classmethod
    def from_raw(cls, raw: Mapping[str, str]) -> Self:
        """Build from verified string fields; a malformed amount is a protocol error."""

        def amount(name: str) -> int | None:
            text = raw.get(name, "")
            if not text:
                return None
            try:
                return wire_amount_to_vnd(text)
            except ValueError as exc:
                raise VNPayProtocolError(f"{name} in VNPay response: {exc}") from exc

        return cls(
            response_id=raw.get("vnp_ResponseId", ""),
            command=raw.get("vnp_Command", ""),
            response_code=raw.get("vnp_ResponseCode", ""),
            message=raw.get("vnp_Message", ""),
            tmn_code=raw.get("vnp_TmnCode", ""),
            txn_ref=raw.get("vnp_TxnRef", ""),
            amount_vnd=amount("vnp_Amount"),
            bank_code=raw.get("vnp_BankCode", ""),
            pay_date=raw.get("vnp_PayDate", ""),
            transaction_no=raw.get("vnp_TransactionNo", ""),
            transaction_type=raw.get("vnp_TransactionType", ""),
            transaction_status=raw.get("vnp_TransactionStatus", ""),
            order_info=raw.get("vnp_OrderInfo", ""),
            promotion_code=raw.get("vnp_PromotionCode", ""),
            promotion_amount_vnd=amount("vnp_PromotionAmount"),
            raw=dict(raw),
        )


def _new_request_id() -> str:
    return uuid.uuid4().hex[:32]


def _check_request_id(request_id: str) -> None:
    if _REQUEST_ID.fullmatch(request_id) is None:
        raise ValueError("vnp_RequestId must be 1-32 letters or digits")


# ---------------------------------------------------------------------------------------
# The client


class VNPayClient:
    """The merchant's side of VNPay for one set of credentials.

    ``http`` may be injected (tests, shared connection pools); otherwise the client
    owns one and :meth:`aclose` closes it.
    """

    def __init__(
        self,
        config: VNPayConfig,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float | None = None,
    ) -> None:
        self.config = config
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(
            timeout=timeout if timeout is not None else config.api_timeout_seconds)

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- §1 -------------------------------------------------------------------------

    def build_payment_url(
        self,
        *,
        txn_ref: str,
        amount_vnd: int,
        order_info: str,
        ip_addr: str,
        now: datetime,
        order_type: str = "billpayment",
        locale: Literal["vn", "en"] = "vn",
        bank_code: str = "",
        expire_after: timedelta = timedelta(minutes=15),
        return_url: str | None = None,
    ) -> str:
        """The signed VNPay payment URL to redirect the payer's browser to.

        ``amount_vnd`` is in đồng (sent ×100); ``now`` is an aware datetime and becomes
        vnp_CreateDate in GMT+7, vnp_ExpireDate is ``now + expire_after``. An empty
        ``bank_code`` lets the payer choose on VNPay's page. Raises ``ValueError`` naming
        the field for anything VNPay would reject or sign inconsistently.
        """
        check_safe_text("vnp_TxnRef", txn_ref, max_length=100)
        check_safe_text("vnp_OrderInfo", order_info, max_length=255)
        _check_amount(amount_vnd)
        _check_ip(ip_addr)
        if _ORDER_TYPE.fullmatch(order_type) is None:
            raise ValueError("vnp_OrderType must be letters, digits or _")
        if locale not in ("vn", "en"):
            raise ValueError("vnp_Locale must be 'vn' or 'en'")
        if bank_code and _BANK_CODE.fullmatch(bank_code) is None:
            raise ValueError("vnp_BankCode must be letters or digits")
        if expire_after <= timedelta(0):
            raise ValueError("expire_after must be positive")
        params = {
            "vnp_Version": VNP_VERSION,
            "vnp_Command": "pay",
            "vnp_TmnCode": self.config.tmn_code,
            "vnp_Amount": str(amount_vnd * 100),
            "vnp_CurrCode": "VND",
            "vnp_TxnRef": txn_ref,
            "vnp_OrderInfo": order_info,
            "vnp_OrderType": order_type,
            "vnp_Locale": locale,
            "vnp_ReturnUrl": return_url or self.config.return_url,
            "vnp_IpAddr": ip_addr,
            "vnp_CreateDate": format_vnp_date(now),
            "vnp_ExpireDate": format_vnp_date(now + expire_after),
        }
        if bank_code:
            params["vnp_BankCode"] = bank_code
        # Built by hand: an HTTP library would re-encode and break the signature (§1.4).
        return f"{self.config.payment_url}?{signed_query(self.config.hash_secret, params)}"

    # -- §2 -------------------------------------------------------------------------

    def verify_callback(self, params: Mapping[str, str]) -> bool:
        """Whether a return-URL or IPN query (decoded) was signed with our secret."""
        return verify_signed_query(self.config.hash_secret, params)

    # -- §3 -------------------------------------------------------------------------

    async def querydr(
        self,
        *,
        txn_ref: str,
        order_info: str,
        transaction_date: datetime,
        ip_addr: str,
        now: datetime,
        transaction_no: str = "",
        request_id: str | None = None,
    ) -> VNPayApiResponse:
        """Ask VNPay for a payment's state (``vnp_Command=querydr``).

        ``transaction_date`` is the payment's creation time (the ``now`` passed to
        :meth:`build_payment_url`); ``ip_addr`` is this server's address. The result's
        ``response_code`` says whether VNPay answered; ``transaction_status`` is the
        payment's state (00 paid). Raises :class:`VNPayResponseSignatureError` if the
        answer is not signed with our secret.
        """
        check_safe_text("vnp_TxnRef", txn_ref, max_length=100)
        check_safe_text("vnp_OrderInfo", order_info, max_length=255)
        _check_ip(ip_addr)
        body = {
            "vnp_RequestId": request_id if request_id is not None else _new_request_id(),
            "vnp_Version": VNP_VERSION,
            "vnp_Command": "querydr",
            "vnp_TmnCode": self.config.tmn_code,
            "vnp_TxnRef": txn_ref,
            "vnp_OrderInfo": order_info,
            "vnp_TransactionDate": format_vnp_date(transaction_date),
            "vnp_CreateDate": format_vnp_date(now),
            "vnp_IpAddr": ip_addr,
        }
        _check_request_id(body["vnp_RequestId"])
        if transaction_no:
            body["vnp_TransactionNo"] = transaction_no
        return await self._call("querydr", body)

    async def refund(
        self,
        *,
        txn_ref: str,
        amount_vnd: int,
        kind: RefundKind,
        order_info: str,
        transaction_date: datetime,
        create_by: str,
        ip_addr: str,
        now: datetime,
        transaction_no: str = "0",
        request_id: str | None = None,
    ) -> VNPayApiResponse:
        """Ask VNPay to refund ``amount_vnd`` đồng of a paid payment (``vnp_Command=refund``).

        ``kind`` is full (02) or partial (03); ``transaction_no`` is VNPay's
        vnp_TransactionNo of the payment, ``"0"`` when unknown; ``create_by`` names the
        person or job asking. Raises :class:`VNPayResponseSignatureError` on a bad
        answer signature; VNPay's refusal is a verified response with ``ok`` false.
        """
        check_safe_text("vnp_TxnRef", txn_ref, max_length=100)
        check_safe_text("vnp_OrderInfo", order_info, max_length=255)
        _check_amount(amount_vnd)
        _check_ip(ip_addr)
        if not create_by or len(create_by) > 255 or _SAFE_AUTHOR.fullmatch(create_by) is None:
            raise ValueError("vnp_CreateBy must be 1-255 of A-Z a-z 0-9 space _ . : @ -")
        if not transaction_no.isascii() or not transaction_no.isdigit():
            raise ValueError("vnp_TransactionNo must be digits ('0' when unknown)")
        body = {
            "vnp_RequestId": request_id if request_id is not None else _new_request_id(),
            "vnp_Version": VNP_VERSION,
            "vnp_Command": "refund",
            "vnp_TmnCode": self.config.tmn_code,
            "vnp_TransactionType": RefundKind(kind).value,
            "vnp_TxnRef": txn_ref,
            "vnp_Amount": str(amount_vnd * 100),
            "vnp_OrderInfo": order_info,
            "vnp_TransactionNo": transaction_no,
            "vnp_TransactionDate": format_vnp_date(transaction_date),
            "vnp_CreateBy": create_by,
            "vnp_CreateDate": format_vnp_date(now),
            "vnp_IpAddr": ip_addr,
        }
        _check_request_id(body["vnp_RequestId"])
        return await self._call("refund", body)

    async def _call(self, command: ApiCommand, body: dict[str, str]) -> VNPayApiResponse:
        secret = self.config.hash_secret
        body["vnp_SecureHash"] = sign(secret, pipe_join(REQUEST_FIELDS[command], body))
        try:
            response = await self._http.post(self.config.api_url, json=body)
        except httpx.HTTPError as exc:
            raise VNPayTransportError(f"VNPay {command} failed: {exc!r}") from exc
        if not response.is_success:
            raise VNPayTransportError(f"VNPay {command} answered HTTP {response.status_code}")
        try:
            payload: object = response.json()
        except ValueError as exc:
            raise VNPayProtocolError(f"VNPay {command} answered non-JSON") from exc
        if not isinstance(payload, dict):
            raise VNPayProtocolError(f"VNPay {command} answered JSON that is not an object")
        raw = {str(k): _wire_str(v) for k, v in payload.items()}
        given = raw.get("vnp_SecureHash", "")
        # The fields signed are those of the command we sent, not of whatever command the
        # response claims: vnp_Command is itself signed, so a swapped one fails here.
        expected = sign(secret, pipe_join(RESPONSE_FIELDS[command], raw))
        if not given or not _same_digest(expected, given):
            raise VNPayResponseSignatureError(
                f"VNPay {command} response signature does not verify; response discarded"
            )
        return VNPayApiResponse.from_raw(raw)
