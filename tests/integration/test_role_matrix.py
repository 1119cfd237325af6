"""The role matrix: every endpoint of every service × every role.

Each route declares its roles with ``require(...)``; this test reads that declaration
from the route itself and calls the endpoint with a token of every role. A role the
route does not admit must get 403 from the guard; an admitted role must get past the
guard (any answer but 401 or the guard's 403 — a 404 or 422 for dummy ids is fine).
Without a token every guarded route answers 401. The apps run for real, on fresh
PostgreSQL databases, so an admitted call goes all the way into the handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from service_apps import SECRET, SERVICES, api_routes, service_app
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

pytestmark = pytest.mark.integration
GUARD_DETAIL = re.compile(r"role '.*' may not call this endpoint")
# Public by design: probes and metrics; VNPay's server-to-server IPN (authenticated by its
# HMAC signature) and the browser's return URL; the household pages, which sign in with
# the account's token into a cookie and check it themselves.
PUBLIC = {"/healthz", "/readyz", "/metrics"}
PUBLIC_BILLING = PUBLIC | {
    "/v1/payments/vnpay/ipn", "/v1/payments/vnpay/return", "/account", "/account/sign-in",
    "/account/sign-out", "/account/invoices/{invoice_id}/pay",
}


def _allowed_roles(route: APIRoute) -> set[Role] | None:
    """The roles of the route's ``require`` guard, or None for an unguarded route."""
    found: set[Role] | None = None
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            found = set(roles) if found is None else found & set(roles)
        stack.extend(dep.dependencies)
    return found


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", path)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_endpoint_admits_exactly_its_roles(
    service: str, make_database: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    import asyncio

    database_url = await asyncio.to_thread(make_database, f"roles{service}")
    app = service_app(service, database_url, kafka_bootstrap, topic_prefix)
    routes = api_routes(list(app.routes))
    guarded = [(p, r, roles) for p, r in routes if (roles := _allowed_roles(r)) is not None]
    assert len(guarded) >= 5, f"{service}: expected guarded routes"
    unguarded = {p for p, r in routes if _allowed_roles(r) is None}
    assert unguarded == (PUBLIC_BILLING if service == "billing" else PUBLIC), unguarded
    checked = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for full_path, route, allowed in guarded:
                for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                    path = _path(full_path)
                    anonymous = await client.request(method, path, json={})
                    assert anonymous.status_code == 401, (service, method, path)
                    for role in Role:
                        token = issue_token(SECRET, "matrix", role, account_id="x-1",
                                            device_id="x-1", site_id="x-1")
                        response = await client.request(
                            method, path, json={}, headers={"authorization": f"Bearer {token}"})
                        body: Any = _json(response)
                        guard_refused = (response.status_code == 403
                                         and GUARD_DETAIL.search(str(body.get("detail", ""))))
                        if role in allowed or role is Role.ADMIN:
                            assert not guard_refused, (service, method, path, role)
                            assert response.status_code != 401, (service, method, path, role)
                        else:
                            assert guard_refused, (service, method, path, role,
                                                   response.status_code, body)
                        checked += 1
    assert checked >= len(guarded) * len(Role)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
