"""Billing settings (environment prefix ``WASTETRAIL_``).

VNPay credentials are configuration, never code: ``WASTETRAIL_VNPAY_TMN_CODE``,
``WASTETRAIL_VNPAY_HASH_SECRET``, ``WASTETRAIL_VNPAY_PAYMENT_URL``,
``WASTETRAIL_VNPAY_API_URL``; the return URL is derived from ``WASTETRAIL_PUBLIC_URL``
(the address households' browsers reach this service at).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from wastetrail_runtime.settings import ServiceSettings

from wastetrail_billing.adapters.vnpay import VNPayConfig

NAME = "billing"
RETURN_PATH = "/v1/payments/vnpay/return"
IPN_PATH = "/v1/payments/vnpay/ipn"


class BillingSettings(ServiceSettings):
    """The runtime's settings plus VNPay and the public URL."""

    service: str = NAME
    vnpay_tmn_code: str = ""
    vnpay_hash_secret: SecretStr = SecretStr("")
    vnpay_payment_url: str = "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html"
    vnpay_api_url: str = "https://sandbox.vnpayment.vn/merchant_webapi/api/transaction"
    # This server's address as VNPay's querydr/refund vnp_IpAddr.
    vnpay_server_ip: str = "127.0.0.1"
    vnpay_expire_minutes: int = Field(default=15, ge=1, le=24 * 60)
    vnpay_api_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    public_url: str = "http://127.0.0.1:8004"

    def vnpay_config(self) -> VNPayConfig | None:
        """The VNPay merchant configuration, or None when credentials are not set."""
        secret = self.vnpay_hash_secret.get_secret_value()
        if not self.vnpay_tmn_code or not secret:
            return None
        base = self.public_url.rstrip("/")
        return VNPayConfig(
            tmn_code=self.vnpay_tmn_code,
            hash_secret=secret,
            payment_url=self.vnpay_payment_url,
            api_url=self.vnpay_api_url,
            return_url=base + RETURN_PATH,
            ipn_url=base + IPN_PATH,
            api_timeout_seconds=self.vnpay_api_timeout_seconds,
        )
