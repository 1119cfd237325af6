"""What the simulator knows of every load's fate, checked against the services and the log.

The simulator decided every weight: each trip's gross and tare at the station, which trips
of which category went into which batch (it allocates whole category shares), what each
plant measured, refused, redirected and treated by method. From those alone, with exact
fractions and no code of the services, a load L of category C on trip T with scanned
grams g reached, per treatment method m::

    g × N_T / S_T  /  Σ_{T' in B} N_T' × S_{T',C} / S_T'  ×  m treated for batch B

(N: the trip's net, S: its scanned grams, S_C: of category C; B: the batch T's C went
into; "m treated for B" counts its receipt and the receipt of its redirected part). The
services round every share to whole grams (largest remainder, twice: over a batch's trips,
then over a trip's loads), so a load may differ from the exact share by less than 3 g per
method — and per batch, the loads' grams add up to what the plants treated **exactly**.

The check waits for the services' consumers to reach the end of the log (their committed
positions), never for a number of retries, so the answer does not depend on the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

Json = dict[str, object]
TOLERANCE_GRAMS = 3  # two largest-remainder roundings, each under a gram, plus category shares


@dataclass
class FateTruth:
    """The simulator's record of the chain, and the expected fate of each load."""

    trip_net: dict[str, int] = field(default_factory=dict)              # trip → net grams
    batches: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # → (cat, trips)
    treated: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))  # batch → method → g

    def expected(self, loads: Mapping[str, Json]) -> dict[str, dict[str, Fraction]]:
        """Exact grams per method of every load whose batch was treated."""
        scanned: dict[str, int] = defaultdict(int)
        by_category: dict[tuple[str, str], int] = defaultdict(int)
        for facts in loads.values():
            trip, cat, grams = str(facts["trip"]), str(facts["category"]), _int(facts["grams"])
            scanned[trip] += grams
            by_category[(trip, cat)] += grams
        batch_of: dict[tuple[str, str], str] = {}
        totals: dict[str, Fraction] = {}
        for batch_id, (cat, trips) in self.batches.items():
            totals[batch_id] = sum((Fraction(self.trip_net[t] * by_category[(t, cat)], scanned[t])
                                    for t in trips), Fraction(0))
            for t in trips:
                batch_of[(t, cat)] = batch_id
        out: dict[str, dict[str, Fraction]] = {}
        for load_id, facts in loads.items():
            trip, cat, grams = str(facts["trip"]), str(facts["category"]), _int(facts["grams"])
            batch = batch_of.get((trip, cat))
            if batch is None or not totals[batch]:
                out[load_id] = {}
                continue
            share = Fraction(grams * self.trip_net[trip], scanned[trip]) / totals[batch]
            out[load_id] = {m: share * g for m, g in self.treated[batch].items() if g}
        return out

    def mismatches(self, loads: Mapping[str, Json], got: Mapping[str, Mapping[str, int]],
                   source: str) -> list[str]:
        """Where ``got`` (load → grams per method) disagrees with the truth; [] if nowhere."""
        wrong: list[str] = []
        expected = self.expected(loads)
        for load_id in loads:
            mine = got.get(load_id)
            if mine is None:
                wrong.append(f"{source}: load {load_id} has no fate")
                continue
            want = expected[load_id]
            for method in set(want) | {m for m, g in mine.items() if g}:
                diff = abs(mine.get(method, 0) - want.get(method, Fraction(0)))
                if diff > TOLERANCE_GRAMS:
                    wrong.append(f"{source}: load {load_id} {method} {mine.get(method, 0)} g, "
                                 f"truth {float(want.get(method, 0)):.1f} g")
        # Exact: per batch, the loads' grams of each method add up to what was treated.
        summed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        batch_of = {(t, cat): b for b, (cat, trips) in self.batches.items() for t in trips}
        for load_id, facts in loads.items():
            home = batch_of.get((str(facts["trip"]), str(facts["category"])))
            if home is not None:
                for method, grams in got.get(load_id, {}).items():
                    summed[home][method] += grams
        for batch_id, methods in self.treated.items():
            have = {m: g for m, g in summed[batch_id].items() if g}
            want_exact = {m: g for m, g in methods.items() if g}
            if have != want_exact:
                wrong.append(f"{source}: batch {batch_id} loads sum to {have}, "
                             f"plants treated {want_exact}")
        return wrong


def _int(value: object) -> int:
    return int(str(value))


async def wait_for_consumers(bootstrap: str, prefix: str, patience: float = 600
                             ) -> dict[str, int]:
    """Wait until every service consumer group has committed up to the end of its topic.

    Returns the remaining lag per group ({} when all caught up); waits at most ``timeout``
    seconds of ``patience`` (the caller reports what is left; no retry count decides).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from wastetrail_contracts.topics import CONSUMERS, EVENT_TOPICS, kafka_client_options

    groups = {f"{prefix}{name}": EVENT_TOPICS[source].qualified(prefix)
              for consumers in CONSUMERS.values() for name, source in consumers}
    options = kafka_client_options()  # the auditor's credentials on a SASL broker
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **options)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await admin.start()
    await probe.start()
    try:
        deadline = time.monotonic() + patience
        while True:
            lag: dict[str, int] = {}
            for group, topic in groups.items():
                partitions = probe.partitions_for_topic(topic)
                if not partitions:
                    await probe.topics()  # refresh the metadata once, then ask again
                    partitions = probe.partitions_for_topic(topic) or set()
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                ends = await probe.end_offsets(tps)
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                behind = 0
                for tp, end in ends.items():
                    meta = committed.get(tp)
                    position = meta.offset if meta is not None and meta.offset >= 0 else 0
                    behind += max(int(end) - position, 0)
                if behind:
                    lag[group] = behind
            if not lag or time.monotonic() > deadline:
                return lag
            await asyncio.sleep(0.5)
    finally:
        await probe.stop()
        await admin.close()


def trace_fates(projection: str, load_ids: list[str]) -> dict[str, dict[str, int]]:
    """Every load's grams per treatment method as ``audit trace`` derives them from the log.

    The trace of a load computes its whole trip (``trace.trip_facts`` → the fate rule); the
    check computes each trip once for all its loads, and runs the full ``trace_load`` of
    one load per (trip, category) to make sure the trace reports those same numbers.
    """
    import sqlite3

    from wastetrail_audit.trace import trace_load, trip_facts
    from wastetrail_contracts.fate import treated_by_method, trip_fates

    conn = sqlite3.connect(projection)
    conn.row_factory = sqlite3.Row
    try:
        trips: dict[str, list[str]] = defaultdict(list)
        for load_id in load_ids:
            row = conn.execute("SELECT trip_id FROM load_collected WHERE load_id = ? LIMIT 1",
                               (load_id,)).fetchone()
            if row is not None:
                trips[str(row["trip_id"])].append(load_id)
        out: dict[str, dict[str, int]] = {}
        for trip_id, members in trips.items():
            facts = trip_facts(conn, trip_id)
            trees = trip_fates(facts)
            category_of = {x.load_id: x.category for x in facts.loads}
            sampled: set[str] = set()
            for load_id in members:
                out[load_id] = {m.value: g for m, g in treated_by_method(trees[load_id]).items()}
                category = category_of[load_id]
                if category not in sampled:
                    sampled.add(category)
                    traced = trace_load(conn, load_id).data.get("treatment_split")
                    if traced != out[load_id]:
                        out[load_id] = {"trace disagrees with its own trip": -1}
        return out
    finally:
        conn.close()
