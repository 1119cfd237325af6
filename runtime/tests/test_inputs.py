"""The shared input bounds and the request guard, on a small app of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from fastapi import Depends, FastAPI
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import Principal, issue_token, require
from wastetrail_runtime.guard import RequestGuard
from wastetrail_runtime.inputs import Day, Limit, Offset, RequestBody
from wastetrail_runtime.problems import install_problem_handlers

SECRET = "guard-test-secret-of-sufficient-length"


class Note(RequestBody):
    text: str
    at: datetime
    tags: list[str] = []


class Notes(RequestBody):
    items_judged_alone = frozenset({"raw"})
    raw: list[dict[str, object]]


def _app() -> FastAPI:
    app = FastAPI()
    app.state.jwt_secret = SECRET
    install_problem_handlers(app)
    app.add_middleware(RequestGuard,
                       limit_for=lambda path: 64 if path == "/small" else 10_000)

    @app.post("/notes")
    async def notes(body: Note, principal: Principal = Depends(require())) -> dict[str, str]:
        return {"text": body.text}

    @app.post("/small")
    async def small(body: Notes) -> dict[str, int]:
        return {"raw": len(body.raw)}

    @app.get("/page")
    async def page(limit: Limit = 10, offset: Offset = 0, day: Day | None = None
                   ) -> dict[str, int]:
        return {"limit": limit, "offset": offset}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def _problem(r: httpx.Response) -> tuple[int, str | None]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    return r.status_code, r.json().get("field")


async def test_pages_are_bounded(client: httpx.AsyncClient) -> None:
    assert (await client.get("/page?offset=1000000000&limit=1000")).status_code == 200
    assert _problem(await client.get(f"/page?offset={2**64}")) == (422, "offset")
    assert _problem(await client.get("/page?offset=-1")) == (422, "offset")
    assert _problem(await client.get("/page?limit=1001")) == (422, "limit")
    assert _problem(await client.get("/page?day=0001-01-01")) == (422, "day")


async def test_bodies_hold_storable_text_and_sane_times(client: httpx.AsyncClient) -> None:
    ok = {"text": "dòng 1\n\tdòng 2", "at": "2026-03-02T01:00:00Z"}
    admin = {"authorization": f"Bearer {issue_token(SECRET, 'a', Role.ADMIN)}"}
    for body, field in (({**ok, "text": "a\x00b"}, "text"), ({**ok, "text": "\x1b[31m"}, "text"),
                        ({**ok, "tags": ["x", "\x7f"]}, "tags"),
                        ({**ok, "at": "0001-01-01T00:00:00+07:00"}, "at"),
                        ({**ok, "at": "2100-01-01T00:00:00Z"}, "at"), ({**ok, "x": 1}, "x")):
        assert _problem(await client.post("/notes", json=body, headers=admin)) == (422, field)
    assert (await client.post("/notes", json=ok, headers=admin)).json() == {"text": ok["text"]}
    # Fields judged item by item are left to the handler.
    assert (await client.post("/small", json={"raw": [{"t": "\x00"}]})).json() == {"raw": 1}


async def test_the_guard_refuses_before_parsing_and_authentication(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"raw": [' + b"{}," * 40 + b"{}]}"
    assert _problem(await client.post("/small", content=big)) == (413, "body")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 16):
            yield big[start:start + 16]

    assert _problem(await client.post("/small", content=chunks())) == (413, "body")
    # Before authentication: no token, yet the size is what is refused.
    assert _problem(await client.post("/notes", content=b"x" * 20_000)) == (413, "body")
    assert _problem(await client.post("/notes", content=b"{}",
                                      headers={"content-length": "x"})) == (400, "content-length")
    assert _problem(await client.get("/page?offset=1&note=a%00b")) == (422, "note")
    assert _problem(await client.get("/page%07")) == (422, "path")
    assert (await client.post("/small", json={"raw": []})).json() == {"raw": 0}
