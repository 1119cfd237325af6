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

from wastetrail.devstack import infra, processes

OUT = Path("out/demo")
HOUSEHOLDS = int(os.environ.get("WASTETRAIL_DEMO_HOUSEHOLDS", "120"))
DAYS = int(os.environ.get("WASTETRAIL_DEMO_DAYS", "5"))
SEED = int(os.environ.get("WASTETRAIL_DEMO_SEED", "42"))
# The report needs a province's targets (audit/targets/<province>.toml); the simulated
# province is reported against Cần Thơ's targets.
PROVINCE = os.environ.get("WASTETRAIL_DEMO_PROVINCE", "can-tho")


def _up() -> list[str]:
    """`wastetrail up`, but a service whose app is missing is reported, not fatal."""
    from wastetrail_runtime.topics import ensure_topics

    infra.ensure_kafka()
    infra.ensure_postgres()
    asyncio.run(ensure_topics(infra.KAFKA_BOOTSTRAP))
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

    began = time.monotonic()
    print("== bringing the stack up", flush=True)
    problems = _up()
    for problem in problems:
        print(f"   ! {problem}", flush=True)
    print(f"== simulating {HOUSEHOLDS} households for {DAYS} days (seed {SEED})", flush=True)
    try:
        sim = asyncio.run(run_simulation(SEED, HOUSEHOLDS, DAYS, str(OUT)))
    except Exception as exc:
        print(f"simulation failed: {exc}", flush=True)
        return 1
    print("== audit", flush=True)
    auditor = issue_token(_secret(), "demo-auditor", Role.AUDITOR)
    audit: dict[str, dict[str, object]] = {}
    for name, args in {
        "replay": ["replay"],
        "verify-balances": ["verify-balances", "--billing-url", "http://127.0.0.1:8004",
                            "--token", auditor],
        "report": ["report", "--year", "2026", "--province", PROVINCE,
                   "--out", str(OUT / "report")],
    }.items():
        ok, text = _audit(args)
        audit[name] = {"ok": ok, "output": text[-600:]}
        lines = [ln.strip(" │╭╰─") for ln in text.splitlines() if ln.strip(" │╭╰─")]
        why = lines[-1] if ok or not lines else next(
            (ln for ln in lines if "Error" in ln or "No such" in ln), lines[-1])
        print(f"   audit {name}: {'ok' if ok else 'FAILED'} {why}"[:200], flush=True)
    expected: dict[str, object] = dict(sim.get("expected_invoices") or {})  # type: ignore[call-overload]
    billing: dict[str, object] = dict(sim.get("billing") or {})  # type: ignore[call-overload]
    integrity_ok = bool(audit["replay"]["ok"]) and sim["loads_accounted"] == sim["loads_collected"]
    summary = {
        "loads_collected": sim["loads_collected"], "loads_accounted": sim["loads_accounted"],
        "loads_sent": sim["loads_sent"], "duplicates": sim["duplicates"],
        "refusals": sim["refusals"], "integrity_ok": integrity_ok,
        "tonnes_by_method": sim["tonnes_by_method"],
        "direct_landfill_share": sim["direct_landfill_share"],
        "direct_landfill_target": sim["direct_landfill_target"],
        "invoices": {"billing": {k: v for k, v in billing.items() if k != "payments"},
                     "expected": {k: v for k, v in expected.items()
                                  if k != "per_account"}},
        "payments": billing.get("payments", {"error": billing.get("error", "none made")}),
        "refunds_credited_vnd": 0,
        "audit": audit, "service_problems": problems,
        "seconds": round(time.monotonic() - began, 1),
        "simulation": {k: v for k, v in sim.items()
                       if k not in ("expected_invoices", "billing")},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2),
                                      encoding="utf-8")
    print("== summary", flush=True)
    for key in ("loads_collected", "loads_accounted", "duplicates", "refusals", "integrity_ok",
                "tonnes_by_method", "direct_landfill_share", "invoices", "payments",
                "refunds_credited_vnd", "seconds"):
        print(f"   {key:<22} {json.dumps(summary[key], ensure_ascii=False)}", flush=True)
    print(f"   summary: {OUT / 'summary.json'}  report: {OUT / 'report'}/", flush=True)
    print("   services stay up: http://127.0.0.1:8001/docs … :8003/docs; `make down` stops them")
    return 0 if sim["loads_accounted"] == sim["loads_collected"] else 1
