"""A small province, generated from a seed, run through the services' HTTP APIs.

Collectors' devices scan loads in offline batches (with retried scans and refused,
unsorted waste), the station weighs, allocates, seals and dispatches, plants receive
(one partial refusal, redirected) and treat. The result is the ground truth: what was
sent, what the services accepted, grams by category, the expected invoices.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import issue_token

from wastetrail.simulate import epr as epr_api
from wastetrail.simulate.month_end import bill_late_loads, expected_invoices, month_end
from wastetrail.simulate.truth import FateTruth, wait_for_consumers

# domain.md: food ~55 %, other ~25 %, recyclable ~15 %, hazardous ~1 % (bulky is rare
# and collected on request), i.e. ~96 % of what a household generates is sorted into
# these. Grams per person per day: drawn so that what is sorted averages the 2019
# national figures the provinces' target files assume (1,080 g urban, 450 g rural).
SHARES = {"food": 0.55, "other": 0.25, "recyclable": 0.15, "hazardous": 0.01}
GRAMS_PER_PERSON_DAY = {"urban": (1_000, 1_250), "rural": (400, 540)}
# Household-days whose waste is not collected at all (bin not set out, a missed street):
# what keeps real collection rates below 100 % — about 97 % urban and 92 % rural here,
# against the Cần Thơ targets of 95.8 % and 90 %.
MISSED = {"urban": 0.02, "rural": 0.07}
PLANT_A = "plant-recycle"  # recycling + composting: recyclable, food
PLANT_B = "plant-landfill"  # incineration, sanitary and direct landfill: everything
ROUTE = {"recyclable": PLANT_A, "food": PLANT_A, "other": PLANT_B, "hazardous": PLANT_B,
         "bulky": PLANT_B}
# HTTP answers are JSON documents read field by field, as a device would.
Json = dict[str, Any]
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Endpoints:
    """Where the services listen."""

    collection: str = "http://127.0.0.1:8001"
    transfer: str = "http://127.0.0.1:8002"
    treatment: str = "http://127.0.0.1:8003"
    billing: str = "http://127.0.0.1:8004"
    sandbox: str = "http://127.0.0.1:8009"


@dataclass
class Generator:
    """A household or organisation."""

    code: str
    kind: str
    commune: str
    commune_class: str
    members: int
    tag: str
    generator_id: str = ""


@dataclass
class Province:
    """Everything the seed decided."""

    run: str
    province: str
    month_start: date
    communes: list[tuple[str, str]]  # (code, urban|rural)
    generators: list[Generator]
    collector: str
    vehicles: list[tuple[str, str, int]]  # (vehicle id, commune, tare grams)
    station: str
    plants: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    tariffs: dict[str, str] = field(default_factory=dict)  # commune → billing tariff id


def build_province(seed: int, households: int, run: str) -> Province:
    """Generate communes, households, organisations, the collector, station and plants."""
    rng = random.Random(seed)
    communes = [(f"{run}-ward1", "urban"), (f"{run}-ward2", "urban"), (f"{run}-xa3", "rural")]
    # Each commune's tariff covers the customer classes living there: organisations only
    # in ward 2, whose (HCMC-style) tariff prices organisations per kg.
    tariffs = {communes[0][0]: "hanoi_per_kg_example", communes[1][0]: "hcmc_tiered_example",
               communes[2][0]: "rural_flat_example"}
    gens: list[Generator] = []
    for i in range(households):
        commune, klass = communes[i % len(communes)]
        code = f"{run}-hh{i:05d}"
        gens.append(Generator(code, "household", commune, klass, rng.randint(1, 6),
                              f"TAG-{code}"))
    for i in range(max(1, households // 50)):
        commune, klass = communes[1]
        code = f"{run}-org{i:03d}"
        gens.append(Generator(code, "organisation", commune, klass, rng.randint(10, 40),
                              f"TAG-{code}"))
    vehicles = [(f"{run}-veh{k}", communes[k][0], rng.randint(4_000, 6_000) * 1000)
                for k in range(len(communes))]
    plants = {
        PLANT_A: (["recycling", "composting"], ["recyclable", "food"]),
        PLANT_B: (["incineration_energy_recovery", "sanitary_landfill", "direct_landfill"],
                  ["other", "hazardous", "bulky", "food", "recyclable"]),
    }
    return Province(run, f"SIM-{seed}", date(2026, 10, 1), communes, gens, f"{run}-coll",
                    vehicles, f"{run}-station", plants, tariffs)


class Api:
    """A thin HTTP client: raises with the body on an unexpected status."""

    def __init__(self, client: httpx.AsyncClient, base: str, token: str) -> None:
        self.client, self.base, self.headers = client, base, {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: object = None,
                   ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        resp = await self.client.request(method, self.base + path, json=body,
                                         headers=self.headers)
        if resp.status_code not in ok:
            raise RuntimeError(f"{method} {self.base}{path} → {resp.status_code}: "
                               f"{resp.text[:400]}")
        return resp

    async def json(self, method: str, path: str, body: object = None) -> Json:
        data: Json = (await self.call(method, path, body)).json()
        return data


async def _retry(step: str, attempt: Callable[[], Awaitable[Any]], limit: float = 60.0
                 ) -> Any:
    """Retry while a consumer catches up (the other side learns through Kafka)."""
    deadline = time.monotonic() + limit
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return await attempt()
        except RuntimeError as exc:
            last = exc
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{step}: gave up after {limit:.0f}s: {last}")


def _secret() -> str:
    from wastetrail_runtime.settings import ServiceSettings

    return ServiceSettings(local_dir=REPO / ".local").resolved_jwt_secret()


async def simulate(seed: int, households: int, days: int, ep: Endpoints, secret: str,
                   run: str | None = None, log: bool = True,
                   with_billing: bool = True, pay: bool = True, late_sync: bool = True,
                   kafka_bootstrap: str | None = None, topic_prefix: str = "",
                   ) -> dict[str, object]:
    """Run the province for ``days`` days through the services; return the ground truth.

    ``late_sync``: one device (in a ward priced per kg) syncs its last day's trip only
    after the month was invoiced, so billing bills those loads with supplementary invoices.
    ``kafka_bootstrap``: where to read the consumers' positions before the fate of every
    load is checked against the simulator's truth (without it, the check waits on the
    services' answers only)."""
    # Ids are deterministic from the seed: the demo starts from an empty province.
    run = run or f"s{seed}"
    p = build_province(seed, households, run)
    rng = random.Random(seed * 7919 + 1)

    def say(msg: str) -> None:
        if log:
            print(f"[simulate] {msg}", flush=True)

    def tok(sub: str, role: Role, device_id: str | None = None,
            site_id: str | None = None, account_id: str | None = None) -> str:
        return issue_token(secret, sub, role, device_id=device_id, site_id=site_id,
                           account_id=account_id)

    async with httpx.AsyncClient(timeout=60) as client:
        coll_admin = Api(client, ep.collection, tok("sim-admin", Role.ADMIN))
        tr_admin = Api(client, ep.transfer, tok("sim-admin", Role.ADMIN))
        tm_admin = Api(client, ep.treatment, tok("sim-admin", Role.ADMIN))
        station = Api(client, ep.transfer, tok("station-op", Role.STATION_OPERATOR,
                                               site_id=p.station))
        plants = {pid: Api(client, ep.treatment, tok(f"op-{pid}", Role.PLANT_OPERATOR,
                                                     site_id=pid)) for pid in p.plants}
        auditor_t = Api(client, ep.treatment, tok("sim-auditor", Role.AUDITOR))

        # --- registries -------------------------------------------------------------
        say(f"registering {len(p.generators)} generators, 1 collector, "
            f"{len(p.vehicles)} vehicles, 1 station, 2 plants (run {run})")
        sem = asyncio.Semaphore(8)

        async def reg(g: Generator) -> None:
            async with sem:
                out = await coll_admin.json("POST", "/v1/generators", {
                    "code": g.code, "kind": g.kind, "name": f"Hộ {g.code}", "commune": g.commune,
                    "commune_class": g.commune_class, "members": g.members, "tag_ids": [g.tag]})
                g.generator_id = str(out["id"])
        await asyncio.gather(*(reg(g) for g in p.generators))
        await coll_admin.call("POST", "/v1/collectors", {
            "collector_id": p.collector, "name": "Công ty Môi trường Đô thị",
            "communes": sorted({g.commune for g in p.generators})})
        for vid, _commune, tare in p.vehicles:
            await coll_admin.call("POST", "/v1/vehicles", {
                "vehicle_id": vid, "plate": f"29C-{run[-6:]}.{vid[-1]}",
                "collector_id": p.collector,
                "capacity_grams": 8_000_000, "registered_tare_grams": tare})
            await coll_admin.call("POST", "/v1/devices", {
                "device_id": f"{vid}-dev", "collector_id": p.collector, "vehicle_id": vid})
        for pid, (methods, cats) in p.plants.items():
            await tm_admin.call("POST", "/v1/plants", {
                "plant_id": pid, "name": pid, "commune": p.communes[2][0], "methods": methods,
                "categories": cats, "daily_capacity_grams": 500_000_000}, ok=(200, 201, 409))
        await tr_admin.call("POST", "/v1/stations", {
            "station_id": p.station, "name": "Trạm trung chuyển", "commune": p.communes[0][0],
            "capacity_grams": 200_000_000,
            "categories": ["recyclable", "food", "other", "hazardous", "bulky"]},
            ok=(200, 201, 409))
        devices = {vid: Api(client, ep.collection, tok(f"{vid}-dev", Role.COLLECTOR,
                                                       device_id=f"{vid}-dev"))
                   for vid, _c, _t in p.vehicles}

        truth_loads: dict[str, Json] = {}  # load id → facts
        sent = accepted = duplicates = rejected = refusals = 0
        grams_by_cat: dict[str, int] = defaultdict(int)
        trips: list[tuple[str, str, int, int]] = []  # trip, vehicle, tare, scanned grams
        by_gen = defaultdict(list)
        for g in p.generators:
            by_gen[g.commune].append(g)
        batches_done: list[Json] = []
        truth = FateTruth()
        partial_done = False
        method_grams: dict[str, int] = defaultdict(int)

        async def run_trip(day: int, d0: datetime, vid: str, commune: str, tare: int) -> str:
            """One vehicle's round: start, scans synced in batches, refusals, close, weighing."""
            nonlocal sent, accepted, duplicates, rejected, refusals
            dev = devices[vid]
            trip_id = f"{vid}-d{day:02d}"
            await dev.call("POST", "/v1/trips", {
                "trip_id": trip_id, "vehicle_id": vid, "crew": ["crew-a", "crew-b"],
                "commune": commune, "started_at": d0.isoformat()})
            scans: list[Json] = []
            refs: list[Json] = []
            for n, g in enumerate(by_gen[commune]):
                at = (d0 + timedelta(minutes=1 + n // 4)).isoformat()
                if rng.random() < 0.01:  # unsorted: refused, charged nothing here
                    refs.append({"idempotency_key": f"{trip_id}-ref-{g.code}",
                                 "trip_id": trip_id, "tag_id": g.tag, "reason": "unsorted",
                                 "refused_at": at})
                    continue
                if rng.random() < MISSED[g.commune_class]:
                    continue  # not collected today: generated, never scanned
                per_day = g.members * rng.randint(*GRAMS_PER_PERSON_DAY[g.commune_class])
                amounts = {"food": int(per_day * SHARES["food"]),
                           "other": int(per_day * SHARES["other"])}
                if rng.random() < 1 / 3:
                    amounts["recyclable"] = int(3 * per_day * SHARES["recyclable"])
                if rng.random() < 0.03:
                    amounts["hazardous"] = int(30 * per_day * SHARES["hazardous"])
                if rng.random() < 0.004:
                    amounts["bulky"] = rng.randint(10_000, 30_000)
                for cat, grams in amounts.items():
                    scans.append({"idempotency_key": f"{trip_id}-{g.code}-{cat}",
                                  "trip_id": trip_id, "tag_id": g.tag, "category": cat,
                                  "grams": max(grams, 1), "collected_at": at})
            # Offline: the device syncs in batches of up to 200; a few are re-sent.
            retried = rng.sample(scans, k=min(3, len(scans)))
            chunks = [scans[i:i + 200] for i in range(0, len(scans), 200)]
            if retried:
                chunks.append(retried)
            for chunk in chunks:
                res = await dev.json("POST", "/v1/loads/batch", {"scans": chunk})
                sent += len(chunk)
                for item, scan in zip(res["results"], chunk, strict=True):
                    if item["status"] == "accepted":
                        accepted += 1
                        grams_by_cat[str(scan["category"])] += int(scan["grams"])
                        truth_loads[item["id"]] = {
                            "generator": scan["tag_id"], "category": scan["category"],
                            "grams": scan["grams"], "day": str(scan["collected_at"])[:10],
                            "trip": trip_id}
                    elif item["status"] == "duplicate":
                        duplicates += 1
                    else:
                        rejected += 1
            if refs:
                out = await dev.json("POST", "/v1/refusals/batch", {"refusals": refs})
                refusals += int(out["accepted"])
            scanned = sum(int(v["grams"]) for v in truth_loads.values()
                          if v["trip"] == trip_id)
            await dev.call("POST", f"/v1/trips/{trip_id}/close", {
                "declared_total_grams": scanned,
                "closed_at": (d0 + timedelta(hours=4)).isoformat()})
            trips.append((trip_id, vid, tare, scanned))
            # Weighbridge: gross within a fraction of a percent of tare + scans.
            gross = tare + scanned + rng.randint(-scanned // 400, scanned // 400)
            truth.trip_net[trip_id] = gross - tare
            await _retry("weigh in", partial(
                station.call, "POST", f"/v1/stations/{p.station}/weighings",
                {"trip_id": trip_id, "vehicle_id": vid, "gross_grams": gross}))
            await _retry("weigh out", partial(
                station.call, "POST", f"/v1/stations/{p.station}/weighings/{trip_id}/out",
                {"tare_grams": tare}))
            return trip_id

        async def dispatch(day_trips: list[str]) -> list[Json]:
            """The station reconciles the trips and dispatches one batch per category."""
            dispatched: list[Json] = []
            # Station: wait for reconciliations, then one batch per category.
            shares: dict[str, list[str]] = defaultdict(list)
            for trip_id in day_trips:
                async def reconciled(t: str = trip_id) -> Json:
                    view = await station.json("GET", f"/v1/trips/{t}/reconciliation")
                    if not view.get("shares"):
                        raise RuntimeError(f"trip {t} not reconciled yet: {view.get('status')}")
                    return view
                view = await _retry("reconcile", reconciled)
                for cat in view["shares"]:
                    shares[str(cat)].append(trip_id)
            for cat, tids in sorted(shares.items()):
                batch = await station.json("POST", f"/v1/stations/{p.station}/batches",
                                           {"category": cat})
                bid = str(batch["batch_id"])
                truth.batches[bid] = (cat, list(tids))
                for t in tids:
                    await station.call("POST", f"/v1/batches/{bid}/allocations", {"trip_id": t})
                await station.call("POST", f"/v1/batches/{bid}/seal",
                                   {"seal_number": f"SEAL-{bid[-12:]}"})
                plant = ROUTE[cat]
                out = await _retry("dispatch", partial(
                    station.json, "POST", f"/v1/batches/{bid}/dispatch",
                    {"plant_id": plant, "vehicle_id": p.vehicles[0][0]}))
                dispatched.append({"batch_id": bid, "category": cat, "plant": plant,
                                   "grams": out.get("dispatched_grams")
                                   or out.get("total_grams")})
            batches_done.extend(dispatched)
            return dispatched

        # One device stays offline on the last day until after month end (a collector out
        # of coverage): its trip reaches the services after the month was invoiced, and
        # billing bills those loads with supplementary invoices. The vehicle of a ward
        # priced per kg, so that the late loads change the bills.
        offline: list[tuple[int, datetime, str, str, int]] = []
        late_vehicle = next((v for v, c, _t in p.vehicles
                             if p.tariffs[c] == "hanoi_per_kg_example"), p.vehicles[-1][0])
        for day in range(days):
            d0 = datetime.combine(p.month_start + timedelta(days=day), datetime.min.time(),
                                  tzinfo=UTC) + timedelta(hours=22)  # 05:00 ICT
            day_trips: list[str] = []
            for vid, commune, tare in p.vehicles:
                if late_sync and day == days - 1 and vid == late_vehicle:
                    offline.append((day, d0, vid, commune, tare))
                    continue
                day_trips.append(await run_trip(day, d0, vid, commune, tare))
            dispatched = await dispatch(day_trips)
            say(f"day {day + 1}/{days}: {len(day_trips)} trips, {len(dispatched)} batches, "
                f"{accepted} loads so far")

        # --- EPR: deposits paid, bottles returned before the recyclables are treated ----
        tag_to_id = {g.tag: g.generator_id for g in p.generators}
        for facts in truth_loads.values():
            facts["generator_id"] = tag_to_id[str(facts["generator"])]
        claim_ids: list[str] = []
        returns: list[tuple[str, str, int]] = []
        epr: dict[str, object] = {"skipped": True}
        if with_billing:
            period = p.month_start.strftime("%Y-%m")
            await epr_api.open_scheme(client, ep.billing, {
                "admin": tok("sim-admin", Role.ADMIN),
                "producer": tok(epr_api.PRODUCER, Role.PRODUCER, account_id=epr_api.PRODUCER),
                "cashier": tok("sim-cashier", Role.CASHIER)}, p.province, period)
            seen: set[str] = set()
            for lid, facts in truth_loads.items():
                gid = str(facts["generator_id"])
                if facts["category"] != "recyclable" or gid in seen or len(returns) >= 6:
                    continue
                seen.add(gid)
                # A handful of 25 g bottles, well inside the load's recyclable mass.
                units = max(1, min(12, int(str(facts["grams"])) // epr_api.UNIT_GRAMS // 2))
                returns.append((lid, gid, units))
            claim_ids = await epr_api.record_returns(
                client, ep.billing, tok("sim-collector", Role.COLLECTOR,
                                        device_id=f"{p.vehicles[0][0]}-dev"),
                p.province, returns)
            say(f"EPR: {len(returns)} households returned "
                f"{sum(u for _l, _g, u in returns)} PET bottles ({len(claim_ids)} claims pending)")

        # --- plants receive and treat ------------------------------------------------
        async def receive(b: Json) -> None:
            nonlocal partial_done
            plant = str(b["plant"])
            api = plants[plant]

            async def arrived() -> Json:
                inc = await api.json("GET", f"/v1/plants/{plant}/incoming")
                for row in inc["batches"]:
                    if row["batch_id"] == b["batch_id"]:
                        found: Json = row
                        return found
                raise RuntimeError(f"batch {b['batch_id']} not at {plant} yet")
            row = await _retry("incoming", arrived)
            grams = int(row.get("dispatched_grams") or b["grams"] or 1)
            measured = grams - grams // 500
            body: dict[str, object] = {"batch_id": b["batch_id"], "measured_grams": measured,
                                       "status": "ACCEPTED"}
            partial = not partial_done and plant == PLANT_A and b["category"] == "food"
            if partial:
                partial_done = True
                body.update(status="PARTIALLY_REFUSED", refused_grams=measured // 10,
                            refusal_reason="contaminated with plastic film")
            rec = await _retry("receive", lambda: api.json(
                "POST", f"/v1/plants/{plant}/receipts", body))
            rid = str(rec["receipt_id"])
            bid = str(b["batch_id"])
            await _treat(api, rid, plant, int(rec["accepted_grams"]), str(b["category"]), bid)
            if partial:
                red = await api.json("POST", f"/v1/receipts/{rid}/redirects",
                                     {"destination_kind": "plant", "destination_id": PLANT_B})
                b_api = plants[PLANT_B]
                rec2 = await _retry("receive redirect", lambda: b_api.json(
                    "POST", f"/v1/plants/{PLANT_B}/receipts",
                    {"redirect_id": red["redirect_id"], "measured_grams": red["grams"],
                     "status": "ACCEPTED"}))
                await _treat(b_api, str(rec2["receipt_id"]), PLANT_B,
                             int(rec2["accepted_grams"]), "food", bid)

        async def _treat(api: Api, rid: str, plant: str, grams: int, cat: str,
                         batch_id: str) -> None:
            if grams <= 0:
                return
            if plant == PLANT_A:
                split = {"recycling": grams} if cat == "recyclable" else {"composting": grams}
            elif cat == "hazardous":
                split = {"incineration_energy_recovery": grams}
            else:
                inc = grams * 45 // 100
                direct = grams * 20 // 100
                split = {"incineration_energy_recovery": inc, "direct_landfill": direct,
                         "sanitary_landfill": grams - inc - direct}
            split = {k: v for k, v in split.items() if v > 0}
            await api.call("POST", f"/v1/receipts/{rid}/treatments", {"methods": split})
            for k, v in split.items():
                method_grams[k] += v
                truth.treated[batch_id][k] += v

        say(f"plants receiving {len(batches_done)} batches")
        for b in batches_done:
            await receive(b)

        # --- month end: billing ------------------------------------------------------
        gens = [{"generator_id": g.generator_id, "commune": g.commune,
                 "commune_class": g.commune_class, "tariff": p.tariffs[g.commune],
                 "customer_class": "household" if g.kind == "household"
                 else "organisation"} for g in p.generators]
        billing: dict[str, object]
        credits: dict[str, int] = {}
        if with_billing:
            say("EPR: waiting for the plant's recycling to confirm and credit the claims")
            try:
                epr = await epr_api.wait_credited(
                    client, ep.billing, tok("sim-auditor", Role.AUDITOR), claim_ids, say)
                epr["returns"] = [{"load_id": lid, "generator_id": gid, "units": u}
                                  for lid, gid, u in returns]
                got = epr["credited_by_generator"]
                assert isinstance(got, dict)
                credits = {str(k): int(v) for k, v in got.items()}
            except Exception as exc:
                epr = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            say("month end: tariffs, invoicing, payments")
            try:
                billing = await month_end(
                    client, ep.billing, ep.sandbox,
                    {"admin": tok("sim-admin", Role.ADMIN),
                     "auditor": tok("sim-auditor", Role.AUDITOR),
                     "cashier": tok("sim-cashier", Role.CASHIER)},
                    gens, truth_loads, p.month_start.strftime("%Y-%m"), say,
                    credits=credits, pay=pay)
            except Exception as exc:
                billing = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        else:
            billing = {"skipped": True}

        # --- the offline device comes back: its trip after month end ----------------------
        late: dict[str, object] = {"skipped": True}
        if offline:
            synced = set(truth_loads)
            say(f"an offline device syncs its trip of day {offline[0][0] + 1} after month end")
            late_trips = [await run_trip(*trip) for trip in offline]
            for b in await dispatch(late_trips):
                await receive(b)
            arrived = [lid for lid in truth_loads if lid not in synced]
            for lid in arrived:
                truth_loads[lid]["generator_id"] = tag_to_id[str(truth_loads[lid]["generator"])]
            if with_billing and "error" not in billing:
                try:
                    late = await bill_late_loads(
                        client, ep.billing,
                        {"admin": tok("sim-admin", Role.ADMIN),
                         "auditor": tok("sim-auditor", Role.AUDITOR)},
                        gens, truth_loads, p.month_start.strftime("%Y-%m"), say,
                        late=len(arrived), credits=credits)
                except Exception as exc:
                    late = {"error": f"{type(exc).__name__}: {exc}"[:500]}

        # --- every load's fate against the truth, once the consumers are at the end ------
        say(f"checking the fate of every one of {len(truth_loads)} loads against the truth")
        if kafka_bootstrap is not None:
            lag = await wait_for_consumers(kafka_bootstrap, topic_prefix)
            if lag:
                say(f"consumers still behind after waiting: {lag}")
        fates = await _fates_by_trip(auditor_t, sorted(truth.trip_net))
        fate_mismatches = truth.mismatches(truth_loads, fates, "fate API")
        wrong = {lid for lid in truth_loads if any(lid in m for m in fate_mismatches)}

    expected = expected_invoices(gens, truth_loads, p.month_start.strftime("%Y-%m"), credits)
    total_treated = sum(method_grams.values()) or 1
    result: dict[str, object] = {
        "run": run, "seed": seed, "province": p.province, "households": households,
        "organisations": sum(1 for g in p.generators if g.kind == "organisation"),
        "days": days, "month": p.month_start.strftime("%Y-%m"),
        "communes": [{"code": c, "class": k} for c, k in p.communes],
        "loads_sent": sent, "loads_collected": accepted, "duplicates": duplicates,
        "rejected": rejected, "refusals": refusals,
        "loads_accounted": len(truth_loads) - len(wrong),
        "unaccounted_loads": sorted(wrong)[:20],
        "fate_checked": len(fates), "fate_mismatches": len(fate_mismatches),
        "fate_mismatch_examples": fate_mismatches[:10],
        "grams_by_category": dict(grams_by_cat), "trips": len(trips),
        "batches": len(batches_done),
        "tonnes_by_method": {k: round(v / 1e6, 3) for k, v in sorted(method_grams.items())},
        "direct_landfill_share": round(method_grams.get("direct_landfill", 0) / total_treated, 4),
        "direct_landfill_target": 0.5,
        "expected_invoices": expected,
        "billing": billing,
        "late_sync": late,
        "epr": epr,
        # Not written to simulation.json: for the audit's trace check after the replay.
        "_truth": (truth, truth_loads),
    }
    return result


async def _fates_by_trip(api: Api, trips: list[str]) -> dict[str, dict[str, int]]:
    """Every load's grams per treatment method, from the fate API, one call per trip."""
    sem = asyncio.Semaphore(4)
    fates: dict[str, dict[str, int]] = {}

    async def one(trip_id: str) -> None:
        async with sem:
            out = await api.json("GET", f"/v1/trips/{trip_id}/fates")
        for f in out["loads"]:
            fates[str(f["load"]["load_id"])] = {str(m): int(g) for m, g
                                                in f["treated_by_method"].items()}
    await asyncio.gather(*(one(t) for t in trips))
    return fates


async def run_simulation(seed: int, households: int, days: int, out: str,
                         kafka_bootstrap: str | None = None) -> dict[str, object]:
    """`wastetrail simulate`: run against the local stack, write ``<out>/simulation.json``."""
    result = await simulate(seed, households, days, Endpoints(), _secret(),
                            kafka_bootstrap=kafka_bootstrap)
    _write(Path(out) / "simulation.json", result)
    return result


def _write(path: Path, result: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    path.write_text(json.dumps(public, ensure_ascii=False, indent=2), encoding="utf-8")
