"""A local VNPay 2.1.0 gateway simulator (payment page, IPN with retries, querydr, refund).

Run it with ``python -m wastetrail_billing.vnpay_sandbox --tmn-code ... --hash-secret ...``.
"""

from wastetrail_billing.vnpay_sandbox.app import create_app

__all__ = ["create_app"]
