"""The annual indicator report's numbers, computed from the projection alone.

How each number is derived (year = calendar year in Asia/Ho_Chi_Minh time):

* **households, members** — generators of kind household whose latest registration or
  status change says active, by the commune of their registration; members also counts
  the people of active organisations (their waste is collected and counted too).
* **generated (estimated)** — members × grams per person per day (targets file, by
  urban/rural) × days in the year (or, with ``--estimate-over covered``, × the days from the
  year's first to its last collection).
* **collected** — Σ grams of the loads collected in the year (one per load_id).
* **treated by method** — the fate of the waste collected in the year, by category: each
  commune's part of a (trip, category) (its loads' grams of the category / the trip's
  scanned grams of the category) follows the trip's allocations into batches **of that
  category**, and gets the same share of each batch's receipt and treatment split.
  Direct-haul trips received at a plant count the same way, per received category.
* **collected and treated per regulations** — (treated − direct landfill) / generated.
* **direct-landfill share** — direct landfill / collected (the plans' wording: "so với
  lượng rác thải sinh hoạt được thu gom").
* **collection coverage** — households with at least one load in the year / households.
* **sorting compliance** — refusal rate = refusals / (loads + refusals); a commune
  "sorts" when any of its loads is food or recyclable waste.
* **custody gaps** — alerts raised in the year and not cleared, by the commune the alert
  names (else the commune of its load or trip); per alarm kind: raised in the year, cleared
  (by the event that closed the gap, or by hand), still open — per commune and province.
* **flow diagram** — by sorting category: households (per category) → station (or direct
  haul) → outcome; a category only flows through batches of that category.
* **fees billed / collected** — Σ invoice totals of the year's periods, by the account's
  commune; Σ payments on those invoices − Σ refunds of those payments.
* **cost recovery** — fees billed / Σ operating costs of the year's periods (province).
* **EPR recycling rate** per material — grams recycled (units of claims confirmed in the
  year × the packaging's unit grams) / grams placed on the market (units reported for the
  year's periods in this province × unit grams).
"""

from __future__ import annotations

import calendar
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

from wastetrail_contracts.enums import TreatmentMethod

from wastetrail_audit.targets import Target, Targets

METHODS = tuple(m.value for m in TreatmentMethod)
DIRECT = TreatmentMethod.DIRECT_LANDFILL.value
REFUSED = "refused_at_plant"
AWAITING = "awaiting_treatment"
NOT_RECEIVED = "not_received"
NOT_CONSOLIDATED = "not_consolidated"
DIRECT_HAUL = "direct_haul"
YEAR_OF = "strftime('%Y', {col}, '+7 hours')"  # event times are UTC; the year is Hà Nội's


def percent(numerator: float | int, denominator: float | int) -> Fraction | None:
    """numerator / denominator in percent, exactly (None when the denominator is 0)."""
    if not denominator:
        return None
    return Fraction(numerator) * 100 / Fraction(denominator)


@dataclass
class Indicators:
    """The numbers of one scope: a commune, or the province (all, urban, rural)."""

    scope: str
    commune_class: str
    households: int = 0
    members: int = 0
    households_served: int = 0
    generated_grams: int = 0
    collected_grams: int = 0
    treated: dict[str, float] = field(default_factory=dict)  # method → grams
    refused_at_plant_grams: float = 0.0
    loads: int = 0
    refusals: int = 0
    sorting_communes: int = 0
    communes: int = 0
    open_alerts: int = 0
    billed: int = 0
    fees_collected: int = 0

    @property
    def treated_grams(self) -> float:
        """Grams treated by any method."""
        return sum(self.treated.values())

    @property
    def direct_landfill_grams(self) -> float:
        """Grams sent to direct (unsanitary) landfill."""
        return self.treated.get(DIRECT, 0.0)

    def rates(self) -> dict[str, Fraction | None]:
        """Every ratio, in percent (exact)."""
        return {
            "collection": percent(self.collected_grams, self.generated_grams),
            "collected_treated": percent(
                self.treated_grams - self.direct_landfill_grams, self.generated_grams),
            "direct_landfill_share": percent(self.direct_landfill_grams, self.collected_grams),
            "collection_coverage": percent(self.households_served, self.households),
            "refusal_rate": percent(self.refusals, self.loads + self.refusals),
            "fee_collection": percent(self.fees_collected, self.billed),
        }

    def add(self, other: Indicators) -> None:
        """Add a commune's numbers into a province total."""
        for name in ("households", "members", "households_served", "generated_grams",
                     "collected_grams", "loads", "refusals", "open_alerts", "billed",
                     "fees_collected", "sorting_communes", "communes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.refused_at_plant_grams += other.refused_at_plant_grams
        for method, grams in other.treated.items():
            self.treated[method] = self.treated.get(method, 0.0) + grams


@dataclass(frozen=True)
class AlarmCount:
    """Custody alarms of one kind raised in the year, and how many were cleared."""

    raised: int
    cleared: int

    @property
    def open(self) -> int:
        """Raised and not (yet) cleared."""
        return self.raised - self.cleared

    def __add__(self, other: AlarmCount) -> AlarmCount:
        return AlarmCount(self.raised + other.raised, self.cleared + other.cleared)


@dataclass(frozen=True)
class Assessment:
    """An indicator against its target."""

    indicator: str
    value: Fraction | None
    target: Target

    @property
    def meets(self) -> bool | None:
        """None when the value is undefined (e.g. nothing generated)."""
        if self.value is None:
            return None
        return self.target.met_by(Decimal(self.value.numerator) / Decimal(self.value.denominator))


@dataclass(frozen=True)
class EprRate:
    """One material's recycling rate against its mandatory rate."""

    material: str
    placed_grams: int
    recycled_grams: int
    target: Target | None

    @property
    def rate(self) -> Fraction | None:
        """recycled / placed, in percent."""
        return percent(self.recycled_grams, self.placed_grams)

    @property
    def meets(self) -> bool | None:
        """None without a target or without anything placed on the market."""
        rate = self.rate
        if self.target is None or rate is None:
            return None
        return self.target.met_by(Decimal(rate.numerator) / Decimal(rate.denominator))


@dataclass
class ProvinceReport:
    """Everything the report shows."""

    province: str
    name: str
    year: int
    communes: list[Indicators]
    total: Indicators
    urban: Indicators
    rural: Indicators
    costs: int
    epr: list[EprRate]
    # (from node, to node, sorting category) → grams: households:<category> → station or
    # direct haul → outcome, one link per category so the diagram keeps the groups apart.
    flows: dict[tuple[str, str, str], float]
    assessments: dict[str, list[Assessment]]
    targets: Targets
    # scope (commune code or "province") → alarm kind → raised / cleared in the year.
    alarms: dict[str, dict[str, AlarmCount]] = field(default_factory=dict)
    # Days the generation estimate covers: the calendar year, or (``covered``) the days from
    # the first to the last collection in the log — for a province that started mid-year
    # or a simulation of a few days.
    generation_days: int = 0

    @property
    def cost_recovery(self) -> Fraction | None:
        """Fees billed / operating costs, in percent."""
        return percent(self.total.billed, self.costs)


def _rows(conn: sqlite3.Connection, sql: str, *params: object) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(sql, params)]


def _int(value: object) -> int:
    return int(str(value)) if value is not None else 0


def compute(
    conn: sqlite3.Connection, targets: Targets, year: int, *, estimate_over: str = "year"
) -> ProvinceReport:
    """The report's numbers for one province and year (see the module docstring).

    ``estimate_over="covered"`` estimates generation over the days from the year's first to
    its last collection (local dates) instead of the whole calendar year.
    """
    y = str(year)
    days = 366 if calendar.isleap(year) else 365
    if estimate_over == "covered":
        first, last = conn.execute(
            "SELECT MIN(date(collected_at, '+7 hours')), MAX(date(collected_at, '+7 hours')) "
            f"FROM loads WHERE {YEAR_OF.format(col='collected_at')} = ?", (y,)).fetchone()
        if first and last:
            days = (date.fromisoformat(str(last)) - date.fromisoformat(str(first))).days + 1
    elif estimate_over != "year":
        raise ValueError(f"estimate_over: 'year' or 'covered', not {estimate_over!r}")
    communes: dict[str, Indicators] = {}

    def commune(code: str) -> Indicators:
        if code not in communes:
            communes[code] = Indicators(scope=code, commune_class="unknown")
        return communes[code]

    latest_generators = (
        "SELECT r.generator_id, r.kind, r.commune, r.commune_class, r.members, "
        "CASE WHEN s._offset IS NOT NULL AND s._offset > r._offset THEN s.active "
        "ELSE r.active END AS active FROM generators r "
        "LEFT JOIN generator_status_changed s ON s.generator_id = r.generator_id "
        "AND s._topic = r._topic AND s._partition = r._partition AND s._offset = ("
        "SELECT MAX(_offset) FROM generator_status_changed x "
        "WHERE x.generator_id = r.generator_id)"
    )
    for code, cls in _rows(conn, f"SELECT commune, commune_class FROM ({latest_generators}) "
                                 "GROUP BY commune, commune_class ORDER BY COUNT(*) ASC"):
        commune(str(code)).commune_class = str(cls)  # the most common class wins (last)
    # Collected counts every load, organisations' too, so generation is estimated over
    # the people of every active generator (an organisation registers its staff).
    for code, households, members in _rows(
        conn, f"SELECT commune, SUM(CASE WHEN kind = 'household' THEN 1 ELSE 0 END), "
              f"SUM(members) FROM ({latest_generators}) WHERE active = 1 GROUP BY commune"):
        c = commune(str(code))
        c.households, c.members = _int(households), _int(members)
    for code, served in _rows(
        conn, f"SELECT g.commune, COUNT(DISTINCT l.generator_id) FROM loads l "
              f"JOIN ({latest_generators}) g ON g.generator_id = l.generator_id "
              f"WHERE g.kind = 'household' AND g.active = 1 "
              f"AND {YEAR_OF.format(col='l.collected_at')} = ? GROUP BY g.commune", y):
        commune(str(code)).households_served = _int(served)
    for code, loads, grams, sorted_ in _rows(
        conn, f"SELECT commune, COUNT(*), SUM(grams), "
              f"SUM(category IN ('food', 'recyclable')) FROM loads "
              f"WHERE {YEAR_OF.format(col='collected_at')} = ? GROUP BY commune", y):
        c = commune(str(code))
        c.loads, c.collected_grams = _int(loads), _int(grams)
        c.sorting_communes = 1 if _int(sorted_) > 0 else 0
    for code, refusals in _rows(
        conn, f"SELECT commune, COUNT(*) FROM refusals "
              f"WHERE {YEAR_OF.format(col='refused_at')} = ? GROUP BY commune", y):
        commune(str(code)).refusals = _int(refusals)
    _alerts(conn, y, commune)
    _fees(conn, y, commune)

    flows = _flows(conn, y)
    for (code, _category, _station, outcome), grams in flows.items():
        c = commune(code)
        if outcome in METHODS:
            c.treated[outcome] = c.treated.get(outcome, 0.0) + grams
        elif outcome == REFUSED:
            c.refused_at_plant_grams += grams

    wanted = set(targets.communes) if targets.communes is not None else set(communes)
    selected = [communes.get(code) or Indicators(code, "unknown") for code in sorted(wanted)]
    total = Indicators("province", "all")
    urban = Indicators("province:urban", "urban")
    rural = Indicators("province:rural", "rural")
    rate = {"urban": targets.generation.urban_grams_per_person_day,
            "rural": targets.generation.rural_grams_per_person_day}
    for c in selected:
        c.communes = 1
        c.generated_grams = c.members * rate.get(c.commune_class, rate["urban"]) * days
        total.add(c)
        if c.commune_class == "urban":
            urban.add(c)
        elif c.commune_class == "rural":
            rural.add(c)
    costs = _int(conn.execute(
        "SELECT SUM(amount) FROM costs WHERE period LIKE ?", (f"{y}-%",)).fetchone()[0])

    diagram: dict[tuple[str, str, str], float] = defaultdict(float)
    for (code, category, station, outcome), grams in flows.items():
        if code in wanted:
            diagram[(f"households:{category}", station, category)] += grams
            diagram[(station, outcome, category)] += grams
    for (code, category), collected in _collected_by_category(conn, y).items():
        if code not in wanted:
            continue
        attributed = sum(g for (c, k, _s, _o), g in flows.items() if (c, k) == (code, category))
        if collected - attributed > 0.5:
            diagram[(f"households:{category}", NOT_CONSOLIDATED, category)] += (
                collected - attributed)

    report = ProvinceReport(
        province=targets.province, name=targets.name, year=year, communes=selected,
        total=total, urban=urban, rural=rural, costs=costs,
        epr=_epr(conn, y, targets, wanted if targets.communes is not None else None),
        flows=dict(diagram), assessments={}, targets=targets, generation_days=days,
        alarms=_alarms(conn, y, wanted),
    )
    report.assessments = _assess(report)
    return report


def _collected_by_category(conn: sqlite3.Connection, y: str) -> dict[tuple[str, str], int]:
    return {(str(code), str(category)): _int(grams) for code, category, grams in _rows(
        conn, "SELECT commune, category, SUM(grams) FROM loads "
              f"WHERE {YEAR_OF.format(col='collected_at')} = ? GROUP BY commune, category", y)}


def _alarms(conn: sqlite3.Connection, y: str, wanted: set[str]
            ) -> dict[str, dict[str, AlarmCount]]:
    """Alarms raised in the year per scope (commune, and "province") and kind, with how
    many of them a later event cleared. An alarm counts for the commune it names, else the
    commune of the load or trip it is about; for the province either way."""
    sql = (
        "SELECT COALESCE(r.commune, l.commune, t.commune) AS c, r.kind, COUNT(*), "
        "COUNT(x.alert_id) FROM alert_raised r "
        "LEFT JOIN (SELECT DISTINCT alert_id FROM alert_cleared) x ON x.alert_id = r.alert_id "
        "LEFT JOIN loads l ON r.subject_kind = 'load' AND l.load_id = r.subject_id "
        "LEFT JOIN trip_started t ON r.subject_kind = 'trip' AND t.trip_id = r.subject_id "
        f"WHERE r.rowid IN (SELECT MIN(rowid) FROM alert_raised GROUP BY alert_id) "
        f"AND {YEAR_OF.format(col='r.raised_at')} = ? GROUP BY c, r.kind"
    )
    out: dict[str, dict[str, AlarmCount]] = defaultdict(dict)
    for code, kind, raised, cleared in _rows(conn, sql, y):
        count = AlarmCount(_int(raised), _int(cleared))
        if code is not None and str(code) in wanted:
            out[str(code)][str(kind)] = count
        province = out["province"].get(str(kind), AlarmCount(0, 0))
        out["province"][str(kind)] = province + count
    return {scope: dict(sorted(kinds.items())) for scope, kinds in out.items()}


def _alerts(conn: sqlite3.Connection, y: str, commune: Callable[[str], Indicators]) -> None:
    sql = (
        "SELECT COALESCE(r.commune, l.commune, t.commune) AS c, COUNT(*) FROM alert_raised r "
        "LEFT JOIN alert_cleared x ON x.alert_id = r.alert_id "
        "LEFT JOIN loads l ON r.subject_kind = 'load' AND l.load_id = r.subject_id "
        "LEFT JOIN trip_started t ON r.subject_kind = 'trip' AND t.trip_id = r.subject_id "
        f"WHERE x.alert_id IS NULL AND {YEAR_OF.format(col='r.raised_at')} = ? GROUP BY c"
    )
    for code, count in _rows(conn, sql, y):
        if code is not None:
            commune(str(code)).open_alerts += _int(count)


def _fees(conn: sqlite3.Connection, y: str, commune: Callable[[str], Indicators]) -> None:
    period = f"{y}-%"
    for code, billed in _rows(
        conn, "SELECT a.commune, SUM(i.total) FROM invoices i JOIN accounts a "
              "ON a.account_id = i.account_id WHERE i.period LIKE ? GROUP BY a.commune", period):
        commune(str(code)).billed = _int(billed)
    for code, paid in _rows(
        conn, "SELECT a.commune, SUM(p.amount) FROM payments p JOIN invoices i "
              "ON i.invoice_id = p.invoice_id JOIN accounts a ON a.account_id = i.account_id "
              "WHERE i.period LIKE ? GROUP BY a.commune", period):
        commune(str(code)).fees_collected += _int(paid)
    for code, refunded in _rows(
        conn, "SELECT a.commune, SUM(r.amount) FROM refunds r JOIN invoices i "
              "ON i.invoice_id = r.invoice_id JOIN accounts a ON a.account_id = i.account_id "
              "WHERE i.period LIKE ? GROUP BY a.commune", period):
        commune(str(code)).fees_collected -= _int(refunded)


def _outcomes(received: list[tuple[object, ...]], treated: dict[str, dict[str, int]]
              ) -> dict[str, int]:
    """What became of a batch (or direct-haul trip), in grams, from its receipts."""
    out: dict[str, int] = defaultdict(int)
    for receipt_id, accepted, refused in received:
        methods = treated.get(str(receipt_id), {})
        for method, grams in methods.items():
            out[method] += grams
        if _int(refused) > 0:
            out[REFUSED] += _int(refused)
        waiting = _int(accepted) - sum(methods.values())
        if waiting > 0:
            out[AWAITING] += waiting
    return dict(out)


def _flows(conn: sqlite3.Connection, y: str) -> dict[tuple[str, str, str, str], float]:
    """(commune, category, station or direct haul, outcome) → grams of the year's waste.

    A batch holds one category, and a trip's allocations to it are of that category's share
    of the trip (transfer apportions the weighed net by category), so the loads of one
    category share only in the batches of that category: a commune's part of a (trip,
    category) is its grams of that category over the trip's scanned grams of that
    category. Food never flows into a recyclables batch because both rode the same truck.
    """
    treated: dict[str, dict[str, int]] = defaultdict(dict)
    for receipt_id, method, grams in _rows(
        conn, "SELECT receipt_id, method, SUM(grams) FROM treatment_split "
              "GROUP BY receipt_id, method"):
        treated[str(receipt_id)][str(method)] = _int(grams)
    by_batch: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    by_trip: dict[tuple[str, str], list[tuple[object, ...]]] = defaultdict(list)
    for receipt_id, batch_id, trip_id, category, accepted, refused in _rows(
        conn, "SELECT receipt_id, batch_id, trip_id, category, accepted_grams, refused_grams "
              "FROM receipts"):
        if batch_id is not None:
            by_batch[str(batch_id)].append((receipt_id, accepted, refused))
        elif trip_id is not None:
            by_trip[(str(trip_id), str(category))].append((receipt_id, accepted, refused))
    batches: dict[str, tuple[str, int, dict[str, int]]] = {}
    for batch_id, station_id, total in _rows(
        conn, "SELECT batch_id, station_id, total_grams FROM batches"):
        received = by_batch.get(str(batch_id), [])
        fate = _outcomes(received, treated) if received else {NOT_RECEIVED: _int(total)}
        batches[str(batch_id)] = (f"station:{station_id}", _int(total), fate)

    flows: dict[tuple[str, str, str, str], float] = defaultdict(float)
    year_loads = (
        "WITH yl AS (SELECT trip_id, commune, category, SUM(grams) AS g FROM loads "
        f"WHERE {YEAR_OF.format(col='collected_at')} = ? GROUP BY trip_id, commune, category), "
        "ts AS (SELECT trip_id, category, SUM(grams) AS s FROM loads "
        "GROUP BY trip_id, category) "
    )
    for code, category, grams, scanned, batch_id, allocated in _rows(
        conn, year_loads + "SELECT yl.commune, yl.category, yl.g, ts.s, a.batch_id, a.grams "
              "FROM yl JOIN ts ON ts.trip_id = yl.trip_id AND ts.category = yl.category "
              "JOIN allocations a ON a.trip_id = yl.trip_id "
              "JOIN batches b ON b.batch_id = a.batch_id AND b.category = yl.category", y):
        batch = batches.get(str(batch_id))
        if batch is None or not scanned:
            continue
        station, total, fate = batch
        in_batch = _int(grams) / _int(scanned) * _int(allocated)  # the commune's grams in it
        for outcome, outcome_grams in fate.items():
            if total:
                flows[(str(code), str(category), station, outcome)] += (
                    in_batch * outcome_grams / total)
    for code, category, grams, scanned, trip_id in _rows(
        conn, year_loads + "SELECT yl.commune, yl.category, yl.g, ts.s, yl.trip_id FROM yl "
              "JOIN ts ON ts.trip_id = yl.trip_id AND ts.category = yl.category", y):
        direct = by_trip.get((str(trip_id), str(category)))
        if not direct or not scanned:
            continue
        share = _int(grams) / _int(scanned)
        for outcome, outcome_grams in _outcomes(direct, treated).items():
            flows[(str(code), str(category), DIRECT_HAUL, outcome)] += share * outcome_grams
    return dict(flows)


def _epr(conn: sqlite3.Connection, y: str, targets: Targets, communes: set[str] | None
         ) -> list[EprRate]:
    placed = {
        str(m): _int(g) for m, g in _rows(
            conn, "SELECT p.material, SUM(u.units * p.unit_grams) FROM epr_placed u "
                  "JOIN packaging p ON p.sku = u.sku WHERE u.period LIKE ? AND u.province = ? "
                  "GROUP BY p.material", f"{y}-%", targets.province)
    }
    recycled: dict[str, int] = defaultdict(int)
    for material, account_commune, grams in _rows(
        conn, "SELECT p.material, a.commune, SUM(o.units * p.unit_grams) "
              "FROM deposit_claim_confirmed c "
              "JOIN deposit_claim_opened o ON o.claim_id = c.claim_id "
              "JOIN packaging p ON p.sku = o.sku "
              "LEFT JOIN accounts a ON a.account_id = o.account_id "
              f"WHERE {YEAR_OF.format(col='c.confirmed_at')} = ? "
              "GROUP BY p.material, a.commune", y):
        if communes is None or account_commune in communes:
            recycled[str(material)] += _int(grams)
    materials = sorted(set(placed) | set(recycled) | set(targets.epr_rates))
    return [
        EprRate(material=m, placed_grams=placed.get(m, 0), recycled_grams=recycled.get(m, 0),
                target=targets.epr_rates.get(m))
        for m in materials
    ]


def _assess(report: ProvinceReport) -> dict[str, list[Assessment]]:
    targets = report.targets.targets
    out: dict[str, list[Assessment]] = {}

    def check(scope: Indicators, key: str, indicator: str) -> Assessment | None:
        target = targets.get(key)
        if target is None:
            return None
        return Assessment(indicator, scope.rates()[indicator], target)

    scopes = [*report.communes, report.urban, report.rural, report.total]
    for scope in scopes:
        found: list[Assessment | None] = []
        if scope.commune_class in ("urban", "rural"):
            found.append(check(scope, f"collected_treated_{scope.commune_class}",
                               "collected_treated"))
        for key in ("direct_landfill_share", "collection_coverage", "refusal_rate",
                    "fee_collection"):
            found.append(check(scope, key, key))
        out[scope.scope] = [a for a in found if a is not None]
    recovery = targets.get("cost_recovery")
    if recovery is not None:
        out["province"].append(Assessment("cost_recovery", report.cost_recovery, recovery))
    return out
