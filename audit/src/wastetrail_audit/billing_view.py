"""Fetch the billing service's balances (``GET /v1/audit/balances``, see balances.py)."""

from __future__ import annotations

import httpx

from wastetrail_audit.balances import Balances, parse_billing_view


class BillingViewError(RuntimeError):
    """The billing service could not be asked or gave an unusable answer."""


def fetch_billing_view(billing_url: str, token: str, timeout: float = 60.0) -> Balances:
    """The billing service's view of every account and producer."""
    url = billing_url.rstrip("/") + "/v1/audit/balances"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BillingViewError(f"GET {url}: {exc}") from exc
    if response.status_code != 200:
        raise BillingViewError(f"GET {url}: HTTP {response.status_code} {response.text[:300]}")
    try:
        return parse_billing_view(response.json())
    except ValueError as exc:
        raise BillingViewError(f"GET {url}: {exc}") from exc
