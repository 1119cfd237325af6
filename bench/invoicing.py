"""Month-end invoicing: billing's own invoicing run vs one SQL aggregate over the same rows.

A fresh billing database gets the example Hanoi per-kg tariff (published through billing's
handler, assigned to every commune), ``accounts`` accounts and ``loads`` charges per
account in January 2026 (generated in SQL: the projection is not what is measured
here). Then ``run_invoicing`` is called in-process, exactly as POST /v1/invoicing/runs
does, and timed; the baseline is one GROUP BY over the same charges.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
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
BASELINE_SQL = (  # every charge of the month is unbilled before the run
    "SELECT account_id, category, sum(grams), count(*) FROM charges "
    "WHERE period = $1 GROUP BY account_id, category"
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
        # Generated in PostgreSQL (generate_series): 30 M charge rows built as Python
        # tuples would need tens of GB; the rows are the same as before (see the columns).
        await conn.execute("""
            INSERT INTO accounts (account_id, generator_id, code, name, commune,
                                  commune_class, customer_class, active, opened_at)
            SELECT 'hh-' || lpad(a::text, 7, '0'), 'hh-' || lpad(a::text, 7, '0'),
                   'HH-' || lpad(a::text, 7, '0'), 'Hộ ' || a,
                   'P' || lpad((a % 50)::text, 2, '0'), 'urban', 'household', true,
                   timestamptz '2025-12-01 00:00+00'
            FROM generate_series(0, $1 - 1) AS a""", accounts)
        # Loads of an account in collection order (n), accounts one after another; 08:00
        # in Vietnam plus a few minutes per account.
        step = 50_000
        for low in range(0, accounts, step):
            await conn.execute("""
                INSERT INTO charges (load_id, account_id, trip_id, commune, category,
                                     measure, grams, collected_at, collected_on, period)
                SELECT 'L-' || lpad(a::text, 7, '0') || '-' || lpad(n::text, 3, '0'),
                       'hh-' || lpad(a::text, 7, '0'), 'trip-' || (n % 31),
                       'P' || lpad((a % 50)::text, 2, '0'),
                       (ARRAY['food', 'other', 'recyclable'])[n % 3 + 1], 'scale',
                       800 + (a + n) % 4000,
                       timestamptz '2026-01-01 01:00+00' + make_interval(
                           days => n % 31, mins => a % 600),
                       date '2026-01-01' + n % 31, $4
                FROM generate_series($1::int, $2::int - 1) AS a,
                     generate_series(0, $3::int - 1) AS n
                ORDER BY a, n""", low, min(low + step, accounts), loads, PERIOD)
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
