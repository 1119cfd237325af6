"""Every input that answered 500 in issue 18 now gets a 4xx problem naming the field.

Offsets beyond 64 bits, NUL characters, year 0 periods, year 1 times, products of
quantities that overflow an event's bound, oversized and over-long bodies — each sent to the
real service on a fresh PostgreSQL database, as the issue's fuzzing run sent them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from service_apps import SECRET, service_app
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

pytestmark = pytest.mark.integration
HUGE = str(2**64)
YEAR_ONE = "0001-01-01T00:00:00+07:00"


def auth(role: Role = Role.ADMIN, **claims: str) -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(SECRET, 'bounds', role, **claims)}"}


@asynccontextmanager
async def client_of(service: str, make_database: Callable[[str], str], kafka: str,
                    prefix: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    url = await asyncio.to_thread(make_database, f"bounds{service}")
    app: FastAPI = service_app(service, url, kafka, prefix, **overrides)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def refused(response: httpx.Response, status: int, field: str) -> str | None:
    """None when the answer is the expected problem; otherwise what is wrong with it."""
    media = response.headers.get("content-type", "").split(";")[0]
    body = response.json() if media.endswith("json") else {}
    if (response.status_code, media, body.get("field")) != (
            status, "application/problem+json", field):
        return f"{response.status_code} {media} {response.text[:300]}"
    return None


async def check(client: httpx.AsyncClient, cases: list[tuple[Any, ...]]) -> None:
    wrong = {}
    for method, path, kwargs, status, field in cases:
        kwargs.setdefault("headers", auth())
        problem = refused(await client.request(method, path, **kwargs), status, field)
        if problem:
            wrong[f"{method} {path}"] = problem
    assert not wrong, wrong


def offsets(*paths: str) -> list[tuple[Any, ...]]:
    return [("GET", path, {"params": {"offset": HUGE}}, 422, "offset") for path in paths]


async def test_collection(make_database: Callable[[str], str], kafka_bootstrap: str,
                          topic_prefix: str) -> None:
    collector = auth(Role.COLLECTOR, device_id="DEV-1")
    scan = {"idempotency_key": "k-1", "trip_id": "T-1", "category": "food", "grams": 1000,
            "collected_at": YEAR_ONE}
    async with client_of("collection", make_database, kafka_bootstrap, topic_prefix) as client:
        await check(client, [
            *offsets("/v1/collectors", "/v1/devices", "/v1/generators", "/v1/trips",
                     "/v1/trips/T-1", "/v1/vehicles"),
            ("GET", "/v1/trips", {"params": {"limit": 1001}}, 422, "limit"),
            ("POST", "/v1/collection-points", {"json": {
                "point_id": "P-1", "name": "a\x00b", "commune": "X-1", "latitude": 10.0,
                "longitude": 106.0}}, 422, "name"),
            ("POST", "/v1/collectors", {"json": {"collector_id": "C-1", "name": "bell\x07"}},
             422, "name"),
            ("POST", "/v1/trips", {"headers": collector, "json": {
                "vehicle_id": "V-1", "crew": ["Lan"], "commune": "X-1",
                "started_at": YEAR_ONE}}, 422, "started_at"),
            ("POST", "/v1/loads", {"headers": collector, "json": scan}, 422, "collected_at"),
            ("POST", "/v1/refusals", {"headers": collector, "json": {
                "idempotency_key": "r-1", "reason": "unsorted", "refused_at": YEAR_ONE}},
             422, "refused_at"),
            ("POST", "/v1/loads/batch", {"headers": collector, "json": {
                "scans": [scan] * 1001}}, 422, "scans"),
            ("GET", "/v1/generators/G-1/loads", {"headers": auth(Role.AUDITOR), "params": {
                "from": "0001-01-01", "to": "0001-01-02"}}, 422, "from"),
            ("GET", "/v1/trips/T%001", {}, 422, "path"),
            ("GET", "/v1/trips", {"params": {"vehicle_id": "V\x001"}}, 422, "vehicle_id"),
        ])
        # A CSV import reports a NUL in a row as that row's error and keeps the others.
        csv = ("code,kind,name,commune,commune_class,customer_class,address,members,tag_ids,"
               "active\nHN-1,household,Hộ A,X-1,urban,,,1,QR-1,true\n"
               "HN-2,household,Hộ\x00B,X-1,urban,,,1,QR-2,true\n")
        imported = await client.post("/v1/generators/import", content=csv.encode(),
                                     headers={**auth(), "content-type": "text/csv"})
        assert imported.status_code == 200, imported.text
        assert (imported.json()["created"], [e["line"] for e in imported.json()["errors"]]
                ) == (1, [3]), imported.text


async def test_a_body_over_the_limit_is_refused_before_parsing_and_authentication(
    make_database: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    async with client_of("collection", make_database, kafka_bootstrap, topic_prefix,
                         max_body_bytes=4096) as client:
        big = b'{"scans": [' + b"1," * 3000 + b"1]}"
        declared = await client.post("/v1/loads/batch", content=big,
                                     headers={"content-type": "application/json"})
        assert refused(declared, 413, "body") is None, declared.text

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start:start + 1000]

        chunked = await client.post("/v1/loads/batch", content=chunks(),
                                    headers={"content-type": "application/json"})
        assert refused(chunked, 413, "body") is None, chunked.text
        # Under the limit, the same request is parsed and authenticated as ever.
        small = await client.post("/v1/loads/batch", json={"scans": [{}]})
        assert small.status_code == 401


async def test_transfer(make_database: Callable[[str], str], kafka_bootstrap: str,
                        topic_prefix: str) -> None:
    async with client_of("transfer", make_database, kafka_bootstrap, topic_prefix) as client:
        await check(client, [
            *offsets("/v1/stations", "/v1/stations/S-1/batches", "/v1/alerts"),
            ("POST", "/v1/stations", {"json": {
                "station_id": "S-1", "name": "\x00", "commune": "X-1", "capacity_grams": 1,
                "categories": ["food"]}}, 422, "name"),
        ])


async def test_treatment(make_database: Callable[[str], str], kafka_bootstrap: str,
                         topic_prefix: str) -> None:
    async with client_of("treatment", make_database, kafka_bootstrap, topic_prefix) as client:
        await check(client, [
            *offsets("/v1/plants", "/v1/plants/P-1/receipts"),
            ("GET", "/v1/plants/P-1/days/0001-01-01", {}, 422, "day"),
        ])


async def test_billing(make_database: Callable[[str], str], kafka_bootstrap: str,
                       topic_prefix: str) -> None:
    producer = auth(Role.PRODUCER, account_id="PRD-1")
    async with client_of("billing", make_database, kafka_bootstrap, topic_prefix) as client:
        for path, body in (
            ("/v1/epr/producers", {"producer_id": "PRD-1", "name": "Nước Sạch",
                                   "tax_code": "0101", "kind": "producer"}),
            ("/v1/epr/producers/PRD-1/packaging", {
                "sku": "BIG-1", "material": "pet", "unit_grams": 60_000_000,
                "deposit_per_unit": 10**9, "effective_from": "2026-01-01"}),
        ):
            answer = await client.post(path, json=body, headers=auth())
            assert answer.status_code == 201, answer.text
        await check(client, [
            *offsets("/v1/accounts", "/v1/invoices", "/v1/tariffs", "/v1/epr/claims",
                     "/v1/epr/packaging", "/v1/epr/producers"),
            ("GET", "/v1/costs", {"params": {"period": "2026-01", "offset": HUGE}}, 422,
             "offset"),
            ("POST", "/v1/invoicing/runs", {"json": {"period": "0000-01"}}, 422, "period"),
            ("GET", "/v1/reports/full-cost", {"params": {"period": "0000-01"}}, 422, "period"),
            ("POST", "/v1/epr/producers/PRD-1/market-reports", {"headers": producer, "json": {
                "report_id": "R-0", "sku": "BIG-1", "period": "0000-01", "province": "CT",
                "units": 1}}, 422, "period"),
            # 10⁹ đồng × 10⁷ units is beyond the largest amount an event may carry.
            ("POST", "/v1/epr/producers/PRD-1/market-reports", {"headers": producer, "json": {
                "report_id": "R-1", "sku": "BIG-1", "period": "2026-02", "province": "CT",
                "units": 10**7}}, 422, "units"),
            # Two 60 t units: 120 t, beyond the 100 t one load (and its event) may carry.
            ("POST", "/v1/epr/returns", {"headers": auth(Role.COLLECTOR, device_id="D-1"),
                                         "json": {
                "idempotency_key": "ret-1", "load_id": "L-1", "generator_id": "G-1",
                "province": "CT", "lines": [{"sku": "BIG-1", "units": 2}]}}, 422,
             "lines.0.units"),
            ("POST", "/v1/epr/producers", {"json": {
                "producer_id": "PRD-2", "name": "nul\x00", "tax_code": "0102",
                "kind": "producer"}}, 422, "name"),
        ])
