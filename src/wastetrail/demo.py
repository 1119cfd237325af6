"""`make demo`: bring the stack up, simulate a province, audit it, print a summary."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from wastetrail_contracts.topics import kafka_client_options

from wastetrail.devstack import infra, processes, proxy

OUT = Path("out/demo")
HOUSEHOLDS = int(os.environ.get("WASTETRAIL_DEMO_HOUSEHOLDS", "120"))
DAYS = int(os.environ.get("WASTETRAIL_DEMO_DAYS", "5"))
SEED = int(os.environ.get("WASTETRAIL_DEMO_SEED", "42"))
# The report needs a province's targets (audit/targets/<province>.toml); the simulated
# province is reported against Cần Thơ's targets.
PROVINCE = os.environ.get("WASTETRAIL_DEMO_PROVINCE", "can-tho")


def _reset() -> str:
    """Empty the province: stop our services, recreate their databases, delete the topics.

    Kafka and PostgreSQL keep running (other work may use them); `_up` then recreates the
    topics and the services migrate their fresh databases."""
    for name in (*processes.SERVICES, "vnpay-sandbox"):
        processes.stop(name)
    infra.ensure_kafka()
    infra.ensure_postgres()
    asyncio.run(_recreate_databases())
    deleted = asyncio.run(_delete_topics())
    return f"{len(processes.SERVICES)} databases recreated, {deleted} topics deleted"


async def _recreate_databases() -> None:
    import asyncpg

    conn = await asyncpg.connect(infra.PG_ADMIN_URL)
    try:
        for service in processes.SERVICES:
            await conn.execute(f'DROP DATABASE IF EXISTS "wastetrail_{service}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "wastetrail_{service}"')
    finally:
        await conn.close()


async def _delete_topics() -> int:
    """Delete the catalog's topics and wait until the broker no longer lists them."""
    from aiokafka.admin import AIOKafkaAdminClient
    from wastetrail_runtime.topics import catalog_topics

    wanted = {name for name, _parts, _ret in catalog_topics()}
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.KAFKA_BOOTSTRAP, **kafka_client_options())
    await admin.start()
    try:
        present = sorted(wanted & set(await admin.list_topics()))
        if present:
            await admin.delete_topics(present)
        deadline = time.monotonic() + 60
        # Deletion is asynchronous: recreating a topic still being deleted fails.
        while time.monotonic() < deadline:
            if not wanted & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.5)
        return len(present)
    finally:
        await admin.close()


def _up() -> list[str]:
    """`wastetrail up`, but a service whose app is missing is reported, not fatal."""
    from wastetrail_runtime.topics import ensure_topics

    infra.ensure_kafka()
    infra.ensure_postgres()
    for attempt in range(30):
        try:  # just-deleted topics can take a moment before they may be created again
            asyncio.run(ensure_topics(infra.KAFKA_BOOTSTRAP))
            break
        except Exception:
            if attempt == 29:
                raise
            time.sleep(1)
    processes.start_sandbox()
    missing: list[str] = []
    started: list[str] = []
    for service in processes.SERVICES:
        if importlib.util.find_spec(f"wastetrail_{service}.app") is None:
            missing.append(f"{service}: no wastetrail_{service}.app")
            continue
        processes.start_service(service)
        started.append(service)
    missing += [f"{s}: not ready (see .local/logs/)" for s in started
                if not processes.wait_ready(s)]
    try:
        proxy.start()
        if not proxy.wait_ready():
            missing.append("proxy: not answering (see .local/logs/proxy.log)")
    except RuntimeError as exc:
        missing.append(f"proxy: {exc}")
    return missing


def _audit(args: list[str], limit: float = 180) -> tuple[bool, str]:
    """Run one `wastetrail audit` command (a subprocess with a time limit); never raises."""
    try:
        done = subprocess.run(  # noqa: S603 — our own command line
            [sys.executable, "-m", "wastetrail.cli", "audit", *args], capture_output=True,
            text=True, timeout=limit, check=False)
        return done.returncode == 0, (done.stdout + done.stderr).strip()
    except subprocess.TimeoutExpired:
        return False, f"timed out after {limit:.0f}s"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def run_demo() -> int:
    """Up, simulate, audit, summarise; leaves the services running. 0 on success."""
    from wastetrail_contracts.enums import Role
    from wastetrail_runtime.auth import issue_token

    from wastetrail.simulate import run_simulation
    from wastetrail.simulate.province import _secret
    from wastetrail.simulate.truth import FateTruth, trace_fates

    began = time.monotonic()
    print("== resetting: the demo resets its own data (services, their databases, topics)",
          flush=True)
    print(f"   {_reset()}", flush=True)
    print("== bringing the stack up", flush=True)
    problems = _up()
    for problem in problems:
        print(f"   ! {problem}", flush=True)
    print(f"== simulating {HOUSEHOLDS} households for {DAYS} days (seed {SEED})", flush=True)
    try:
        sim = asyncio.run(run_simulation(SEED, HOUSEHOLDS, DAYS, str(OUT),
                                         kafka_bootstrap=infra.KAFKA_BOOTSTRAP))
    except Exception as exc:
        print(f"simulation failed: {exc}", flush=True)
        return 1
    print("== audit", flush=True)
    auditor = issue_token(_secret(), "demo-auditor", Role.AUDITOR)
    audit: dict[str, dict[str, object]] = {}
    for name, args in {
        # The auditor pins the services' keys in its own trust file (.local/audit/trust.json)
        # once; in a real audit the fingerprints printed here are checked out of band.
        "trust": ["trust", "pin", "--keys-dir", ".local/keys"],
        "replay": ["replay"],
        "verify-balances": ["verify-balances", "--billing-url", "http://127.0.0.1:8004",
                            "--token", auditor],
        # Every invoice's fees priced again from the loads and the tariff in the log.
        "verify-invoices": ["verify-invoices"],
        # A few simulated days, so generation is estimated over the days simulated.
        "report": ["report", "--year", "2026", "--province", PROVINCE,
                   "--estimate-over", "covered", "--out", str(OUT / "report")],
    }.items():
        ok, text = _audit(args)
        audit[name] = {"ok": ok, "output": text[-600:]}
        lines = [ln.strip(" │╭╰─") for ln in text.splitlines() if ln.strip(" │╭╰─")]
        why = lines[-1] if ok or not lines else next(
            (ln for ln in lines if "Error" in ln or "No such" in ln), lines[-1])
        print(f"   audit {name}: {'ok' if ok else 'FAILED'} {why}"[:200], flush=True)
    # Every load's trace, from the replayed log alone, against the simulator's truth.
    kept = sim.pop("_truth")
    assert isinstance(kept, tuple)
    truth: FateTruth = kept[0]
    loads: dict[str, dict[str, object]] = kept[1]
    traces = trace_fates(str(Path(".local/audit/projection.sqlite")), sorted(loads))
    trace_mismatches = truth.mismatches(loads, traces, "audit trace")
    print(f"   audit trace of every load: {len(traces)} traced, "
          f"{len(trace_mismatches)} mismatch(es) with the simulator's truth", flush=True)
    billing: dict[str, object] = dict(sim.get("billing") or {})  # type: ignore[call-overload]
    epr: dict[str, object] = dict(sim.get("epr") or {})  # type: ignore[call-overload]
    late: dict[str, object] = dict(sim.get("late_sync") or {})  # type: ignore[call-overload]
    pays: dict[str, object] = dict(billing.get("payments") or {})  # type: ignore[call-overload]
    fate_mismatches = int(str(sim["fate_mismatches"])) + len(trace_mismatches)
    integrity_ok = (bool(audit["replay"]["ok"]) and fate_mismatches == 0
                    and sim["fate_checked"] == sim["loads_collected"] == len(traces))
    summary = {
        "loads_collected": sim["loads_collected"], "loads_accounted": sim["loads_accounted"],
        "loads_sent": sim["loads_sent"], "duplicates": sim["duplicates"],
        "refusals": sim["refusals"], "integrity_ok": integrity_ok,
        # Every load's fate (the API) and trace (the log) against the simulator's truth.
        "fate_checked": sim["fate_checked"], "traces_checked": len(traces),
        "fate_mismatches": fate_mismatches,
        "fate_mismatch_examples": [*sim["fate_mismatch_examples"],  # type: ignore[misc]
                                   *trace_mismatches][:10],
        # `audit verify-balances`: billing's balances against those recomputed from the log.
        "balances_verified": bool(audit["verify-balances"]["ok"]),
        # `audit verify-invoices`: the invoices' fees against the tariff applied to the log.
        "invoices_verified": bool(audit["verify-invoices"]["ok"]),
        "tonnes_by_method": sim["tonnes_by_method"],
        "direct_landfill_share": sim["direct_landfill_share"],
        "target": sim["direct_landfill_target"],
        "invoices": billing.get("issued", 0),
        "invoices_skipped": billing.get("skipped", billing.get("error")),
        "invoices_total_vnd": billing.get("billed_total_vnd"),
        "expected_invoices_total_vnd": billing.get("expected_total_vnd"),
        "billing_matches_tariff": bool(billing.get("billing_matches_tariff")),
        # The trip an offline device synced after month end, billed by supplements.
        "late_loads": late.get("late_loads", late.get("error")),
        "supplementary_invoices": late.get("supplements"),
        "late_billing_matches_tariff": bool(late.get("billing_matches_tariff")),
        "late_sync": late,
        "payments": pays.get("count", 0), "payments_vnd": pays.get("vnd", 0),
        "payments_detail": pays or billing.get("error"),
        "refunds_credited_vnd": epr.get("refunds_credited_vnd", 0),
        "refunds_expected_vnd": epr.get("expected_refunds_vnd"),
        "epr": {k: v for k, v in epr.items() if k != "credited_by_generator"},
        "audit": audit, "service_problems": problems,
        "seconds": round(time.monotonic() - began, 1),
        "simulation": {k: v for k, v in sim.items()
                       if k not in ("expected_invoices", "billing", "epr", "late_sync")},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2),
                                      encoding="utf-8")
    print("== summary", flush=True)
    for key in ("loads_collected", "loads_accounted", "fate_checked", "traces_checked",
                "fate_mismatches", "duplicates", "refusals", "integrity_ok",
                "balances_verified", "invoices_verified",
                "tonnes_by_method", "direct_landfill_share", "target", "invoices",
                "invoices_skipped", "invoices_total_vnd", "expected_invoices_total_vnd",
                "billing_matches_tariff", "late_loads", "supplementary_invoices",
                "late_billing_matches_tariff", "payments", "payments_vnd", "refunds_credited_vnd",
                "refunds_expected_vnd", "seconds"):
        print(f"   {key:<28} {json.dumps(summary[key], ensure_ascii=False)}", flush=True)
    print(f"   summary: {OUT / 'summary.json'}  report: {OUT / 'report'}/", flush=True)
    print(f"   one origin: http://127.0.0.1:{proxy.PROXY_PORT}/ (APIs under /api/<service>/, "
          f"e.g. /api/treatment/docs); services also on :8001 … :8004; `make down` stops all")
    return 0 if sim["loads_accounted"] == sim["loads_collected"] else 1
