"""Where did load L go? Its whole custody path, from the log alone.

The path: the scan (time, device, actor, grams, category) → its trip (start, close) →
the trip's weighings and reconciliation → the batches the trip was allocated to →
each batch's dispatch (seal, plant) → the plant's receipt (received / accepted /
refused) → the treatment split, and where a refused part went. A direct-haul trip
received at a plant skips the station.

A load's share of what happened downstream follows the one rule of
``wastetrail_contracts.fate`` (the treatment service's fate API uses the same): the load
travels only through the batches of its own category, and every quantity measured
downstream (grams per treatment method, refused, redirected, in transit...) is shared over
the batch's allocations and then over the loads of the (trip, category) by largest
remainder. The trace builds that rule's facts from the log alone. ``fraction_of_batch``
and ``load_fraction`` are shown for a reader; the grams come from the rule.

A receipt is judged against the discrepancy threshold recorded on it
(``discrepancy_threshold_percent``); events written before it was recorded were judged
at 10 %, the rule of the time.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from wastetrail_contracts.apportion import apportion, category_shares
from wastetrail_contracts.enums import Category, TreatmentMethod
from wastetrail_contracts.fate import (
    BatchFacts,
    FateNode,
    LoadFacts,
    ReceiptFacts,
    RedirectFacts,
    TripFacts,
    grams_of,
    treated_by_method,
    trip_fates,
)

from wastetrail_audit.records import Failure

LOCAL = timezone(timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh has no DST
LEGACY_THRESHOLD_PERCENT = 10  # receipts written before the threshold was recorded on them

Json = dict[str, object]


def trip_fraction(load_grams: int, trip_scanned_grams: int) -> Fraction:
    """The load's fraction of its trip's scanned content (0 if the trip scanned nothing)."""
    if trip_scanned_grams <= 0:
        return Fraction(0)
    return Fraction(load_grams, trip_scanned_grams)


@dataclass(frozen=True)
class TraceResult:
    """The trace as JSON, plus whether the load was found."""

    found: bool
    data: Json


def _actor(row: sqlite3.Row) -> Json:
    return {"kind": row["_actor_kind"], "id": row["_actor_id"], "role": row["_actor_role"]}


def _where(row: sqlite3.Row) -> Json:
    return {"event_id": row["_event_id"], "topic": row["_topic"], "partition": row["_partition"],
            "offset": row["_offset"]}


def _rows(conn: sqlite3.Connection, sql: str, *params: object) -> list[sqlite3.Row]:
    return list(conn.execute(sql, params))


def trace_load(conn: sqlite3.Connection, load_id: str) -> TraceResult:
    """The custody path of one load (see the module docstring)."""
    conn.row_factory = sqlite3.Row
    loads = _rows(conn, "SELECT * FROM load_collected WHERE load_id = ? "
                        "ORDER BY _topic, _partition, _offset", load_id)
    if not loads:
        return TraceResult(False, {"load_id": load_id, "found": False})
    load = loads[0]
    notes: list[str] = []
    if len(loads) > 1:
        notes.append(f"the load was recorded {len(loads)} times; the first record is used")
    grams = int(load["grams"])
    trip_id = str(load["trip_id"])
    category = str(load["category"])
    facts = trip_facts(conn, trip_id)
    tree = trip_fates(facts)[load_id]
    same = [x for x in facts.loads if x.category.value == category]
    trip_scanned = sum(x.grams for x in facts.loads)
    category_scanned = sum(x.grams for x in same)
    f_trip = trip_fraction(grams, category_scanned)

    data: Json = {
        "load_id": load_id,
        "found": True,
        "scan": {
            "collected_at": load["collected_at"], "device_id": load["device_id"],
            "actor": _actor(load), "generator_id": load["generator_id"],
            "commune": load["commune"], "category": load["category"],
            "measure": load["measure"], "grams": grams, "trip_id": trip_id,
            "vehicle_id": load["vehicle_id"], **_where(load),
        },
        "generator": _generator(conn, str(load["generator_id"])),
        "trip": _trip(conn, trip_id, trip_scanned, len(facts.loads), f_trip)
        | {"category_scanned_grams": category_scanned, "category_loads": len(same)},
        "weighings": [_weighing(r) for r in _rows(
            conn, "SELECT * FROM trip_weighed WHERE trip_id = ? ORDER BY weighed_in_at", trip_id)],
        "reconciliations": [_reconciliation(r, notes) for r in _rows(
            conn, "SELECT * FROM trip_reconciled WHERE trip_id = ? ORDER BY _offset", trip_id)],
    }
    batches: list[Json] = []
    allocated_total = 0
    for row in _rows(
        conn,
        "SELECT a.batch_id, a.grams AS allocated, b.* FROM batch_consolidated_allocations a "
        "JOIN batch_consolidated b ON b._event_id = a._event_id "
        "WHERE a.trip_id = ? AND b.category = ? ORDER BY b._occurred_at, b.batch_id",
        trip_id, category,
    ):
        allocated = int(row["allocated"])
        allocated_total += allocated
        batch_id = str(row["batch_id"])
        node = _node(tree, "batch", batch_id)
        batch: Json = {
            "batch_id": batch_id, "station_id": row["station_id"],
            "category": row["category"], "seal_number": row["seal_number"],
            "consolidated_at": row["_occurred_at"], "actor": _actor(row),
            "trip_allocated_grams": allocated, "batch_total_grams": row["total_grams"],
            "load_share_grams": node.grams if node else 0,
            "fraction_of_batch": str(f_trip * allocated / int(row["total_grams"] or 1)),
            **_where(row),
        }
        batch["dispatches"] = [
            _dispatch(r, row, notes) for r in _rows(
                conn, "SELECT * FROM batch_dispatched WHERE batch_id = ? ORDER BY _offset",
                batch_id)
        ]
        receipt = _first_receipt(conn, "batch_id", batch_id)
        if receipt is None:
            notes.append(f"batch {batch_id} has no receipt at a plant in the log")
        batch["receipts"] = ([_receipt(conn, receipt, node, notes)]
                             if receipt is not None else [])
        batches.append(batch)
    data["batches"] = batches
    direct = _first_receipt(conn, "trip_id", trip_id)
    data["direct_receipts"] = ([_receipt(conn, direct, tree, notes)]
                               if direct is not None else [])
    category_share = _category_share(facts, category)
    if not batches and direct is None:
        notes.append(f"trip {trip_id}: its {category} was not allocated to any batch "
                     "nor received at a plant")
    elif batches and allocated_total < category_share:
        notes.append(f"trip {trip_id}: {category_share - allocated_total} g of its {category} "
                     "share were not allocated to any batch")
    data["fate"] = _tree_json(tree)
    data["grams"] = tree.grams
    treated = treated_by_method(tree)
    data["treatment_split"] = {m.value: g for m, g in sorted(treated.items())}
    data["treated_grams"] = sum(treated.values())
    data["refused_grams"] = grams_of(tree, "refused")
    data["claims"] = _claims(conn, load_id)
    data["alerts"] = _alerts(conn, load_id, trip_id, [str(b["batch_id"]) for b in batches])
    data["notes"] = notes
    return TraceResult(True, data)


# -- the rule's facts, from the log -------------------------------------------------------


def trip_facts(conn: sqlite3.Connection, trip_id: str) -> TripFacts:
    """What the log says of a trip, as the facts of ``wastetrail_contracts.fate``."""
    seen: dict[str, LoadFacts] = {}
    for r in _rows(conn, "SELECT load_id, category, grams FROM load_collected "
                         "WHERE trip_id = ? ORDER BY _topic, _partition, _offset", trip_id):
        seen.setdefault(str(r["load_id"]), LoadFacts(str(r["load_id"]), Category(r["category"]),
                                                     int(r["grams"])))
    weighing = conn.execute(
        "SELECT net_grams, site, site_id, weighed_in_at FROM trip_weighed WHERE trip_id = ? "
        "AND site = 'station' ORDER BY _offset DESC LIMIT 1", (trip_id,)).fetchone()
    batches = []
    for b in _rows(conn, "SELECT b.* FROM batch_consolidated_allocations a "
                         "JOIN batch_consolidated b ON b._event_id = a._event_id "
                         "WHERE a.trip_id = ? ORDER BY b._occurred_at, b.batch_id", trip_id):
        batch_id = str(b["batch_id"])
        allocations = {str(a["trip_id"]): int(a["grams"]) for a in _rows(
            conn, "SELECT trip_id, grams FROM batch_consolidated_allocations "
                  "WHERE _event_id = ?", b["_event_id"])}
        dispatch = conn.execute(
            "SELECT plant_id, dispatched_at, _actor_id FROM batch_dispatched WHERE batch_id = ? "
            "ORDER BY _offset LIMIT 1", (batch_id,)).fetchone()
        receipt = _first_receipt(conn, "batch_id", batch_id)
        batches.append(BatchFacts(
            batch_id, str(b["station_id"]), Category(b["category"]), allocations,
            plant_id=str(dispatch["plant_id"]) if dispatch else None,
            dispatched_at=_time(dispatch["dispatched_at"]) if dispatch else None,
            actor=dispatch["_actor_id"] if dispatch else None,
            receipt=receipt_facts(conn, receipt) if receipt is not None else None))
    direct = _first_receipt(conn, "trip_id", trip_id)
    return TripFacts(
        trip_id, tuple(seen.values()),
        weighed_net_grams=int(weighing["net_grams"]) if weighing else None,
        weighed_site_id=str(weighing["site_id"]) if weighing else None,
        weighed_at=_time(weighing["weighed_in_at"]) if weighing else None,
        batches=tuple(batches),
        direct_receipt=receipt_facts(conn, direct) if direct is not None else None)


def _first_receipt(conn: sqlite3.Connection, column: str, subject: str) -> sqlite3.Row | None:
    """A batch's (or direct-haul trip's) own receipt, not the receipt of a redirected part.

    Redirected parts carry the batch id too; newer receipts say which redirect they weighed
    (``redirect_id``), and in older logs the batch's own receipt is the earliest.
    """
    other = "trip_id" if column == "batch_id" else "batch_id"
    row: sqlite3.Row | None = conn.execute(
        f"SELECT * FROM batch_received WHERE {column} = ? AND {other} IS NULL "
        "AND redirect_id IS NULL ORDER BY received_at, _offset LIMIT 1", (subject,)).fetchone()
    return row


def receipt_facts(conn: sqlite3.Connection, r: sqlite3.Row, depth: int = 0) -> ReceiptFacts:
    """A receipt, its treatment totals and its redirects (followed to their receipts)."""
    receipt_id = str(r["receipt_id"])
    totals: dict[TreatmentMethod, int] = {}
    last: str | None = None
    for t in _rows(conn, "SELECT _event_id, treated_at FROM treatment_recorded "
                         "WHERE receipt_id = ? ORDER BY treated_at", receipt_id):
        last = str(t["treated_at"])
        for m in _rows(conn, "SELECT key, value FROM treatment_recorded_methods "
                             "WHERE _event_id = ?", t["_event_id"]):
            method = TreatmentMethod(m["key"])
            totals[method] = totals.get(method, 0) + int(m["value"])
    redirects = []
    for x in _rows(conn, "SELECT * FROM refused_waste_redirected WHERE receipt_id = ? "
                         "ORDER BY redirected_at, _offset", receipt_id):
        nested = _redirect_receipt(conn, r, x) if depth < 20 else None
        redirects.append(RedirectFacts(
            f"{receipt_id}/{x['_offset']}", int(x["grams"]),
            "plant" if x["destination_kind"] == "plant" else "station",
            str(x["destination_id"]), _time(x["redirected_at"]), actor=x["_actor_id"],
            receipt=receipt_facts(conn, nested, depth + 1) if nested is not None else None))
    return ReceiptFacts(
        receipt_id, str(r["plant_id"]), int(r["received_grams"]), int(r["accepted_grams"]),
        int(r["refused_grams"]), _time(r["received_at"]), actor=r["_actor_id"],
        treated=tuple((m, totals[m]) for m in TreatmentMethod if m in totals),
        last_treated_at=_time(last) if last else None, redirects=tuple(redirects))


def _redirect_receipt(conn: sqlite3.Connection, source: sqlite3.Row, x: sqlite3.Row
                      ) -> sqlite3.Row | None:
    """The destination plant's receipt of a redirected part.

    The log names the redirect on both events (``redirect_id``); older logs are matched
    by subject, plant and time: the first later receipt of the same batch (or trip) at
    the destination plant.
    """
    if x["destination_kind"] != "plant":
        return None
    if x["redirect_id"] is not None:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM batch_received WHERE redirect_id = ? ORDER BY _offset LIMIT 1",
            (x["redirect_id"],)).fetchone()
        return row
    column = "batch_id" if source["batch_id"] is not None else "trip_id"
    legacy: sqlite3.Row | None = conn.execute(
        f"SELECT * FROM batch_received WHERE {column} = ? AND plant_id = ? "
        "AND receipt_id != ? AND redirect_id IS NULL AND received_at >= ? "
        "ORDER BY received_at, _offset LIMIT 1",
        (source[column], x["destination_id"], source["receipt_id"], x["redirected_at"]),
    ).fetchone()
    return legacy


def _category_share(facts: TripFacts, category: str) -> int:
    scanned: dict[Category, int] = {}
    for x in facts.loads:
        scanned[x.category] = scanned.get(x.category, 0) + x.grams
    if facts.weighed_net_grams is None:
        return scanned.get(Category(category), 0)
    return category_shares(facts.weighed_net_grams, scanned).get(Category(category), 0)


def _time(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _node(tree: FateNode, kind: str, ref: str | None) -> FateNode | None:
    if tree.kind == kind and tree.ref == ref:
        return tree
    for child in tree.children:
        found = _node(child, kind, ref)
        if found is not None:
            return found
    return None


def _tree_json(node: FateNode) -> Json:
    return {"kind": node.kind, "grams": node.grams, "ref": node.ref, "site_id": node.site_id,
            "children": [_tree_json(c) for c in node.children]}


def _generator(conn: sqlite3.Connection, generator_id: str) -> Json | None:
    row = conn.execute(
        "SELECT * FROM generator_registered WHERE generator_id = ? ORDER BY _offset DESC LIMIT 1",
        (generator_id,),
    ).fetchone()
    if row is None:
        return None
    return {"generator_id": generator_id, "kind": row["kind"], "name": row["name"],
            "commune": row["commune"], "commune_class": row["commune_class"]}


def _trip(conn: sqlite3.Connection, trip_id: str, scanned: int, loads: int,
          fraction: Fraction) -> Json:
    start = conn.execute("SELECT * FROM trip_started WHERE trip_id = ? ORDER BY _offset LIMIT 1",
                         (trip_id,)).fetchone()
    close = conn.execute("SELECT * FROM trip_closed WHERE trip_id = ? ORDER BY _offset LIMIT 1",
                         (trip_id,)).fetchone()
    trip: Json = {"trip_id": trip_id, "scanned_grams_in_log": scanned, "loads_in_log": loads,
                  "load_fraction": str(fraction)}
    if start is not None:
        trip.update(vehicle_id=start["vehicle_id"], collector_id=start["collector_id"],
                    commune=start["commune"], started_at=start["started_at"],
                    started_by=_actor(start))
    if close is not None:
        trip.update(closed_at=close["closed_at"], closed_by=_actor(close),
                    declared_total_grams=close["declared_total_grams"],
                    scanned_total_grams=close["scanned_total_grams"])
    return trip


def _weighing(row: sqlite3.Row) -> Json:
    return {"site": row["site"], "site_id": row["site_id"], "gross_grams": row["gross_grams"],
            "tare_grams": row["tare_grams"], "net_grams": row["net_grams"],
            "tare_source": row["tare_source"], "weighed_in_at": row["weighed_in_at"],
            "weighed_out_at": row["weighed_out_at"], "actor": _actor(row), **_where(row)}


def _reconciliation(row: sqlite3.Row, notes: list[str]) -> Json:
    if row["discrepancy"]:
        notes.append(f"trip {row['trip_id']}: weighed {row['net_grams']} g but scanned "
                     f"{row['scanned_grams']} g (tolerance {row['tolerance_grams']} g)")
    return {"site_id": row["site_id"], "net_grams": row["net_grams"],
            "scanned_grams": row["scanned_grams"], "difference_grams": row["difference_grams"],
            "tolerance_grams": row["tolerance_grams"], "discrepancy": bool(row["discrepancy"]),
            "actor": _actor(row), **_where(row)}


def _dispatch(row: sqlite3.Row, batch: sqlite3.Row, notes: list[str]) -> Json:
    if row["seal_number"] != batch["seal_number"]:
        notes.append(f"batch {row['batch_id']}: sealed {batch['seal_number']} but dispatched "
                     f"with seal {row['seal_number']}")
    return {"dispatched_at": row["dispatched_at"], "plant_id": row["plant_id"],
            "seal_number": row["seal_number"], "dispatched_grams": row["dispatched_grams"],
            "vehicle_id": row["vehicle_id"], "actor": _actor(row), **_where(row)}


def _receipt(conn: sqlite3.Connection, row: sqlite3.Row, within: FateNode | None,
             notes: list[str]) -> Json:
    """One receipt with the load's share of it (``within``: the tree node above it)."""
    receipt_id = str(row["receipt_id"])
    node = _node(within, "receipt", receipt_id) if within is not None else None
    declared, received = int(row["declared_grams"]), int(row["received_grams"])
    recorded = row["discrepancy_threshold_percent"]
    threshold = LEGACY_THRESHOLD_PERCENT if recorded is None else int(recorded)
    if abs(received - declared) * 100 > threshold * declared:
        notes.append(f"receipt {receipt_id}: received {received} g of {declared} g declared "
                     f"(more than the {threshold} % in force)")
    accepted_node = _child(node, "accepted")
    treated_share = ({leaf.ref: leaf.grams for leaf in accepted_node.children
                      if leaf.kind == "treated" and leaf.ref is not None}
                     if accepted_node is not None else {})
    records = _rows(conn, "SELECT * FROM treatment_recorded WHERE receipt_id = ? "
                          "ORDER BY treated_at", receipt_id)
    per_record = [{str(m["key"]): int(m["value"]) for m in _rows(
        conn, "SELECT key, value FROM treatment_recorded_methods WHERE _event_id = ?",
        t["_event_id"])} for t in records]
    # The load's grams of a method at this receipt, shown per record by the record's grams.
    shown: list[dict[str, int]] = [{} for _ in records]
    for method, mine in treated_share.items():
        weights = [methods.get(method, 0) for methods in per_record]
        if sum(weights):
            for k, part in enumerate(apportion(mine, weights)):
                if weights[k]:
                    shown[k][method] = part
    treatments = [{
        "treatment_id": t["treatment_id"], "treated_at": t["treated_at"],
        "plant_id": t["plant_id"], "methods": methods, "load_share": share_,
        "energy_kwh": t["energy_kwh"], "residue_grams": t["residue_grams"],
        "actor": _actor(t), **_where(t),
    } for t, methods, share_ in zip(records, per_record, shown, strict=True)]
    refused_node = _child(node, "refused")
    redirections = []
    for x in _rows(conn, "SELECT * FROM refused_waste_redirected WHERE receipt_id = ? "
                         "ORDER BY redirected_at, _offset", receipt_id):
        kind = "redirected" if x["destination_kind"] == "plant" else "returned_to_station"
        step = (_node(refused_node, kind, f"{receipt_id}/{x['_offset']}")
                if refused_node is not None else None)
        onward = _redirect_receipt(conn, row, x)
        redirections.append({
            "grams": x["grams"], "load_share_grams": step.grams if step else 0,
            "destination_kind": x["destination_kind"], "destination_id": x["destination_id"],
            "redirected_at": x["redirected_at"], "actor": _actor(x), **_where(x),
            "receipt": _receipt(conn, onward, step, notes) if onward is not None else None})
    returns = [
        {"grams": r["grams"], "station_id": r["station_id"], "returned_at": r["returned_at"],
         **_where(r)}
        for r in _rows(conn, "SELECT * FROM refused_waste_returned WHERE receipt_id = ?",
                       receipt_id)
    ]
    return {
        "receipt_id": receipt_id, "plant_id": row["plant_id"], "received_at": row["received_at"],
        "status": row["status"], "declared_grams": declared, "received_grams": received,
        "accepted_grams": row["accepted_grams"], "refused_grams": row["refused_grams"],
        "refusal_reason": row["refusal_reason"], "discrepancy_threshold_percent": threshold,
        "actor": _actor(row),
        "load_share": {
            "received": node.grams if node else 0,
            "accepted": accepted_node.grams if accepted_node else 0,
            "refused": refused_node.grams if refused_node else 0,
            "treated": treated_share,
        },
        "treatments": treatments, "redirections": redirections, "returns": returns,
        **_where(row),
    }


def _child(node: FateNode | None, kind: str) -> FateNode | None:
    if node is None:
        return None
    return next((c for c in node.children if c.kind == kind), None)


def _claims(conn: sqlite3.Connection, load_id: str) -> list[Json]:
    claims = []
    for c in _rows(conn, "SELECT * FROM deposit_claim_opened WHERE load_id = ? ORDER BY _offset",
                   load_id):
        claim_id = str(c["claim_id"])
        confirmed = conn.execute("SELECT * FROM deposit_claim_confirmed WHERE claim_id = ?",
                                 (claim_id,)).fetchone()
        rejected = conn.execute("SELECT * FROM deposit_claim_rejected WHERE claim_id = ?",
                                (claim_id,)).fetchone()
        credited = conn.execute("SELECT * FROM deposit_claim_credited WHERE claim_id = ?",
                                (claim_id,)).fetchone()
        status = ("credited" if credited else "confirmed" if confirmed
                  else "rejected" if rejected else "open")
        claims.append({
            "claim_id": claim_id, "producer_id": c["producer_id"], "sku": c["sku"],
            "material": c["material"], "units": c["units"], "amount": c["amount"],
            "status": status, "opened_at": c["opened_at"],
            "confirmed_at": confirmed["confirmed_at"] if confirmed else None,
            "receipt_id": confirmed["receipt_id"] if confirmed else None,
            "treatment_id": confirmed["treatment_id"] if confirmed else None,
            "rejected_reason": rejected["reason"] if rejected else None,
            "credited_at": credited["credited_at"] if credited else None,
            "credit_method": credited["method"] if credited else None,
        })
    return claims


def _alerts(conn: sqlite3.Connection, load_id: str, trip_id: str, batch_ids: list[str]
            ) -> list[Json]:
    subjects = [("load", load_id), ("trip", trip_id), *(("batch", b) for b in batch_ids)]
    alerts = []
    for kind, subject in subjects:
        for r in _rows(conn, "SELECT * FROM alert_raised WHERE subject_kind = ? "
                             "AND subject_id = ? ORDER BY raised_at", kind, subject):
            cleared = conn.execute(
                "SELECT cleared_at, resolution FROM alert_cleared WHERE alert_id = ?",
                (r["alert_id"],)).fetchone()
            alerts.append({
                "alert_id": r["alert_id"], "kind": r["kind"], "subject_kind": kind,
                "subject_id": subject, "detail": r["detail"], "raised_at": r["raised_at"],
                "cleared_at": cleared["cleared_at"] if cleared else None,
                "resolution": cleared["resolution"] if cleared else None,
            })
    return alerts


# -- text -------------------------------------------------------------------------------


def local_time(value: object) -> str:
    """An event time (UTC ISO) as Hà Nội time for people: ``2025-03-03 07:35 (UTC+7)``."""
    if not isinstance(value, str):
        return "-"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M (UTC+7)")


def kg(grams: object) -> str:
    """Grams as a readable weight: ``18,000 g``."""
    return f"{int(str(grams)):,} g" if grams is not None else "-"


def _who(actor: object) -> str:
    if not isinstance(actor, dict):
        return "-"
    return f"{actor.get('role')} {actor.get('id')}"


def render_text(result: TraceResult, integrity: list[Failure] | None = None) -> str:
    """The trace for a person, with times in Hà Nội time."""
    d = result.data
    if not result.found:
        return f"load {d['load_id']}: not found in the log"
    out: list[str] = []
    scan = _dict(d["scan"])
    gen = d.get("generator")
    out.append(f"LOAD {d['load_id']}  ({kg(scan['grams'])}, {scan['category']})")
    who = f" — {gen['name']}, commune {gen['commune']} ({gen['commune_class']})" \
        if isinstance(gen, dict) else ""
    out.append(f"  1. scan       {local_time(scan['collected_at'])}  generator "
               f"{scan['generator_id']}{who}")
    out.append(f"                device {scan['device_id']}, {_who(scan['actor'])}, vehicle "
               f"{scan['vehicle_id']}, measure {scan['measure']}  [offset {scan['offset']}]")
    trip = _dict(d["trip"])
    out.append(f"  2. trip       {trip['trip_id']}: started {local_time(trip.get('started_at'))}"
               f", closed {local_time(trip.get('closed_at'))}; {trip['loads_in_log']} loads "
               f"scanned {kg(trip['scanned_grams_in_log'])}; this load is "
               f"{trip['load_fraction']} of its {scan['category']} "
               f"({kg(trip.get('category_scanned_grams'))})")
    for w in _list(d["weighings"]):
        out.append(f"  3. weighing   {w['site']} {w['site_id']} {local_time(w['weighed_in_at'])}: "
                   f"gross {kg(w['gross_grams'])} − tare {kg(w['tare_grams'])} "
                   f"({w['tare_source']}) = net {kg(w['net_grams'])}, {_who(w['actor'])}")
    for r in _list(d["reconciliations"]):
        verdict = "DISCREPANCY" if r["discrepancy"] else "within tolerance"
        out.append(f"  4. reconciled net {kg(r['net_grams'])} vs scanned {kg(r['scanned_grams'])}"
                   f": difference {kg(r['difference_grams'])} ({verdict}, ±"
                   f"{kg(r['tolerance_grams'])})")
    for b in _list(d["batches"]):
        out.append(f"  5. batch      {b['batch_id']} at {b['station_id']} seal "
                   f"{b['seal_number']}: trip gave {kg(b['trip_allocated_grams'])} of "
                   f"{kg(b['batch_total_grams'])}; load share {kg(b['load_share_grams'])} "
                   f"({b['fraction_of_batch']} of the batch)")
        for x in _list(b["dispatches"]):
            out.append(f"  6. dispatch   {local_time(x['dispatched_at'])} to {x['plant_id']}, "
                       f"seal {x['seal_number']}, {kg(x['dispatched_grams'])}, vehicle "
                       f"{x['vehicle_id']}, {_who(x['actor'])}")
        for r in _list(b["receipts"]):
            _render_receipt(out, r)
    for r in _list(d["direct_receipts"]):
        out.append("  5. direct haul from the trip to a plant")
        _render_receipt(out, r)
    split = _dict(d["treatment_split"])
    parts = ", ".join(f"{m} {kg(g)}" for m, g in split.items()) or "nothing treated yet"
    out.append(f"  => fate of the load: {parts}; refused {kg(d['refused_grams'])}")
    for c in _list(d["claims"]):
        out.append(f"  deposit claim {c['claim_id']}: {c['units']} × {c['sku']} ({c['material']})"
                   f", {c['amount']:,} đ — {c['status']}")
    for a in _list(d["alerts"]):
        state = f"cleared {local_time(a['cleared_at'])}" if a["cleared_at"] else "OPEN"
        out.append(f"  alert {a['alert_id']} {a['kind']} on {a['subject_kind']} "
                   f"{a['subject_id']}: {state}")
    for note in _list(d["notes"]):
        out.append(f"  note: {note}")
    if integrity:
        out.append(f"  WARNING: the log has {len(integrity)} integrity failure(s)")
    return "\n".join(out)


def _render_receipt(out: list[str], r: Json) -> None:
    share_ = _dict(r["load_share"])
    out.append(f"  7. receipt    {r['receipt_id']} at {r['plant_id']} "
               f"{local_time(r['received_at'])}: {r['status']}, received "
               f"{kg(r['received_grams'])} (declared {kg(r['declared_grams'])}), accepted "
               f"{kg(r['accepted_grams'])}, refused {kg(r['refused_grams'])}; load share: "
               f"received {kg(share_['received'])}, accepted {kg(share_['accepted'])}, "
               f"refused {kg(share_['refused'])}")
    for t in _list(r["treatments"]):
        methods = ", ".join(f"{m} {kg(g)}" for m, g in _dict(t["load_share"]).items())
        out.append(f"  8. treatment  {t['treatment_id']} {local_time(t['treated_at'])}: "
                   f"load share {methods}")
    for x in _list(r["redirections"]):
        out.append(f"  9. refused part redirected {local_time(x['redirected_at'])} to "
                   f"{x['destination_kind']} {x['destination_id']}: {kg(x['grams'])}, load "
                   f"share {kg(x['load_share_grams'])}")
        onward = x.get("receipt")
        if isinstance(onward, dict):
            _render_receipt(out, onward)
    for x in _list(r["returns"]):
        out.append(f"  9. refused part returned to station {x['station_id']}: "
                   f"{kg(x['grams'])}")


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
