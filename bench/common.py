"""Shared helpers of the benchmarks: result files, fresh databases, peak-RSS sampling.

Every result is ``{name, value, unit, target, baseline, ratio, met}``. ``ratio`` always
reads "ours relative to the baseline, higher is better": value/baseline for rates,
baseline/value for durations, latencies and memory.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import asyncpg
import psutil
from aiokafka.admin import AIOKafkaAdminClient
from wastetrail_contracts.topics import kafka_client_options

RESULTS = Path(__file__).parent / "results"

Result = dict[str, object]


def median(values: Sequence[float]) -> float:
    """The median of several runs (0.0 when there are none)."""
    return float(statistics.median(values)) if values else 0.0


def result(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None,
    baseline: float | None,
    higher_is_better: bool = True,
    results_dir: Path | None = None,
) -> Result:
    """Build one result, write ``<results_dir>/<name>.json`` and return it."""
    ratio: float | None = None
    if baseline is not None and value > 0 and baseline > 0:
        ratio = value / baseline if higher_is_better else baseline / value
    met: bool | None = None
    if target is not None:
        met = value >= target if higher_is_better else value <= target
    data: Result = {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "target": None if target is None else round(target, 3),
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 3),
        "met": met,
    }
    out = results_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def table(results: Sequence[Result]) -> str:
    """The results as a fixed-width text table."""
    head = f"{'name':<34}{'value':>14}{'baseline':>14}{'ratio':>8}{'target':>10}  {'met':<6}unit"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['name']!s:<34}{_num(r['value']):>14}{_num(r['baseline']):>14}"
            f"{_num(r['ratio']):>8}{_num(r['target']):>10}  {r['met']!s:<6}{r['unit']}"
        )
    return "\n".join(lines)


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


async def fresh_database(admin_url: str, label: str) -> str:
    """Create an empty database; returns its libpq URL (postgresql://...)."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}".lower()
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


async def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by ``fresh_database`` (the benchmarks clean up after themselves)."""
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlalchemy_url(url: str) -> str:
    """A libpq URL as an asyncpg SQLAlchemy URL."""
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


class PeakRss:
    """Samples the resident memory of processes (and optionally their children) in a thread.

    ``peak_total`` is the largest sum over the tree at one instant; ``peak_each`` the
    largest RSS of each pid seen.
    """

    def __init__(self, pids: Sequence[int], *, children: bool = True,
                 interval: float = 0.05) -> None:
        self.pids = list(pids)
        self.children = children
        self.interval = interval
        self.peak_total = 0
        self.peak_each: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        """Take one sample now."""
        total = 0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *(root.children(recursive=True) if self.children else [])]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    rss = int(proc.memory_info().rss)
                except psutil.Error:
                    continue
                total += rss
                if rss > self.peak_each.get(proc.pid, 0):
                    self.peak_each[proc.pid] = rss
        self.peak_total = max(self.peak_total, total)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)


MB = 1024 * 1024


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (a run's topics): a broker that
    keeps thousands of old partitions gets slower for every later run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    except Exception:  # noqa: S110 — leftover topics are harmless
        pass
    finally:
        await admin.close()
