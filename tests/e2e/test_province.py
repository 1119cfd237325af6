"""A tiny province through the real services, checked against the simulator's ground truth.

The collection, transfer and treatment services run as processes on free ports, each with a
fresh database and this run's topic prefix, so nothing is shared with the developer stack.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from wastetrail.simulate import Endpoints, simulate
from wastetrail.simulate.epr import DEPOSIT_VND

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("collection", "transfer", "treatment", "billing")
SECRET = "e2e-test-secret-0123456789abcdef0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def services(kafka_bootstrap: str, topic_prefix: str, make_database: Callable[[str], str],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The four services as processes; yields their base URLs."""
    from wastetrail_runtime.topics import ensure_topics

    from wastetrail.devstack.acls import apply
    from wastetrail.devstack.infra import kafka_credentials, principal_env

    prefix = f"{topic_prefix}e2e."
    asyncio.run(ensure_topics(kafka_bootstrap, prefix=prefix))
    credentials = kafka_credentials()
    if credentials is not None:  # a SASL broker: each service runs as its own principal
        apply(kafka_bootstrap, (credentials / "admin").read_text().strip(), prefix)
    logs = tmp_path_factory.mktemp("e2e-logs")
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    for service in SERVICES:
        port = _free_port()
        env = dict(os.environ)
        env.update({
            "WASTETRAIL_SERVICE": service,
            "WASTETRAIL_DATABASE_URL": make_database(f"e2e{service}"),
            "WASTETRAIL_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "WASTETRAIL_TOPIC_PREFIX": prefix, "WASTETRAIL_HTTP_PORT": str(port),
            "WASTETRAIL_JWT_SECRET": SECRET, "WASTETRAIL_LOCAL_DIR": str(logs),
            "WASTETRAIL_PUBLIC_URL": f"http://127.0.0.1:{port}",
            # Billing wants a VNPay merchant; the e2e test makes no payment through it.
            "WASTETRAIL_VNPAY_TMN_CODE": "E2ETEST1",
            "WASTETRAIL_VNPAY_HASH_SECRET": "E2ETESTSECRETNOTFORPRODUCTION000",
            "WASTETRAIL_VNPAY_PAYMENT_URL": "http://127.0.0.1:9/paymentv2/vpcpay.html",
            "WASTETRAIL_VNPAY_API_URL": "http://127.0.0.1:9/merchant_webapi/api/transaction",
            **principal_env(service),
        })
        log = (logs / f"{service}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "wastetrail.cli", "serve", service], env=env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT))
        urls[service] = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        for service, url in urls.items():
            answer = "no answer"
            while True:
                try:
                    resp = httpx.get(f"{url}/readyz", timeout=2)
                    answer = resp.text
                    if resp.status_code == 200:
                        break
                except httpx.HTTPError as exc:
                    answer = repr(exc)
                if time.monotonic() > deadline:
                    text = (logs / f"{service}.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"{service} not ready ({answer}):\n{text}")
                time.sleep(0.5)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.e2e
@pytest.mark.integration
async def test_tiny_province_every_load_is_accounted_and_billed_by_the_tariff(
    services: dict[str, str], kafka_bootstrap: str, topic_prefix: str,
    tmp_path: Path,
) -> None:
    ep = Endpoints(collection=services["collection"], transfer=services["transfer"],
                   treatment=services["treatment"], billing=services["billing"])
    truth = await simulate(seed=7, households=20, days=2, ep=ep, secret=SECRET, log=False,
                           pay=False, kafka_bootstrap=kafka_bootstrap,
                           topic_prefix=f"{topic_prefix}e2e.")

    collected = truth["loads_collected"]
    assert isinstance(collected, int) and collected > 40
    # Retried scans came back as duplicates, not as new loads.
    # Three scans per trip are re-sent (3 vehicles × 2 days).
    assert truth["duplicates"] == 18 and truth["loads_sent"] == collected + 18
    # Every collected load is at a plant (fate API), in a station, or in a custody alert.
    # Every load's fate (the API) equals what the simulator knows it became.
    assert truth["fate_checked"] == collected
    assert truth["fate_mismatches"] == 0, truth["fate_mismatch_examples"]
    assert truth["loads_accounted"] == collected, truth["unaccounted_loads"]
    treated = truth["tonnes_by_method"]
    assert isinstance(treated, dict) and treated.get("composting", 0) > 0
    grams = truth["grams_by_category"]
    assert isinstance(grams, dict)
    # Treated mass = collected mass minus the 0.2 % weighbridge loss the plant measured.
    total_collected = sum(grams.values())
    total_treated = sum(treated.values()) * 1e6
    assert abs(total_treated - total_collected) <= total_collected * 0.01 + 1000
    # EPR: bottles returned before their recyclable loads were treated were confirmed by
    # the plant's recycling and credited: refunds = confirmed (= returned) units × deposit.
    epr = truth["epr"]
    assert isinstance(epr, dict) and "error" not in epr, epr
    returns = epr["returns"]
    assert isinstance(returns, list) and returns
    returned_units = sum(int(r["units"]) for r in returns)
    assert epr["by_status"] == {"credited": len(returns)}, epr
    assert epr["confirmed_units"] == returned_units
    assert epr["refunds_credited_vnd"] == returned_units * DEPOSIT_VND > 0
    # Billing ground truth: each commune's tariff applied to the simulated loads, less the
    # EPR credit, equals what billing invoiced — for every account, none skipped.
    billing = truth["billing"]
    assert isinstance(billing, dict) and "error" not in billing, billing
    generators = int(str(truth["households"])) + int(str(truth["organisations"]))
    assert billing["issued"] == generators and billing["skipped"] == {}, billing
    assert billing["mismatch_count"] == 0, billing["mismatches"]
    assert billing["billing_matches_tariff"] is True
    assert billing["billed_total_vnd"] == billing["expected_total_vnd"] > 0
    # The refunds reduced the invoices (a credit above a small bill carries over).
    assert 0 < billing["credits_vnd"] <= epr["refunds_credited_vnd"]
    # A device synced its last trip after month end: billed by supplementary invoices, so
    # each account's invoices of the month together equal the tariff applied to every load.
    late = truth["late_sync"]
    assert isinstance(late, dict) and "error" not in late, late
    assert late["late_loads"] > 0 and late["supplements"] > 0 and late["late_charges_left"] == 0
    assert late["mismatch_count"] == 0, late["mismatches"]
    assert late["billed_total_vnd"] == late["expected_total_vnd"] > billing["billed_total_vnd"]
    assert truth["loads_accounted"] == truth["loads_collected"]

    # The auditors' tool agrees from the log alone: the chains verify, and every account's
    # and producer's balance recomputed from events equals what billing reports.
    await asyncio.sleep(3)  # let the last events and a checkpoint reach the log
    import json

    from typer.testing import CliRunner
    from wastetrail_audit.cli import app as audit
    from wastetrail_contracts.enums import Role
    from wastetrail_runtime.auth import issue_token

    # The auditor pins the services' keys in its own trust file, then replays against it
    # (and its heads file: the first replay creates it, later ones must extend it).
    runner = CliRunner()
    trust = tmp_path / "auditor" / "trust.json"
    pinned = runner.invoke(audit, ["trust", "pin", "--keys-dir", str(ROOT / ".local" / "keys"),
                                   "--trust", str(trust)])
    assert pinned.exit_code == 0, pinned.output
    common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", f"{topic_prefix}e2e.",
              "--trust", str(trust), "--quiet"]
    replayed = await asyncio.to_thread(
        runner.invoke, audit, ["replay", *common, "--work-dir", str(tmp_path / "r"),
                               "--heads", str(tmp_path / "auditor" / "heads.json")])
    assert replayed.exit_code == 0, replayed.output
    token = issue_token(SECRET, "e2e-auditor", Role.AUDITOR)
    verified = await asyncio.to_thread(runner.invoke, audit, [
        "verify-balances", *common, "--work-dir", str(tmp_path / "v"),
        "--billing-url", services["billing"], "--token", token])
    assert verified.exit_code == 0, verified.output
    # Every invoice's fees, priced again from the loads and tariffs in the log, agree.
    priced = await asyncio.to_thread(runner.invoke, audit, [
        "verify-invoices", *common, "--json", "--projection",
        str(tmp_path / "r" / "projection.sqlite")])
    assert priced.exit_code == 0, priced.output
    assert json.loads(priced.output)["account_months"] == billing["issued"] > 0

    # The trace of every load, from the log alone, equals the simulator's truth too.
    from wastetrail.simulate.truth import FateTruth, trace_fates

    kept = truth["_truth"]
    assert isinstance(kept, tuple)
    facts: FateTruth = kept[0]
    loads: dict[str, dict[str, object]] = kept[1]
    projection = str(tmp_path / "r" / "projection.sqlite")
    traces = await asyncio.to_thread(trace_fates, projection, sorted(loads))
    assert len(traces) == collected
    assert facts.mismatches(loads, traces, "audit trace") == []
    # A returned bottle's load was recycled (the EPR claim was confirmed by that treatment).
    assert traces[str(returns[0]["load_id"])].get("recycling", 0) > 0

    # A food load on a mixed trip whose food batch was all composted is 100 % composted, by
    # the fate API (one load) and by the trace; the trip's recyclables went elsewhere.
    batch_of = {(t, cat): b for b, (cat, trips) in facts.batches.items() for t in trips}
    categories: dict[str, set[str]] = {}
    for facts_ in loads.values():
        categories.setdefault(str(facts_["trip"]), set()).add(str(facts_["category"]))
    food = next(lid for lid, f in sorted(loads.items())
                if f["category"] == "food" and len(categories[str(f["trip"])]) > 2
                and set(facts.treated[batch_of[(str(f["trip"]), "food")]]) == {"composting"})
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{services['treatment']}/v1/loads/{food}/fate",
                                  headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    fate = answer.json()
    assert fate["treated_by_method"] == {"composting": fate["grams"]} == traces[food]
    assert {b["category"] for b in fate["batches"]} == {"food"}
