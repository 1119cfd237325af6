"""Behind the proxy, a service's docs page loads its OpenAPI document through the proxy."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from wastetrail_runtime.forwarded import ForwardedPrefix


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(ForwardedPrefix)

    @app.get("/where")
    async def where() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def _docs(headers: dict[str, str]) -> str:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/docs", headers=headers)
        assert r.status_code == 200
        assert (await client.get("/where", headers=headers)).json() == {"ok": "yes"}
        return r.text


async def test_the_prefix_the_proxy_strips_comes_back_in_links() -> None:
    assert "'/api/billing/openapi.json'" in await _docs({"x-forwarded-prefix": "/api/billing"})


async def test_without_the_header_or_with_a_strange_one_nothing_changes() -> None:
    assert "'/openapi.json'" in await _docs({})
    for odd in ("//evil.example", "/api/billing/../x", "https://x/api/a", "/API/billing"):
        assert "'/openapi.json'" in await _docs({"x-forwarded-prefix": odd})
