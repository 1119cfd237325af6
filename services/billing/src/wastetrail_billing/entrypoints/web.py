"""The household web page: sign in with the account's token, see invoices, credits and
refunds, pay through VNPay, and come back to a page showing the payment's real state.

Server-rendered (Jinja2), Vietnamese by default, English with ``?lang=en``. The token is
kept in an httpOnly ``wt_token`` cookie (SameSite=Lax, so other sites cannot make the
browser POST with it); the runtime's auth reads that cookie like a bearer token.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select
from wastetrail_contracts import formats
from wastetrail_contracts.enums import Role
from wastetrail_contracts.pricing.periods import VIETNAM
from wastetrail_runtime.auth import Principal, decode_token, principal_from_request
from wastetrail_runtime.problems import Problem
from wastetrail_runtime.service import runtime_of

from wastetrail_billing.adapters.tables import Account, Invoice, Payment
from wastetrail_billing.adapters.vnpay import VNPayClient
from wastetrail_billing.entrypoints.http import settings_of, start_payment
from wastetrail_billing.handlers import views
from wastetrail_billing.handlers.payments import (
    invoice_status,
    open_vnpay_payments,
    outstanding,
)

router = APIRouter(include_in_schema=False)
COOKIE = "wt_token"
Lang = Literal["vi", "en"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined,
)

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Hóa đơn rác thải sinh hoạt", "sign_in": "Đăng nhập",
        "token": "Mã truy cập của tài khoản", "sign_out": "Đăng xuất",
        "bad_token": "Mã truy cập không hợp lệ hoặc đã hết hạn.",
        "account": "Tài khoản", "invoices": "Hóa đơn", "period": "Kỳ",
        "subtotal": "Tiền dịch vụ", "vat": "Thuế GTGT", "credits": "Khấu trừ (hoàn tiền EPR)",
        "total": "Phải trả", "paid": "Đã trả", "status": "Trạng thái", "pay": "Thanh toán",
        "no_invoices": "Chưa có hóa đơn.", "credit_available": "Số dư hoàn tiền chờ khấu trừ",
        "balance_due": "Còn nợ", "credit_moves": "Hoàn tiền và khấu trừ",
        "refunds": "Tiền đã hoàn lại", "no_credits": "Chưa có hoàn tiền.",
        "open": "Chưa thanh toán", "partially_paid": "Đã trả một phần",
        "paid_status": "Đã thanh toán",
        "settled": "Không phải trả", "result": "Kết quả thanh toán",
        "succeeded": "Thanh toán thành công", "failed": "Thanh toán không thành công",
        "pending": "Đang chờ xác nhận từ VNPay…", "unknown": "Không tìm thấy giao dịch",
        "bad_signature": "Chữ ký không hợp lệ: kết quả này không đến từ VNPay.",
        "invoice": "Hóa đơn", "amount": "Số tiền", "back": "Về trang tài khoản",
        "lines": "Chi tiết", "refused": "Lần bị từ chối thu gom", "weight": "Khối lượng tính phí",
        "lang_switch": "English", "reference": "Tham chiếu",
        "paying_until": "Đang thanh toán trên VNPay, đến",
        "supplement": "bổ sung, lần",
    },
    "en": {
        "title": "Household waste bills", "sign_in": "Sign in",
        "token": "Account access token", "sign_out": "Sign out",
        "bad_token": "The access token is not valid or has expired.",
        "account": "Account", "invoices": "Invoices", "period": "Period",
        "subtotal": "Service fees", "vat": "VAT", "credits": "Credits (EPR refunds)",
        "total": "To pay", "paid": "Paid", "status": "Status", "pay": "Pay",
        "no_invoices": "No invoices yet.", "credit_available": "Credit waiting for next bill",
        "balance_due": "Balance due", "credit_moves": "Refunds and credits",
        "refunds": "Payment refunds", "no_credits": "No refunds yet.",
        "open": "Unpaid", "partially_paid": "Partly paid", "paid_status": "Paid",
        "settled": "Nothing to pay", "result": "Payment result",
        "succeeded": "Payment succeeded", "failed": "Payment failed",
        "pending": "Waiting for VNPay's confirmation…", "unknown": "Transaction not found",
        "bad_signature": "Invalid signature: this result did not come from VNPay.",
        "invoice": "Invoice", "amount": "Amount", "back": "Back to my account",
        "lines": "Details", "refused": "Refused pickups", "weight": "Charged weight",
        "lang_switch": "Tiếng Việt", "reference": "Reference",
        "paying_until": "Payment open on VNPay until",
        "supplement": "late loads, supplement",
    },
}


def _lang(value: str | None) -> Lang:
    return "en" if value == "en" else "vi"


def _kg(grams: int) -> str:
    return formats.kilograms(grams, 3)  # 1,806 kg: the decimal comma, as everywhere


def _render(request: Request, name: str, lang: Lang, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    other: Lang = "vi" if lang == "en" else "en"
    # The language toggle keeps the rest of the query (the return page needs vnp_*).
    query = dict(request.query_params) | {"lang": other}
    path = request.url.path if request.method == "GET" else "/account"
    html = _TEMPLATES.get_template(name).render(
        t=TEXT[lang], lang=lang, switch_url=f"{path}?{urlencode(query)}",
        money=formats.money, kg=_kg, period=lambda p: formats.period(p, lang), **context)
    return HTMLResponse(html, status_code=status_code,
                        headers={"Cache-Control": "no-store"})


def _household(request: Request) -> Principal | None:
    """The signed-in household, or None (no cookie, bad or expired token, other role)."""
    try:
        principal = principal_from_request(request)
    except Problem:
        return None
    if principal.role is not Role.HOUSEHOLD or not principal.account_id:
        return None
    return principal


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, lang: str | None = None) -> Response:
    """The household's page: invoices, credits and refunds (or the sign-in form)."""
    language = _lang(lang)
    principal = _household(request)
    if principal is None or principal.account_id is None:
        return _render(request, "signin.html", language, error=None)
    rt = runtime_of(request)
    expire_after = timedelta(minutes=settings_of(rt).vnpay_expire_minutes)
    now = rt.clock.now()
    async with rt.db.session() as session:
        account = await session.get(Account, principal.account_id)
        if account is None:
            return _render(request, "signin.html", language, status_code=404,
                           error=TEXT[language]["unknown"])
        summary = await views.account_view(session, account)
        invoices = await views.invoices_of(session, account.account_id)
        credits = await views.credits_of(session, account.account_id)
        refunds = await views.refunds_of(session, account.account_id)
        # An invoice whose VNPay order is still open shows until when, not a second button.
        open_orders = await open_vnpay_payments(
            session, [i.invoice_id for i in invoices if outstanding(i) > 0], now=now,
            expire_after=expire_after)
    rows = []
    for i in invoices:
        order = open_orders.get(i.invoice_id)
        until = None if order is None else (
            (order.created_at + expire_after).astimezone(VIETNAM).strftime("%H:%M"))
        rows.append({"invoice": i, "status": invoice_status(i), "due": outstanding(i),
                     "paying_until": until})
    return _render(request, "account.html", language, account=account, summary=summary,
                   invoices=rows, credits=credits, refunds=refunds)


@router.post("/account/sign-in")
async def sign_in(request: Request, token: Annotated[str, Form(max_length=4096)],
                  lang: Annotated[str, Form()] = "vi") -> Response:
    """Check the token and keep it in an httpOnly cookie."""
    language = _lang(lang)
    try:
        principal = decode_token(request.app.state.jwt_secret, token.strip())
    except Problem:
        principal = None
    if principal is None or principal.role is not Role.HOUSEHOLD or not principal.account_id:
        return _render(request, "signin.html", language, status_code=401,
                       error=TEXT[language]["bad_token"])
    response = RedirectResponse(f"/account?{urlencode({'lang': language})}", status_code=303)
    secure = settings_of(runtime_of(request)).public_url.startswith("https://")
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="lax", secure=secure,
                        path="/", max_age=30 * 24 * 3600)
    return response


@router.post("/account/sign-out")
async def sign_out(lang: Annotated[str, Form()] = "vi") -> Response:
    """Forget the token."""
    response = RedirectResponse(f"/account?{urlencode({'lang': _lang(lang)})}",
                                status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/account/invoices/{invoice_id}/pay")
async def pay_from_page(invoice_id: str, request: Request,
                        lang: Annotated[str, Form()] = "vi") -> Response:
    """Start a VNPay payment and send the browser to VNPay's page."""
    language = _lang(lang)
    principal = _household(request)
    if principal is None:
        return RedirectResponse(f"/account?{urlencode({'lang': language})}", status_code=303)
    try:
        _, url = await start_payment(request, invoice_id, principal,
                                     "en" if language == "en" else "vn")
    except Problem as problem:
        if problem.status != 409:
            raise
        # Already paid, or a VNPay order still open (e.g. in another tab): the account
        # page shows the real state, and until when that order can be paid.
        return RedirectResponse(f"/account?{urlencode({'lang': language})}", status_code=303)
    return RedirectResponse(url, status_code=303)


@router.get("/v1/payments/vnpay/return", response_class=HTMLResponse)
async def vnpay_return(request: Request) -> Response:
    """Where VNPay sends the payer back: shows the payment's state as recorded by the IPN.

    The query only identifies the payment; nothing here changes it (vnpay.md §2).
    """
    params = dict(request.query_params)
    language = _lang(params.get("lang") or ("en" if params.get("vnp_Locale") == "en"
                                            else None))
    config = settings_of(runtime_of(request)).vnpay_config()
    valid = False
    if config is not None:
        async with VNPayClient(config) as client:
            valid = client.verify_callback(params)
    payment = invoice = None
    if valid:
        async with runtime_of(request).db.session() as session:
            payment = (await session.exec(
                select(Payment).where(Payment.txn_ref == params.get("vnp_TxnRef", ""))
            )).first()
            if payment is not None:
                invoice = await session.get(Invoice, payment.invoice_id)
    state = ("bad_signature" if not valid else "unknown" if payment is None
             else payment.status)
    return _render(request, "result.html", language, state=state, payment=payment, invoice=invoice,
                   invoice_status=invoice_status(invoice) if invoice else None,
                   refresh=state == "pending")
