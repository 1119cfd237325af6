"""The alert rules and the dashboard: promtool checks and unit-tests the rules, and every
metric they name is one the services export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from wastetrail_runtime.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"
DASHBOARD = ROOT / "deploy/grafana/wastetrail-operations.json"
OURS = re.compile(r"\b((?:wastetrail|process|python)_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",), "info": ("_info",)}

promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool missing: deploy/local/bootstrap.sh installs Debian's prometheus package")


def _exported() -> set[str]:
    names: set[str] = set()
    for family in Metrics("billing").registry.collect():
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def _run(*args: str) -> str:
    done = subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@promtool
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    assert "SUCCESS: 7 rules found" in _run("check", "rules", "alerts.yml")
    _run("check", "config", "prometheus.yml")


@promtool
def test_alerts_fire_on_the_series_that_should_raise_them() -> None:
    """alerts.test.yml: dead letters, lag (not double-counted across replicas), outbox
    backlog, a stalled relay (and not a busy one), refused VNPay IPNs."""
    assert "SUCCESS" in _run("test", "rules", "alerts.test.yml")


def test_required_alerts_exist_and_name_exported_metrics() -> None:
    rules = [r for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for r in g["rules"]]
    alerts = {r["alert"] for r in rules}
    assert {"WasteTrailDeadLetters", "WasteTrailConsumerLag", "WasteTrailOutboxBacklog",
            "WasteTrailRelayStalled", "WasteTrailVNPayIPNFailures"} <= alerts
    exported = _exported()
    for rule in rules:
        assert set(OURS.findall(rule["expr"])) <= exported, rule["alert"]


def test_dashboard_panels_query_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {name for e in exprs for name in OURS.findall(e)}
    assert used <= _exported()
    for needed in ("wastetrail_consumer_lag", "wastetrail_outbox_pending",
                   "wastetrail_dead_letters_total", "wastetrail_vnpay_ipn_total",
                   "process_resident_memory_bytes"):
        assert needed in used
