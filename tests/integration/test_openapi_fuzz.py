"""Schemathesis over every service's OpenAPI document, with tokens of several roles.

Every operation of the four services is called with generated requests — valid ones, and
boundary and invalid values from schemathesis' coverage phase (huge integers, NUL
characters, year 0000...) — as an admin and as the service's own non-admin roles. No answer
may be a server error, and every 4xx/5xx must be an RFC 9457 problem document. The run is
derandomized with a fixed seed and a small example budget, so it is reproducible and stays
within a couple of minutes for the four services.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from service_apps import SECRET, service_app
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

pytestmark = pytest.mark.integration

# Admin, and the roles each service serves (claims bind them to an account, device or site).
ROLES: dict[str, tuple[Role, ...]] = {
    "collection": (Role.ADMIN, Role.COLLECTOR, Role.AUDITOR),
    "transfer": (Role.ADMIN, Role.STATION_OPERATOR),
    "treatment": (Role.ADMIN, Role.PLANT_OPERATOR),
    "billing": (Role.ADMIN, Role.HOUSEHOLD, Role.PRODUCER, Role.CASHIER),
}
# Examples per operation and role in the fuzzing phase; WASTETRAIL_FUZZ_EXAMPLES=200 makes a
# deeper run by hand (the coverage phase runs in full either way, for the admin token).
# A configured VNPay merchant (nothing listens there): without one, paying answers 503.
SETTINGS: dict[str, dict[str, str]] = {"billing": {
    "vnpay_tmn_code": "WTFUZZ01", "vnpay_hash_secret": "FUZZTESTSECRETFORVNPAY0123456789",
    "vnpay_payment_url": "http://127.0.0.1:9/paymentv2/vpcpay.html",
    "vnpay_api_url": "http://127.0.0.1:9/merchant_webapi/api/transaction"}}
MAX_EXAMPLES = int(os.environ.get("WASTETRAIL_FUZZ_EXAMPLES", "15"))
# Values that found 500s before (issue 18), mixed into generated data so a short,
# derandomized run still tries them: integers beyond 64 bits, NUL and control characters,
# year 0 and year 1, periods of year 0, quantities at the edge of their products.
EDGES: dict[str, list[Any]] = {
    "integer": [2**63, 2**64 + 1, -(2**63) - 1, 10**30, 2**31, 2**53 + 1],
    "number": [1e308, -1e308, 2.0**63, 1e-320],
    "string": ["a\x00b", "\x00", "line\x1fbreak", "\x7f", "0000-01", "0001-01",
               "9999-12", "0000-01-01", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+07:00",
               "9999-12-31T23:59:59-12:00", "0001-01-01", "9999-12-31"],
}
SEED = 18


@schemathesis.serializer("application/toml")
def toml_text(ctx: Any, value: Any) -> bytes:
    """Tariff documents are TOML text (POST /v1/tariffs/{id})."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


@schemathesis.check
def problem_document(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx answer is an RFC 9457 problem document."""
    if response.status_code < 400:
        return None
    media = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media == "application/problem+json", (
        f"{response.status_code} answered as {media!r}, not application/problem+json")
    body = response.json()
    assert isinstance(body, dict) and body.get("status") == response.status_code \
        and "type" in body and "detail" in body, f"not a problem document: {body!r}"
    return None


@dataclass
class Tally:
    """What one run did."""

    operations: set[str] = field(default_factory=set)
    examples: int = 0
    server_errors: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)


def _config(token: str, *, coverage: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {token}"},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "mode": "all", "database": "none", "no-shrink": True, "dictionaries": {
                           kind: {"dictionary": kind, "probability": 0.25}
                           for kind in EDGES}},
        "dictionaries": {kind: {"values": values} for kind, values in EDGES.items()},
        "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False},
                   "coverage": {"enabled": coverage}},
        "checks": {"enabled": False, "not_a_server_error": {"enabled": True},
                   "problem_document": {"enabled": True}},
        "suppress-health-check": ["all"],
        "warnings": False,
    })


def _fuzz(app: Any, role: Role) -> Tally:
    token = issue_token(SECRET, "fuzz", role, account_id="ACC-1", device_id="DEV-1",
                        site_id="SITE-1")
    # The coverage phase's boundary values reach every handler only past the guards: the
    # admin token passes them all; the other roles are fuzzed for their own paths.
    config = _config(token, coverage=role is Role.ADMIN)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    tally = Tally()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.label:
            tally.operations.add(event.label)
            for case_id in event.recorder.cases:
                tally.examples += 1
                interaction = event.recorder.interactions.get(case_id)
                if interaction is not None and interaction.response is not None:
                    tally.statuses[interaction.response.status_code] += 1
                    if interaction.response.status_code >= 500:
                        tally.server_errors.add(event.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        tally.failures.setdefault(
                            f"{event.label} [{check.name}]",
                            f"{check.failure_info.failure.title}: "
                            f"{check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            # An exception escaping the app (the ASGI client re-raises what the 500 handler
            # logged) is reported here, not as a response.
            tally.server_errors.add(event.label)
            tally.failures.setdefault(f"{event.label} [error]",
                                      f"{event.value!r}: {event.info.code_sample}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return tally


@pytest.mark.parametrize("service", list(ROLES))
async def test_no_server_error_and_every_error_a_problem(
    service: str, make_database: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    database_url = await asyncio.to_thread(make_database, f"fuzz{service}")
    app = service_app(service, database_url, kafka_bootstrap, topic_prefix,
                      **SETTINGS.get(service, {}))
    started = time.monotonic()
    found: dict[Role, Tally] = {}
    try:
        for role in ROLES[service]:
            found[role] = await asyncio.to_thread(_fuzz, app, role)
    finally:
        from schemathesis.python import asgi

        await asyncio.to_thread(asgi.shutdown_lifespans)
    elapsed = time.monotonic() - started
    summary = {role.value: (len(t.operations), t.examples, sorted(t.server_errors),
                            dict(t.statuses)) for role, t in found.items()}
    print(f"\n{service}: {elapsed:.1f} s; (operations, examples, 5xx) per role: {summary}")
    failures = {f"{role.value}: {k}": v for role, t in found.items() for k, v in t.failures.items()}
    assert all(t.operations for t in found.values()), summary
    assert not failures, "\n".join(f"{k}\n  {v}" for k, v in sorted(failures.items()))
