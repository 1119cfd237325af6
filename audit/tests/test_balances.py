"""`wastetrail audit verify-balances`: balances from events alone vs the billing service."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from _auditlog import LogBuilder, ProducedLog, make_keys
from _scenario import hand_scenario
from fastapi import FastAPI, Header, HTTPException
from typer.testing import CliRunner
from wastetrail_audit.balances import (
    AccountBalance,
    Balances,
    ProducerBalance,
    compare,
    derive_balances,
    parse_billing_view,
)
from wastetrail_audit.cli import app
from wastetrail_contracts.base import Event
from wastetrail_contracts.codec import envelope_from_json, parse_payload

TOKEN = "auditor-token"


def _events(log: LogBuilder) -> list[Event]:
    return [parse_payload(envelope_from_json(e)) for e in log.envelopes]


def test_balances_of_the_hand_made_scenario() -> None:
    events = _events(hand_scenario(LogBuilder(make_keys())))
    balances = derive_balances(events + events[-10:])  # a redelivered tail counts once
    assert balances.accounts == {
        # paid its 43,200 bill and holds the 50,000 deposit refund credited to it
        "A1": AccountBalance(invoiced=43_200, paid=43_200, refunded=0, credited=50_000,
                             balance=-50_000),
        # paid 32,400 by VNPay, 5,000 refunded: owes 5,000 again
        "A2": AccountBalance(invoiced=32_400, paid=32_400, refunded=5_000, credited=0,
                             balance=5_000),
        # unpaid; its claim was paid out in cash, which does not touch the bill
        "A3": AccountBalance(invoiced=21_600, paid=0, refunded=0, credited=0, balance=21_600),
    }
    # owed 500,000 + 200,000; paid 600,000; refunded C1 50,000 + C2 50,000 (C3 rejected)
    assert balances.producers == {
        "P1": ProducerBalance(owed=700_000, paid=600_000, refunded=100_000, unredeemed=500_000)
    }


def test_compare_lists_every_difference_and_treats_missing_as_zero() -> None:
    ours = Balances({"A1": AccountBalance(invoiced=10, balance=10)}, {})
    theirs = parse_billing_view({"accounts": {"A1": {"invoiced": 10, "paid": 0, "refunded": 0,
                                                     "credited": 0, "balance": 10},
                                              "A9": {"invoiced": 0, "paid": 0, "refunded": 0,
                                                     "credited": 0, "balance": 0}},
                                 "producers": {"P1": {"owed": 5, "paid": 0, "refunded": 0,
                                                      "unredeemed": 0}}})
    assert [(d.subject, d.subject_id, d.field, d.log, d.billing) for d in compare(ours, theirs)] \
        == [("producer", "P1", "owed", 0, 5)]
    with pytest.raises(ValueError, match="integer"):
        parse_billing_view({"accounts": {"A1": {"paid": "12"}}})


# -- against a stub of the billing service's API ------------------------------------------


class Stub:
    """A tiny billing service answering GET /v1/audit/balances with what the test sets."""

    def __init__(self) -> None:
        self.body: dict[str, object] = {}
        self.api = FastAPI()

        @self.api.get("/v1/audit/balances")
        def balances(authorization: str = Header("")) -> dict[str, object]:
            if authorization != f"Bearer {TOKEN}":
                raise HTTPException(status_code=401, detail="auditor token required")
            return self.body


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[Stub, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = Stub()
    server = uvicorn.Server(uvicorn.Config(service.api, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield service, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def _verify(log: ProducedLog, url: str, work: Path, token: str = TOKEN) -> tuple[int, str]:
    result = CliRunner().invoke(app, [
        "verify-balances", "--billing-url", url, "--token", token,
        "--bootstrap", log.bootstrap, "--topic-prefix", log.prefix,
        "--keys-dir", str(log.keys_dir), "--work-dir", str(work), "--quiet",
    ])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.integration
def test_verify_balances_agrees_with_a_matching_billing_service(
    hand_log: ProducedLog, stub: tuple[Stub, str], tmp_path: Path
) -> None:
    service, url = stub
    service.body = derive_balances(_events(hand_log.log)).to_json()
    code, out = _verify(hand_log, url, tmp_path)
    assert code == 0, out
    assert "OK: 3 accounts and 1 producers recomputed from the log; 0 difference(s)" in out


@pytest.mark.integration
def test_verify_balances_lists_an_injected_difference(
    hand_log: ProducedLog, stub: tuple[Stub, str], tmp_path: Path
) -> None:
    service, url = stub
    body = json.loads(json.dumps(derive_balances(_events(hand_log.log)).to_json()))
    body["accounts"]["A2"]["paid"] = 27_400  # billing lost 5,000 đ of a payment
    body["accounts"]["A2"]["balance"] = 10_000
    service.body = body
    code, out = _verify(hand_log, url, tmp_path)
    assert code == 1
    assert "DIFF account A2 paid: log 32,400 đ, billing 27,400 đ" in out
    assert "DIFF account A2 balance: log 5,000 đ, billing 10,000 đ" in out
    assert "2 difference(s)" in out
    # a wrong token is an error, not a clean bill of health
    code, out = _verify(hand_log, url, tmp_path / "t", token="wrong")
    assert code == 2 and "401" in out
