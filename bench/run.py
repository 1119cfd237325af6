"""Benchmarks against bare baselines measured in the same run (``make bench``).

Each result is written to ``bench/results/<name>.json`` as
``{name, value, unit, target, baseline, ratio, met}`` (medians of ``--runs`` runs; the
baseline is measured in the same run; ``ratio`` > 1 means better than the baseline).
The benchmarks (see each module's docstring):

* replay     — audit replay with full verification vs one bare kafka-python consumer,
               and the replay's peak RSS at two log sizes (bench/replay.py);
* append     — event store append vs eventsourcing's PostgreSQL recorder, and outbox relay
               vs a bare aiokafka producer (bench/append.py);
* ingest     — scan batches into collection with transfer and billing running: accepted
               and end-to-end loads/s, latency to billing, services' peak RSS, vs bare
               aiokafka (bench/ingest.py);
* invoicing  — billing's month-end run vs one SQL aggregate (bench/invoicing.py).

Ingest runs at the issue's sizes by default (60 s phases, 1,000 loads/s offered); the
replay and invoicing sizes default to what runs in minutes on the 2-core development
machine, and the issue's sizes are options (``--replay-events 1000000 --accounts
1000000``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bench import append, ingest, invoicing, replay
from bench.common import Result, table
from wastetrail.devstack.infra import KAFKA_BOOTSTRAP, PG_ADMIN_URL

ALL = ("replay", "append", "ingest", "invoicing")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=ALL, help="run only these (repeatable)")
    p.add_argument("--runs", type=int, default=3, help="runs per benchmark (median reported)")
    p.add_argument("--replay-events", type=int, default=100_000)
    p.add_argument("--replay-small-events", type=int, default=None,
                   help="the smaller log of the RSS comparison (default: 1/5 of --replay-events)")
    p.add_argument("--append-events", type=int, default=5_000)
    p.add_argument("--append-batch", type=int, default=200)
    p.add_argument("--duration", type=float, default=60.0, help="ingest seconds per phase")
    p.add_argument("--batch", type=int, default=200, help="scans per ingest request")
    p.add_argument("--rate", type=float, default=1000.0, help="offered loads/s for latency")
    p.add_argument("--generators", type=int, default=200)
    p.add_argument("--accounts", type=int, default=1_000)
    p.add_argument("--loads-per-account", type=int, default=30)
    p.add_argument("--invoicing-runs", type=int, default=1)
    return p.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks, print the table; exit 1 when one crashed."""
    args = parse(argv)
    chosen = args.only or list(ALL)
    results: list[Result] = []
    crashed: list[str] = []
    for name in chosen:
        print(f"== {name}", flush=True)
        try:
            if name == "replay":
                results += await asyncio.to_thread(
                    replay.run, KAFKA_BOOTSTRAP, events=args.replay_events, runs=args.runs,
                    small_events=args.replay_small_events)
            elif name == "append":
                results += await append.run(PG_ADMIN_URL, KAFKA_BOOTSTRAP,
                                            events=args.append_events, batch=args.append_batch,
                                            runs=args.runs)
            elif name == "ingest":
                results += await ingest.run(PG_ADMIN_URL, KAFKA_BOOTSTRAP,
                                            duration=args.duration, batch=args.batch,
                                            rate=args.rate, runs=args.runs,
                                            generators=args.generators)
            else:
                results += await invoicing.run(PG_ADMIN_URL, accounts=args.accounts,
                                               loads=args.loads_per_account,
                                               runs=args.invoicing_runs)
        except Exception as exc:
            crashed.append(name)
            print(f"  {name} FAILED: {exc!r}", flush=True)
    print()
    print(table(results))
    if crashed:
        print(f"\nfailed: {', '.join(crashed)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
