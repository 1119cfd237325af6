"""Bearer tokens and the role guard, with RFC 9457 problems for every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import Depends, FastAPI
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import Principal, decode_token, issue_token, require
from wastetrail_runtime.problems import Problem, install_problem_handlers

SECRET = "unit-test-secret-of-sufficient-length-0123"


def _app() -> FastAPI:
    app = FastAPI()
    app.state.jwt_secret = SECRET
    install_problem_handlers(app)

    @app.get("/scan")
    async def scan(p: Principal = Depends(require(Role.COLLECTOR))) -> dict[str, str | None]:
        return {"actor": p.actor().id, "role": p.role.value}

    @app.get("/accounts/{account_id}")
    async def account(account_id: str,
                      p: Principal = Depends(require(Role.HOUSEHOLD, Role.AUDITOR))
                      ) -> dict[str, str]:
        p.require_account(account_id)
        return {"account": account_id}

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t")


def _h(role: Role, **kw: str) -> dict[str, str]:
    return {"authorization": "Bearer " + issue_token(SECRET, "someone", role, **kw)}  # type: ignore[arg-type]


@pytest.mark.parametrize("role", list(Role))
async def test_only_permitted_roles_pass(client: httpx.AsyncClient, role: Role) -> None:
    response = await client.get("/scan", headers=_h(role, device_id="dev-1"))
    if role in (Role.COLLECTOR, Role.ADMIN):
        assert response.status_code == 200
        assert response.json()["actor"] == "dev-1"
    else:
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/forbidden")


async def test_households_see_only_their_own_account(client: httpx.AsyncClient) -> None:
    own = await client.get("/accounts/acc-1", headers=_h(Role.HOUSEHOLD, account_id="acc-1"))
    other = await client.get("/accounts/acc-2", headers=_h(Role.HOUSEHOLD, account_id="acc-1"))
    auditor = await client.get("/accounts/acc-2", headers=_h(Role.AUDITOR))
    assert own.status_code == 200
    assert other.status_code == 403
    assert other.json()["field"] == "account_id"
    assert auditor.status_code == 200


async def test_missing_forged_and_expired_tokens_are_401(client: httpx.AsyncClient) -> None:
    forged = issue_token("another-secret-of-sufficient-length-xyz", "x", Role.COLLECTOR)
    expired = issue_token(SECRET, "x", Role.COLLECTOR, ttl=timedelta(seconds=1),
                          now=datetime.now(UTC) - timedelta(hours=1))
    for headers in ({}, {"authorization": f"Bearer {forged}"},
                    {"authorization": f"Bearer {expired}"},
                    {"authorization": "Bearer not-a-jwt"}):
        response = await client.get("/scan", headers=headers)
        assert response.status_code == 401
        assert response.json()["status"] == 401


def test_token_round_trip_keeps_claims() -> None:
    token = issue_token(SECRET, "op-7", Role.PLANT_OPERATOR, site_id="plant-1")
    principal = decode_token(SECRET, token)
    assert principal == Principal("op-7", Role.PLANT_OPERATOR, site_id="plant-1")
    with pytest.raises(Problem):
        decode_token(SECRET + "x", token)
