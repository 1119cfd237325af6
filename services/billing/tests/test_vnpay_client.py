"""Unit tests of the VNPay 2.1.0 merchant client: signing, callbacks, IPN answers, API calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from wastetrail_billing.adapters.vnpay import (
    QUERYDR_RESPONSE_FIELDS,
    REFUND_RESPONSE_FIELDS,
    IpnOrder,
    RefundKind,
    VNPayClient,
    VNPayConfig,
    VNPayProtocolError,
    VNPayResponseSignatureError,
    canonical_query,
    decide_ipn,
    format_vnp_date,
    parse_vnp_date,
    pipe_join,
    sign,
)

# vnpay.md §1: the documentation's own example and its dummy secret.
DOC_SECRET = "TESTSECRETKEYFORVNPAY0123456789A"
DOC_PARAMS = {
    "vnp_Amount": "1806000",
    "vnp_Command": "pay",
    "vnp_CreateDate": "20210801153333",
    "vnp_CurrCode": "VND",
    "vnp_IpAddr": "127.0.0.1",
    "vnp_Locale": "vn",
    "vnp_OrderInfo": "Thanh toan don hang :5",
    "vnp_OrderType": "other",
    "vnp_ReturnUrl": "https://domainmerchant.vn/ReturnUrl",
    "vnp_TmnCode": "DEMOV210",
    "vnp_TxnRef": "5",
    "vnp_Version": "2.1.0",
}
DOC_SIGNED = (
    "vnp_Amount=1806000&vnp_Command=pay&vnp_CreateDate=20210801153333&vnp_CurrCode=VND"
    "&vnp_IpAddr=127.0.0.1&vnp_Locale=vn&vnp_OrderInfo=Thanh+toan+don+hang+%3A5"
    "&vnp_OrderType=other&vnp_ReturnUrl=https%3A%2F%2Fdomainmerchant.vn%2FReturnUrl"
    "&vnp_TmnCode=DEMOV210&vnp_TxnRef=5&vnp_Version=2.1.0"
)
DOC_DIGEST = (
    "c802554c7fc07fb754b8d2b7bef85cbaa422fa96bb8fd9a194d03dfb3ab9a5f9"
    "33ba8ca5a6e4f71f786bc30c9109be1fe2de4edfece51e5d1d42555af27a4227"
)
# 2021-08-01 15:33:33 in Hanoi.
DOC_NOW = datetime(2021, 8, 1, 8, 33, 33, tzinfo=UTC)
API_URL = "https://vnpay.test/merchant_webapi/api/transaction"


def doc_config() -> VNPayConfig:
    return VNPayConfig(
        tmn_code="DEMOV210",
        hash_secret=DOC_SECRET,
        payment_url="https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
        api_url=API_URL,
        return_url="https://domainmerchant.vn/ReturnUrl",
    )


def query_of(url: str) -> str:
    return urlsplit(url).query


# -- §1 signing --------------------------------------------------------------------------


def test_known_answer_signed_string_and_digest_byte_for_byte() -> None:
    assert canonical_query(DOC_PARAMS) == DOC_SIGNED
    assert sign(DOC_SECRET, DOC_SIGNED) == DOC_DIGEST


def test_payment_url_is_the_signed_string_plus_its_digest() -> None:
    url = VNPayClient(doc_config()).build_payment_url(
        txn_ref="5",
        amount_vnd=18_060,
        order_info="Thanh toan don hang :5",
        ip_addr="127.0.0.1",
        now=DOC_NOW,
        order_type="other",
    )
    # Same as the documentation's example plus vnp_ExpireDate = create + 15 min, GMT+7.
    expected_data = DOC_SIGNED.replace("&vnp_IpAddr=", "&vnp_ExpireDate=20210801154833&vnp_IpAddr=")
    assert url == (
        "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html?"
        f"{expected_data}&vnp_SecureHash={sign(DOC_SECRET, expected_data)}"
    )
    assert "vnp_SecureHashType" not in url
    assert "vnp_BankCode" not in url


def test_payment_url_carries_bank_code_when_given() -> None:
    url = VNPayClient(doc_config()).build_payment_url(
        txn_ref="INV-2025-07.0001",
        amount_vnd=45_000,
        order_info="Phi rac thang 7",
        ip_addr="203.0.113.9",
        now=DOC_NOW,
        bank_code="NCB",
        locale="en",
    )
    params = dict(parse_qsl(query_of(url)))
    assert params["vnp_BankCode"] == "NCB"
    assert params["vnp_Amount"] == "4500000"
    assert params["vnp_Locale"] == "en"
    assert params["vnp_TxnRef"] == "INV-2025-07.0001"


def test_quote_plus_encoding_of_space_colon_slash_and_utf8() -> None:
    assert canonical_query({"vnp_X": "a b:c/d"}) == "vnp_X=a+b%3Ac%2Fd"
    assert canonical_query({"vnp_X": "đ"}) == "vnp_X=%C4%91"
    # keys sorted, not encoded
    assert canonical_query({"vnp_b": "1", "vnp_A": "2", "vnp_a": "3"}) == (
        "vnp_A=2&vnp_a=3&vnp_b=1"
    )


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("vnp_TxnRef", {"txn_ref": "INV#1"}),
        ("vnp_TxnRef", {"txn_ref": "a&b"}),
        ("vnp_TxnRef", {"txn_ref": ""}),
        ("vnp_OrderInfo", {"order_info": "Thanh toán"}),
        ("vnp_OrderInfo", {"order_info": "Bill (July)"}),
        ("vnp_OrderInfo", {"order_info": "a/b"}),
    ],
)
def test_unsafe_txn_ref_and_order_info_are_rejected_naming_the_field(
    field: str, kwargs: dict[str, str]
) -> None:
    arguments: dict[str, object] = {
        "txn_ref": "INV1",
        "amount_vnd": 20_000,
        "order_info": "Phi rac",
        "ip_addr": "127.0.0.1",
        "now": DOC_NOW,
        **kwargs,
    }
    with pytest.raises(ValueError, match=field):
        VNPayClient(doc_config()).build_payment_url(**arguments)  # type: ignore[arg-type]


def test_amount_and_naive_time_are_rejected() -> None:
    client = VNPayClient(doc_config())
    for amount in (0, -1, True):
        with pytest.raises(ValueError, match="amount_vnd"):
            client.build_payment_url(
                txn_ref="A1", amount_vnd=amount, order_info="x", ip_addr="127.0.0.1", now=DOC_NOW
            )
    with pytest.raises(ValueError, match="aware"):
        client.build_payment_url(
            txn_ref="A1",
            amount_vnd=1000,
            order_info="x",
            ip_addr="127.0.0.1",
            now=datetime(2021, 8, 1, 8, 33, 33),  # naive: the point of the test
        )


def test_vnp_dates_are_gmt7_and_round_trip() -> None:
    assert format_vnp_date(datetime(2024, 12, 31, 17, 0, 0, tzinfo=UTC)) == "20250101000000"
    assert parse_vnp_date("20250101000000") == datetime(2024, 12, 31, 17, 0, 0, tzinfo=UTC)


def test_config_hides_the_secret_and_checks_tmn_code() -> None:
    assert DOC_SECRET not in repr(doc_config())
    with pytest.raises(ValueError, match="tmn_code"):
        VNPayConfig("SHORT", "s", "https://a", "https://b", "https://c")


# -- §2 callbacks ------------------------------------------------------------------------


def callback_params() -> dict[str, str]:
    return {
        "vnp_Amount": "1806000",
        "vnp_BankCode": "NCB",
        "vnp_BankTranNo": "VNP14226112",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": "Thanh toan don hang :5",
        "vnp_PayDate": "20210801153800",
        "vnp_ResponseCode": "00",
        "vnp_TmnCode": "DEMOV210",
        "vnp_TransactionNo": "14226112",
        "vnp_TransactionStatus": "00",
        "vnp_TxnRef": "5",
    }


def signed_callback(secret: str = DOC_SECRET, **extra: str) -> dict[str, str]:
    params = callback_params() | extra
    params["vnp_SecureHash"] = sign(secret, canonical_query(params))
    return params


def test_callback_with_the_documented_digest_verifies() -> None:
    # Independent of our own signing: the documentation's digest, as a callback.
    params = DOC_PARAMS | {"vnp_SecureHash": DOC_DIGEST}
    assert VNPayClient(doc_config()).verify_callback(params)


def test_good_callback_verifies_case_insensitively_ignoring_hash_type_and_foreign_keys() -> None:
    client = VNPayClient(doc_config())
    params = signed_callback()
    assert client.verify_callback(params)
    upper = params | {"vnp_SecureHash": params["vnp_SecureHash"].upper()}
    assert client.verify_callback(upper)
    assert client.verify_callback(params | {"vnp_SecureHashType": "HmacSHA512"})
    assert client.verify_callback(params | {"utm_source": "mail"})


def test_tampered_amount_wrong_secret_and_missing_hash_are_rejected() -> None:
    client = VNPayClient(doc_config())
    assert not client.verify_callback(signed_callback() | {"vnp_Amount": "180600000"})
    assert not client.verify_callback(signed_callback(secret="WRONGSECRETWRONGSECRETWRONGSECRE"))
    unsigned = signed_callback()
    del unsigned["vnp_SecureHash"]
    assert not client.verify_callback(unsigned)
    assert not client.verify_callback(signed_callback() | {"vnp_SecureHash": ""})
    assert not client.verify_callback(signed_callback() | {"vnp_SecureHash": "đ" * 128})


def test_empty_valued_vnp_keys_are_part_of_the_signature() -> None:
    params = callback_params() | {"vnp_BankTranNo": ""}
    data = canonical_query(params)
    assert "&vnp_BankTranNo=&" in data
    params["vnp_SecureHash"] = sign(DOC_SECRET, data)
    client = VNPayClient(doc_config())
    assert client.verify_callback(params)
    without = {k: v for k, v in params.items() if k != "vnp_BankTranNo"}
    assert not client.verify_callback(without)


# -- §2 IPN decision ---------------------------------------------------------------------

PENDING_18060 = IpnOrder(amount_vnd=18_060, pending=True)


def test_ipn_97_invalid_signature_comes_first() -> None:
    decision = decide_ipn(callback_params(), signature_valid=False, order=None)
    assert decision.body() == {"RspCode": "97", "Message": "Invalid signature"}
    assert not decision.record
    assert not decision.paid


def test_ipn_01_order_not_found() -> None:
    decision = decide_ipn(callback_params(), signature_valid=True, order=None)
    assert decision.body() == {"RspCode": "01", "Message": "Order not found"}
    assert not decision.record


def test_ipn_04_invalid_amount_before_already_confirmed() -> None:
    order = IpnOrder(amount_vnd=18_061, pending=False)
    decision = decide_ipn(callback_params(), signature_valid=True, order=order)
    assert decision.body() == {"RspCode": "04", "Message": "invalid amount"}
    # hundredths that are not whole đồng are still just a different amount
    odd = callback_params() | {"vnp_Amount": "1806050"}
    assert decide_ipn(odd, signature_valid=True, order=PENDING_18060).rsp_code == "04"


def test_ipn_02_order_already_confirmed() -> None:
    order = IpnOrder(amount_vnd=18_060, pending=False)
    decision = decide_ipn(callback_params(), signature_valid=True, order=order)
    assert decision.body() == {"RspCode": "02", "Message": "Order already confirmed"}
    assert not decision.record


def test_ipn_00_paid() -> None:
    decision = decide_ipn(callback_params(), signature_valid=True, order=PENDING_18060)
    assert decision.body() == {"RspCode": "00", "Message": "Confirm Success"}
    assert decision.record
    assert decision.paid


@pytest.mark.parametrize(
    ("response_code", "status"), [("24", "02"), ("51", "02"), ("00", "01"), ("07", "00")]
)
def test_ipn_00_failed_payment_is_recorded_but_not_paid(response_code: str, status: str) -> None:
    params = callback_params() | {
        "vnp_ResponseCode": response_code,
        "vnp_TransactionStatus": status,
    }
    decision = decide_ipn(params, signature_valid=True, order=PENDING_18060)
    assert decision.body() == {"RspCode": "00", "Message": "Confirm Success"}
    assert decision.record
    assert not decision.paid


@pytest.mark.parametrize("amount", ["abc", "", "-1806000", None])
def test_ipn_99_unknown_error_on_anything_unexpected(amount: str | None) -> None:
    params = callback_params()
    if amount is None:
        del params["vnp_Amount"]
    else:
        params["vnp_Amount"] = amount
    decision = decide_ipn(params, signature_valid=True, order=PENDING_18060)
    assert decision.body() == {"RspCode": "99", "Message": "Unknow error"}
    assert not decision.record
    assert not decision.paid


# -- §3 querydr and refund ---------------------------------------------------------------


class FakeVNPayApi:
    """Records the request and answers with a response signed as the test decides."""

    def __init__(self, answer: dict[str, str], secret: str = DOC_SECRET) -> None:
        self.answer = answer
        self.secret = secret
        self.requests: list[dict[str, str]] = []
        self.sign_with: tuple[str, ...] = QUERYDR_RESPONSE_FIELDS
        self.tamper: dict[str, str] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url == API_URL
        assert request.method == "POST"
        self.requests.append(json.loads(request.content))
        body = dict(self.answer)
        body["vnp_SecureHash"] = sign(self.secret, pipe_join(self.sign_with, body))
        body.update(self.tamper)  # after signing: a forged field
        return httpx.Response(200, json=body)


def api_client(fake: FakeVNPayApi) -> VNPayClient:
    return VNPayClient(doc_config(), http=httpx.AsyncClient(transport=httpx.MockTransport(fake)))


QUERYDR_ANSWER = {
    "vnp_ResponseId": "4f7d1a2b3c",
    "vnp_Command": "querydr",
    "vnp_ResponseCode": "00",
    "vnp_Message": "QueryDR Success",
    "vnp_TmnCode": "DEMOV210",
    "vnp_TxnRef": "5",
    "vnp_Amount": "1806000",
    "vnp_BankCode": "NCB",
    "vnp_PayDate": "20210801153800",
    "vnp_TransactionNo": "14226112",
    "vnp_TransactionType": "01",
    "vnp_TransactionStatus": "00",
    "vnp_OrderInfo": "Thanh toan don hang :5",
}


async def test_querydr_request_checksum_string_exactly() -> None:
    fake = FakeVNPayApi(QUERYDR_ANSWER)
    async with api_client(fake) as client:
        answer = await client.querydr(
            txn_ref="5",
            order_info="Truy van GD 5",
            transaction_date=DOC_NOW,
            ip_addr="10.0.0.7",
            now=DOC_NOW + timedelta(minutes=30),
            request_id="REQ0001",
        )
    (sent,) = fake.requests
    expected_data = (
        "REQ0001|2.1.0|querydr|DEMOV210|5|20210801153333|20210801160333|10.0.0.7|Truy van GD 5"
    )
    assert sent["vnp_SecureHash"] == sign(DOC_SECRET, expected_data)
    assert sent["vnp_TransactionDate"] == "20210801153333"
    assert "vnp_TransactionNo" not in sent
    assert answer.ok
    assert answer.transaction_status == "00"
    assert answer.amount_vnd == 18_060
    assert answer.transaction_no == "14226112"
    assert answer.paid_at == datetime(2021, 8, 1, 8, 38, 0, tzinfo=UTC)


async def test_refund_request_checksum_string_exactly() -> None:
    answer_fields = {
        "vnp_ResponseId": "99aa",
        "vnp_Command": "refund",
        "vnp_ResponseCode": "00",
        "vnp_Message": "Refund success",
        "vnp_TmnCode": "DEMOV210",
        "vnp_TxnRef": "5",
        "vnp_Amount": "500000",
        "vnp_TransactionType": "03",
        "vnp_TransactionStatus": "05",
    }
    fake = FakeVNPayApi(answer_fields)
    fake.sign_with = REFUND_RESPONSE_FIELDS
    async with api_client(fake) as client:
        answer = await client.refund(
            txn_ref="5",
            amount_vnd=5_000,
            kind=RefundKind.PARTIAL,
            order_info="Hoan tien GD 5",
            transaction_date=DOC_NOW,
            create_by="billing@wastetrail",
            ip_addr="10.0.0.7",
            now=DOC_NOW + timedelta(days=1),
            transaction_no="14226112",
            request_id="REQ0002",
        )
    (sent,) = fake.requests
    expected_data = (
        "REQ0002|2.1.0|refund|DEMOV210|03|5|500000|14226112|20210801153333"
        "|billing@wastetrail|20210802153333|10.0.0.7|Hoan tien GD 5"
    )
    assert sent["vnp_SecureHash"] == sign(DOC_SECRET, expected_data)
    assert sent["vnp_Amount"] == "500000"
    assert answer.ok
    assert answer.amount_vnd == 5_000
    assert answer.transaction_status == "05"


def test_response_checksum_strings_use_empty_strings_for_missing_fields() -> None:
    body = {"vnp_ResponseId": "R1", "vnp_Command": "refund", "vnp_ResponseCode": "91"}
    assert pipe_join(REFUND_RESPONSE_FIELDS, body) == "R1|refund|91||||||||||"
    assert pipe_join(QUERYDR_RESPONSE_FIELDS, body) == "R1|refund|91||||||||||||"


async def test_request_id_is_generated_when_not_injected() -> None:
    fake = FakeVNPayApi(QUERYDR_ANSWER)
    async with api_client(fake) as client:
        await client.querydr(
            txn_ref="5", order_info="q", transaction_date=DOC_NOW, ip_addr="10.0.0.7", now=DOC_NOW
        )
        await client.querydr(
            txn_ref="5", order_info="q", transaction_date=DOC_NOW, ip_addr="10.0.0.7", now=DOC_NOW
        )
    first, second = (r["vnp_RequestId"] for r in fake.requests)
    assert first != second
    assert len(first) == 32
    assert first.isalnum()


@pytest.mark.parametrize(
    "tamper",
    [
        {"vnp_TransactionStatus": "01"},
        {"vnp_Amount": "180600000"},
        {"vnp_SecureHash": "0" * 128},
        {"vnp_PromotionAmount": "100"},  # an added signed field
    ],
)
async def test_forged_response_signature_is_rejected(tamper: dict[str, str]) -> None:
    fake = FakeVNPayApi(QUERYDR_ANSWER)
    fake.tamper = tamper
    async with api_client(fake) as client:
        with pytest.raises(VNPayResponseSignatureError):
            await client.querydr(
                txn_ref="5",
                order_info="q",
                transaction_date=DOC_NOW,
                ip_addr="10.0.0.7",
                now=DOC_NOW,
            )


async def test_response_signed_with_another_secret_or_unsigned_is_rejected() -> None:
    fake = FakeVNPayApi(QUERYDR_ANSWER, secret="SOMEONEELSESSECRETSOMEONEELSESSE")
    async with api_client(fake) as client:
        with pytest.raises(VNPayResponseSignatureError):
            await client.querydr(
                txn_ref="5", order_info="q", transaction_date=DOC_NOW, ip_addr="::1", now=DOC_NOW
            )

    def unsigned(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=QUERYDR_ANSWER)

    http = httpx.AsyncClient(transport=httpx.MockTransport(unsigned))
    async with VNPayClient(doc_config(), http=http) as client:
        with pytest.raises(VNPayResponseSignatureError):
            await client.querydr(
                txn_ref="5", order_info="q", transaction_date=DOC_NOW, ip_addr="::1", now=DOC_NOW
            )


async def test_non_json_answer_is_a_protocol_error() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    http = httpx.AsyncClient(transport=httpx.MockTransport(html))
    async with VNPayClient(doc_config(), http=http) as client:
        with pytest.raises(VNPayProtocolError):
            await client.querydr(
                txn_ref="5", order_info="q", transaction_date=DOC_NOW, ip_addr="::1", now=DOC_NOW
            )


async def test_refund_rejects_bad_input_before_sending() -> None:
    fake = FakeVNPayApi(QUERYDR_ANSWER)
    async with api_client(fake) as client:
        with pytest.raises(ValueError, match="vnp_CreateBy"):
            await client.refund(
                txn_ref="5",
                amount_vnd=5_000,
                kind=RefundKind.FULL,
                order_info="r",
                transaction_date=DOC_NOW,
                create_by="a|b",
                ip_addr="10.0.0.7",
                now=DOC_NOW,
            )
        with pytest.raises(ValueError, match="vnp_RequestId"):
            await client.refund(
                txn_ref="5",
                amount_vnd=5_000,
                kind=RefundKind.FULL,
                order_info="r",
                transaction_date=DOC_NOW,
                create_by="ops",
                ip_addr="10.0.0.7",
                now=DOC_NOW,
                request_id="not-alnum",
            )
    assert fake.requests == []
