"""Month-end invoicing: billing's own invoicing run vs one SQL aggregate over the same rows.

A fresh billing database gets the example Hanoi per-kg tariff (published through billing's
handler, assigned to every commune), ``accounts`` accounts and ``loads`` charges per
account in January 2026 (bulk-loaded with COPY: the projection is not what is measured
here). Then ``run_invoicing`` is called in-process, exactly as POST /v1/invoicing/runs
does, and timed; the baseline is one GROUP BY over the same charges.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import wastetrail_billing.epr.tables  # noqa: F401 — registers the EPR tables on billing's metadata
from wastetrail_billing.adapters.tables import CommuneTariff, meta
from wastetrail_billing.handlers.invoicing import run_invoicing
from wastetrail_billing.handlers.tariffs import publish_tariff
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_runtime.db import Database
from wastetrail_runtime.store import EventStore

from bench.common import Result, drop_database, fresh_database, median, result, sqlalchemy_url

TARIFF = Path(__file__).resolve().parents[1] / "services/billing/tariffs/hanoi_per_kg_example.toml"
PERIOD = "2026-01"
NOW = datetime(2026, 2, 3, 3, 0, tzinfo=UTC)
BASELINE_SQL = (
    "SELECT account_id, category, sum(grams), count(*) FROM charges "
    "WHERE period = $1 AND invoice_id IS NULL GROUP BY account_id, category"
)


async def _prepare(url: str, accounts: int, loads: int, prefix: str) -> tuple[Database, EventStore]:
    db = Database(sqlalchemy_url(url))
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.metadata.create_all)
    store = EventStore(db, meta, "billing", topic_prefix=prefix)
    async with store.unit_of_work() as uow:
        await publish_tariff(uow, "hanoi", TARIFF.read_text(encoding="utf-8"),
                             actor=SYSTEM_ACTOR, now=NOW)
        uow.session.add(CommuneTariff(commune="*", tariff_id="hanoi", assigned_at=NOW))
        await uow.commit()
    conn = await asyncpg.connect(url)
    try:
        opened = datetime(2025, 12, 1, tzinfo=UTC)
        await conn.copy_records_to_table(
            "accounts",
            columns=["account_id", "generator_id", "code", "name", "commune", "commune_class",
                     "customer_class", "active", "opened_at"],
            records=[(f"hh-{a:07d}", f"hh-{a:07d}", f"HH-{a:07d}", f"Hộ {a}", f"P{a % 50:02d}",
                      "urban", "household", True, opened) for a in range(accounts)])
        start = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
        categories = ("food", "other", "recyclable")
        rows = []
        for a in range(accounts):
            for n in range(loads):
                at = start + timedelta(days=n % 31, minutes=a % 600)
                rows.append((f"L-{a:07d}-{n:03d}", f"hh-{a:07d}", f"trip-{n % 31}",
                             f"P{a % 50:02d}", categories[n % 3], "scale", 800 + (a + n) % 4000,
                             at, date(2026, 1, 1 + n % 31), PERIOD))
        await conn.copy_records_to_table(
            "charges",
            columns=["load_id", "account_id", "trip_id", "commune", "category", "measure",
                     "grams", "collected_at", "collected_on", "period"],
            records=rows)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return db, store


async def once(admin_url: str, accounts: int, loads: int) -> tuple[float, float, int]:
    """(invoicing seconds, aggregate seconds, invoices issued) on a fresh database."""
    url = await fresh_database(admin_url, "inv")
    try:
        db, store = await _prepare(url, accounts, loads, f"bench{uuid.uuid4().hex[:6]}.")
        conn = await asyncpg.connect(url)
        try:
            started = time.perf_counter()
            rows = await conn.fetch(BASELINE_SQL, PERIOD)
            aggregate = time.perf_counter() - started
        finally:
            await conn.close()
        if len({r[0] for r in rows}) != accounts:
            raise AssertionError("the aggregate did not see every account")
        started = time.perf_counter()
        run = await run_invoicing(store, PERIOD, actor=SYSTEM_ACTOR, now=NOW)
        ours = time.perf_counter() - started
        await db.dispose()
        if run.skipped:
            raise AssertionError(f"invoicing skipped accounts: {run.skipped[:3]}")
        return ours, aggregate, len(run.issued)
    finally:
        await drop_database(admin_url, url)


async def run(admin_url: str, *, accounts: int, loads: int, runs: int,
              results_dir: Path | None = None, log: bool = True) -> list[Result]:
    """Month-end invoicing, ``runs`` times on fresh databases; medians."""
    ours: list[float] = []
    base: list[float] = []
    for _ in range(runs):
        secs, agg, issued = await once(admin_url, accounts, loads)
        if issued != accounts:
            raise AssertionError(f"{issued} invoices for {accounts} accounts")
        ours.append(secs)
        base.append(agg)
        if log:
            print(f"  invoicing {accounts:,} accounts × {loads} loads: {secs:.1f}s "
                  f"({accounts / secs:,.0f} accounts/s); aggregate {agg:.2f}s")
    # The target: 1,000,000 accounts in 60 s, i.e. 16,667 accounts/s; scaled
    # linearly to the size run here.
    target = round(60.0 * accounts / 1_000_000, 3)
    return [result("month_end_invoicing", median(ours), "s", target=target,
                   baseline=median(base), higher_is_better=False, results_dir=results_dir)]
