"""Where did load L go? Its whole custody path, from the log alone.

The path: the scan (time, device, actor, grams, category) → its trip (start, close) →
the trip's weighings and reconciliation → the batches the trip was allocated to →
each batch's dispatch (seal, plant) → the plant's receipt (received / accepted /
refused) → the treatment split, and where a refused part went. A direct-haul trip
received at a plant skips the station.

A load's share of what happened downstream is proportional (domain.md: "the fate of a
single load is its share of the batches it travelled in"):

* share of a batch, in grams = load grams / trip scanned grams × grams allocated from
  the trip to the batch, where "trip scanned grams" is the sum of the trip's loads in the log;
* fraction of the batch = that share / the batch's total grams;
* share of a receipt quantity or of a treatment method = fraction × that quantity.

Fractions are exact (``fractions.Fraction``); grams are rounded to the nearest gram only
when shown.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from wastetrail_audit.records import Failure

LOCAL = timezone(timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh has no DST
RECEIPT_TOLERANCE = Fraction(10, 100)  # the e-Manifest rule: > 10 % by weight is a discrepancy

Json = dict[str, object]


def share(quantity: int, fraction: Fraction) -> int:
    """``quantity × fraction`` rounded to the nearest gram (ties to even)."""
    return round(quantity * fraction)


def trip_fraction(load_grams: int, trip_scanned_grams: int) -> Fraction:
    """The load's fraction of its trip's scanned content (0 if the trip scanned nothing)."""
    if trip_scanned_grams <= 0:
        return Fraction(0)
    return Fraction(load_grams, trip_scanned_grams)


def batch_fraction(
    load_grams: int, trip_scanned_grams: int, allocated_grams: int, batch_total_grams: int
) -> tuple[Fraction, Fraction]:
    """(the load's share of a batch in grams, its fraction of the batch)."""
    in_batch = trip_fraction(load_grams, trip_scanned_grams) * allocated_grams
    if batch_total_grams <= 0:
        return in_batch, Fraction(0)
    return in_batch, in_batch / batch_total_grams


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
    scanned = conn.execute(
        "SELECT COALESCE(SUM(grams), 0), COUNT(*) FROM loads WHERE trip_id = ?", (trip_id,)
    ).fetchone()
    trip_scanned, trip_loads = int(scanned[0]), int(scanned[1])
    f_trip = trip_fraction(grams, trip_scanned)

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
        "trip": _trip(conn, trip_id, trip_scanned, trip_loads, f_trip),
        "weighings": [_weighing(r) for r in _rows(
            conn, "SELECT * FROM trip_weighed WHERE trip_id = ? ORDER BY weighed_in_at", trip_id)],
        "reconciliations": [_reconciliation(r, notes) for r in _rows(
            conn, "SELECT * FROM trip_reconciled WHERE trip_id = ? ORDER BY _offset", trip_id)],
    }
    split: dict[str, Fraction] = {}
    refused = Fraction(0)
    batches: list[Json] = []
    allocations = _rows(
        conn,
        "SELECT a.batch_id, a.grams AS allocated, b.* FROM batch_consolidated_allocations a "
        "JOIN batch_consolidated b ON b._event_id = a._event_id "
        "WHERE a.trip_id = ? ORDER BY b._occurred_at, b.batch_id", trip_id,
    )
    allocated_total = 0
    for row in allocations:
        allocated = int(row["allocated"])
        allocated_total += allocated
        in_batch, fraction = batch_fraction(grams, trip_scanned, allocated, int(row["total_grams"]))
        batch: Json = {
            "batch_id": row["batch_id"], "station_id": row["station_id"],
            "category": row["category"], "seal_number": row["seal_number"],
            "consolidated_at": row["_occurred_at"], "actor": _actor(row),
            "trip_allocated_grams": allocated, "batch_total_grams": row["total_grams"],
            "load_share_grams": round(in_batch), "fraction_of_batch": str(fraction),
            **_where(row),
        }
        batch["dispatches"] = [
            _dispatch(r, row, notes) for r in _rows(
                conn, "SELECT * FROM batch_dispatched WHERE batch_id = ? ORDER BY _offset",
                str(row["batch_id"]))
        ]
        receipts = _rows(conn, "SELECT * FROM batch_received WHERE batch_id = ? "
                               "ORDER BY received_at", str(row["batch_id"]))
        if not receipts:
            notes.append(f"batch {row['batch_id']} has no receipt at a plant in the log")
        batch["receipts"] = [
            _receipt(conn, r, fraction, split, notes) for r in receipts
        ]
        refused += sum((fraction * int(r["refused_grams"]) for r in receipts), Fraction(0))
        batches.append(batch)
    data["batches"] = batches
    direct = _rows(conn, "SELECT * FROM batch_received WHERE trip_id = ? ORDER BY received_at",
                   trip_id)
    data["direct_receipts"] = [_receipt(conn, r, f_trip, split, notes) for r in direct]
    refused += sum((f_trip * int(r["refused_grams"]) for r in direct), Fraction(0))
    if not allocations and not direct:
        notes.append(f"trip {trip_id} was not allocated to any batch nor received at a plant")
    elif allocations and allocated_total < trip_scanned:
        notes.append(f"trip {trip_id}: {trip_scanned - allocated_total} g of its scanned "
                     "weight were not allocated to any batch")
    data["treatment_split"] = {m: round(g) for m, g in sorted(split.items())}
    data["treated_grams"] = round(sum(split.values(), Fraction(0)))
    data["refused_grams"] = round(refused)
    data["claims"] = _claims(conn, load_id)
    data["alerts"] = _alerts(conn, load_id, trip_id, [str(b["batch_id"]) for b in batches])
    data["notes"] = notes
    return TraceResult(True, data)


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


def _receipt(conn: sqlite3.Connection, row: sqlite3.Row, fraction: Fraction,
             split: dict[str, Fraction], notes: list[str]) -> Json:
    receipt_id = str(row["receipt_id"])
    declared, received = int(row["declared_grams"]), int(row["received_grams"])
    if declared and abs(received - declared) > RECEIPT_TOLERANCE * declared:
        notes.append(f"receipt {receipt_id}: received {received} g of {declared} g declared")
    treatments = []
    for t in _rows(conn, "SELECT * FROM treatment_recorded WHERE receipt_id = ? "
                         "ORDER BY treated_at", receipt_id):
        methods = {
            str(m["key"]): int(m["value"]) for m in _rows(
                conn, "SELECT key, value FROM treatment_recorded_methods WHERE _event_id = ?",
                t["_event_id"])
        }
        for method, grams in methods.items():
            split[method] = split.get(method, Fraction(0)) + fraction * grams
        treatments.append({
            "treatment_id": t["treatment_id"], "treated_at": t["treated_at"],
            "plant_id": t["plant_id"], "methods": methods,
            "load_share": {m: share(g, fraction) for m, g in methods.items()},
            "energy_kwh": t["energy_kwh"], "residue_grams": t["residue_grams"],
            "actor": _actor(t), **_where(t),
        })
    redirections = [
        {"grams": r["grams"], "load_share_grams": share(int(r["grams"]), fraction),
         "destination_kind": r["destination_kind"], "destination_id": r["destination_id"],
         "redirected_at": r["redirected_at"], "actor": _actor(r), **_where(r)}
        for r in _rows(conn, "SELECT * FROM refused_waste_redirected WHERE receipt_id = ? "
                             "ORDER BY redirected_at", receipt_id)
    ]
    returns = [
        {"grams": r["grams"], "load_share_grams": share(int(r["grams"]), fraction),
         "station_id": r["station_id"], "returned_at": r["returned_at"], **_where(r)}
        for r in _rows(conn, "SELECT * FROM refused_waste_returned WHERE receipt_id = ?",
                       receipt_id)
    ]
    return {
        "receipt_id": receipt_id, "plant_id": row["plant_id"], "received_at": row["received_at"],
        "status": row["status"], "declared_grams": declared, "received_grams": received,
        "accepted_grams": row["accepted_grams"], "refused_grams": row["refused_grams"],
        "refusal_reason": row["refusal_reason"], "actor": _actor(row),
        "load_share": {
            "received": share(received, fraction),
            "accepted": share(int(row["accepted_grams"]), fraction),
            "refused": share(int(row["refused_grams"]), fraction),
        },
        "treatments": treatments, "redirections": redirections, "returns": returns,
        **_where(row),
    }


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
               f"{trip['load_fraction']} of it")
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
    for x in _list(r["returns"]):
        out.append(f"  9. refused part returned to station {x['station_id']}: "
                   f"{kg(x['grams'])}, load share {kg(x['load_share_grams'])}")


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
