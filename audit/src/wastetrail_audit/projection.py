"""The log projected into one SQLite file that trace, report and verify-balances query.

One table per event type, named after the type without its service
(``collection.load_collected`` → ``load_collected``), one column per payload field, plus
provenance columns that start with ``_`` (topic, partition, offset, event id, service,
stream, times, actor). Nested lists of values become child tables
(``batch_consolidated_allocations``, ``treatment_recorded_methods``,
``invoice_issued_lines``, ``ledger_entry_posted_postings``...) whose rows carry the
parent's first field (its id) and ``_event_id``. The schema is derived from the payload
models, so a new field in the contracts appears here without code changes.

Replay workers each write their own partition file (streaming, flushed in batches), and
the parent merges them; memory never holds more than one batch of rows. Domain-named
views (``loads``, ``trips``, ``weighings``, ``allocations``, ``receipts``...) make the file
pleasant to query by hand with ``sqlite3``.
"""

from __future__ import annotations

import json
import sqlite3
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel
from wastetrail_contracts.base import Event
from wastetrail_contracts.codec import ALL_EVENTS
from wastetrail_contracts.envelope import Envelope

from wastetrail_audit.records import Failure

E = TypeVar("E", bound=Event)
Kind = Literal["int", "real", "bool", "text", "json"]
SqlValue = int | float | str | None
FLUSH_ROWS = 2000

PROVENANCE: tuple[tuple[str, str], ...] = (
    ("_topic", "TEXT"),
    ("_partition", "INTEGER"),
    ("_offset", "INTEGER"),
    ("_event_id", "TEXT"),
    ("_service", "TEXT"),
    ("_stream_id", "TEXT"),
    ("_occurred_at", "TEXT"),
    ("_recorded_at", "TEXT"),
    ("_actor_kind", "TEXT"),
    ("_actor_id", "TEXT"),
    ("_actor_role", "TEXT"),
)
_SQL_TYPE: dict[Kind, str] = {
    "int": "INTEGER", "real": "REAL", "bool": "INTEGER", "text": "TEXT", "json": "TEXT",
}


@dataclass(frozen=True)
class Column:
    """One payload field stored as a column."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class ChildTable:
    """A list (or mapping) field of a payload, one row per element."""

    name: str
    field: str
    parent_key: str
    columns: tuple[Column, ...]
    mapping: bool  # a dict field: columns are (key, value)


@dataclass(frozen=True)
class Table:
    """The table of one event type."""

    name: str
    model: type[Event]
    columns: tuple[Column, ...]
    children: tuple[ChildTable, ...]


def _strip(annotation: object) -> object:
    """The annotation without Annotated metadata and without ``| None``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return annotation


def _kind(annotation: object) -> Kind:
    ann = _strip(annotation)
    if ann is bool:
        return "bool"
    if ann is int:
        return "int"
    if ann is float:
        return "real"
    if typing.get_origin(ann) is Literal:
        return "text"
    if isinstance(ann, type) and issubclass(ann, str | Enum | date | datetime):
        return "text"
    return "json"


def _child(table: str, parent_key: str, field: str, annotation: object) -> ChildTable | None:
    ann = _strip(annotation)
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is dict and len(args) == 2:
        return ChildTable(
            name=f"{table}_{field}", field=field, parent_key=parent_key,
            columns=(Column("key", _kind(args[0])), Column("value", _kind(args[1]))),
            mapping=True,
        )
    if origin is tuple and args:
        item = _strip(args[0])
        if isinstance(item, type) and issubclass(item, BaseModel):
            columns = tuple(
                Column(name, _kind(info.annotation)) for name, info in item.model_fields.items()
            )
            return ChildTable(
                name=f"{table}_{field}", field=field, parent_key=parent_key,
                columns=columns, mapping=False,
            )
    return None


def _table(model: type[Event], name: str) -> Table:
    fields = model.model_fields
    parent_key = next(iter(fields))
    columns = tuple(Column(n, _kind(info.annotation)) for n, info in fields.items())
    children = tuple(
        child
        for n, info in fields.items()
        if (child := _child(name, parent_key, n, info.annotation)) is not None
    )
    return Table(name=name, model=model, columns=columns, children=children)


def _table_names() -> dict[str, str]:
    short = [cls.event_type.split(".", 1)[1] for cls in ALL_EVENTS]
    names: dict[str, str] = {}
    for cls, name in zip(ALL_EVENTS, short, strict=True):
        # Fall back to the full dotted name if two services ever use the same event name.
        names[cls.event_type] = name if short.count(name) == 1 else cls.event_type.replace(".", "_")
    return names


TABLE_NAMES = _table_names()
TABLES: dict[str, Table] = {
    cls.event_type: _table(cls, TABLE_NAMES[cls.event_type]) for cls in ALL_EVENTS
}
TABLE_OF: dict[type[Event], Table] = {t.model: t for t in TABLES.values()}


def _ddl() -> list[str]:
    statements = [
        "CREATE TABLE IF NOT EXISTS _failures (topic TEXT, partition INTEGER, "
        "offset INTEGER, event_id TEXT, kind TEXT, detail TEXT)"
    ]
    prov = ", ".join(f"{n} {t}" for n, t in PROVENANCE)
    for table in TABLES.values():
        cols = ", ".join(f'"{c.name}" {_SQL_TYPE[c.kind]}' for c in table.columns)
        statements.append(f'CREATE TABLE IF NOT EXISTS "{table.name}" ({cols}, {prov})')
        for child in table.children:
            ccols = ", ".join(f'"{c.name}" {_SQL_TYPE[c.kind]}' for c in child.columns)
            statements.append(
                f'CREATE TABLE IF NOT EXISTS "{child.name}" ("{child.parent_key}" TEXT, '
                f"{ccols}, _event_id TEXT, _topic TEXT, _partition INTEGER, _offset INTEGER)"
            )
    return statements


# One encoder for every JSON cell (json.dumps with options builds a new one per call);
# the same output as json.dumps(value, sort_keys=True, ensure_ascii=False).
_json_text = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode
# Values stored as they are in a non-JSON column (bool is not among them: it becomes 0/1).
_PLAIN_TYPES = frozenset({int, float, str})


def _sql_value(value: object, kind: Kind) -> SqlValue:
    if value is None:
        return None
    if kind == "json":
        return _json_text(value)
    if kind == "bool":
        return 1 if value else 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    return _json_text(value)


def _cells(data: dict[str, object], columns: tuple[tuple[str, Kind, bool], ...]
           ) -> list[SqlValue]:
    # The common cell (an int or a string in a non-JSON column) is stored as it is, without
    # a call per cell; the rest goes through _sql_value.
    cells: list[SqlValue] = []
    append = cells.append
    for name, kind, plain in columns:
        value = data.get(name)
        if value is None:
            append(None)
        elif plain and type(value) in _PLAIN_TYPES:
            append(value)  # type: ignore[arg-type]  # int, float or str, checked just above
        else:
            append(_sql_value(value, kind))
    return cells


_COLUMN_SPECS: dict[str, tuple[tuple[str, Kind, bool], ...]] = {}


def _column_spec(table: str, columns: tuple[Column, ...]) -> tuple[tuple[str, Kind, bool], ...]:
    spec = _COLUMN_SPECS.get(table)
    if spec is None:
        spec = _COLUMN_SPECS[table] = tuple(
            (c.name, c.kind, c.kind not in ("json", "bool")) for c in columns
        )
    return spec


def connect(path: Path) -> sqlite3.Connection:
    """Open a projection file, creating its tables if they do not exist."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    # The projection is rebuilt from the log at will, so durability is not needed here.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    for statement in _ddl():
        conn.execute(statement)
    conn.commit()
    return conn


class ProjectionWriter:
    """Append events and failures to a projection file, in batches."""

    def __init__(self, path: Path) -> None:
        self._conn = connect(path)
        self._pending: dict[str, list[tuple[SqlValue, ...]]] = {}
        self._count = 0
        self._sql: dict[str, str] = {}

    def add(self, topic: str, partition: int, offset: int, envelope: Envelope,
            event: Event) -> None:
        """Project one verified-parsable event."""
        table = TABLE_OF.get(type(event))
        if table is None:
            return
        data = event.model_dump(mode="json")
        actor = envelope.actor
        prov: tuple[SqlValue, ...] = (
            topic, partition, offset, envelope.event_id, envelope.service, envelope.stream_id,
            _iso(envelope.occurred_at), _iso(envelope.recorded_at),
            actor.kind.value, actor.id, actor.role.value,
        )
        row = (*_cells(data, _column_spec(table.name, table.columns)), *prov)
        self._queue(table.name, len(row), row)
        for child in table.children:
            parent = _sql_value(data.get(child.parent_key), "text")
            items = data.get(child.field) or ()
            elements: Iterable[Sequence[object]]
            if child.mapping and isinstance(items, dict):
                elements = list(items.items())
            elif isinstance(items, list | tuple):
                elements = [
                    [item.get(c.name) for c in child.columns]
                    for item in items
                    if isinstance(item, dict)
                ]
            else:
                elements = []
            for values in elements:
                cells = [
                    _sql_value(v, c.kind) for v, c in zip(values, child.columns, strict=True)
                ]
                crow = (parent, *cells, envelope.event_id, topic, partition, offset)
                self._queue(child.name, len(crow), crow)

    def add_failure(self, failure: Failure) -> None:
        """Record one failure."""
        self._queue(
            "_failures", 6,
            (failure.topic, failure.partition, failure.offset, failure.event_id,
             failure.kind, failure.detail),
        )

    def _queue(self, table: str, width: int, row: tuple[SqlValue, ...]) -> None:
        if table not in self._sql:
            self._sql[table] = f'INSERT INTO "{table}" VALUES ({", ".join("?" * width)})'
        self._pending.setdefault(table, []).append(row)
        self._count += 1
        if self._count >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows."""
        for table, rows in self._pending.items():
            self._conn.executemany(self._sql[table], rows)
        self._conn.commit()
        self._pending.clear()
        self._count = 0

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._conn.close()


# Envelope times repeat (a service records many events in the same second): formatting
# one costs more than looking it up. Bounded: cleared when full.
_ISO_CACHE: dict[datetime, str] = {}
_ISO_CACHE_SIZE = 4096


def _iso(value: datetime) -> str:
    if value.tzinfo is not UTC:  # equal times in other zones format differently
        return value.isoformat().replace("+00:00", "Z")
    text = _ISO_CACHE.get(value)
    if text is None:
        if len(_ISO_CACHE) >= _ISO_CACHE_SIZE:
            _ISO_CACHE.clear()
        text = _ISO_CACHE[value] = value.isoformat().replace("+00:00", "Z")
    return text


def merge(parts: Iterable[Path], into: Path) -> None:
    """Append every partition file to the projection ``into`` and delete the parts."""
    conn = connect(into)
    try:
        for part in parts:
            conn.execute("ATTACH DATABASE ? AS part", (str(part),))
            names = [
                r[0] for r in conn.execute(
                    "SELECT name FROM part.sqlite_master WHERE type = 'table'"
                )
            ]
            for name in names:
                conn.execute(f'INSERT INTO main."{name}" SELECT * FROM part."{name}"')
            conn.commit()
            conn.execute("DETACH DATABASE part")
            part.unlink()
    finally:
        conn.close()


def _first(table: str, key: str) -> str:
    # A record redelivered or re-sent with the same id counts once: keep the first one.
    return (f"SELECT * FROM {table} WHERE rowid IN "
            f"(SELECT MIN(rowid) FROM {table} GROUP BY {key})")


VIEWS: dict[str, str] = {
    "loads": _first("load_collected", "load_id"),
    "refusals": _first("load_refused", "refusal_id"),
    "trips": "SELECT s.trip_id, s.vehicle_id, s.collector_id, s.commune, s.started_at, "
             "c.closed_at, c.declared_total_grams, c.scanned_total_grams, c.load_count "
             "FROM trip_started s LEFT JOIN trip_closed c ON c.trip_id = s.trip_id",
    "weighings": "SELECT * FROM trip_weighed",
    "reconciliations": "SELECT * FROM trip_reconciled",
    "batches": _first("batch_consolidated", "batch_id"),
    "allocations": "SELECT * FROM batch_consolidated_allocations WHERE _event_id IN "
                   "(SELECT _event_id FROM batches)",
    "dispatches": "SELECT * FROM batch_dispatched",
    "receipts": _first("batch_received", "receipt_id"),
    "treatments": _first("treatment_recorded", "treatment_id"),
    "treatment_split": "SELECT t.receipt_id, t.batch_id, t.trip_id, m.key AS method, "
                       "m.value AS grams, t.treatment_id, t.treated_at "
                       "FROM treatments t JOIN treatment_recorded_methods m "
                       "ON m._event_id = t._event_id",
    "alerts": "SELECT r.alert_id, r.kind, r.subject_kind, r.subject_id, r.detail, "
              "r.raised_at, c.cleared_at, c.resolution FROM alert_raised r "
              "LEFT JOIN alert_cleared c ON c.alert_id = r.alert_id",
    "generators": "SELECT * FROM generator_registered g WHERE _offset = (SELECT MAX(_offset) "
                  "FROM generator_registered h WHERE h.generator_id = g.generator_id "
                  "AND h._topic = g._topic AND h._partition = g._partition)",
    "accounts": _first("account_opened", "account_id"),
    "invoices": _first("invoice_issued", "invoice_id"),
    "payments": _first("payment_succeeded", "payment_id"),
    "refunds": _first("payment_refunded", "payment_id, refund_ref"),
    "costs": _first("operating_cost_recorded", "cost_id"),
    "ledger_entries": "SELECT * FROM ledger_entry_posted",
    "postings": "SELECT * FROM ledger_entry_posted_postings",
    "packaging": "SELECT * FROM packaging_registered p WHERE rowid = (SELECT MAX(rowid) "
                 "FROM packaging_registered q WHERE q.sku = p.sku)",
    "epr_deposits": "SELECT * FROM deposit_paid",
    "epr_placed": _first("units_placed_on_market", "report_id"),
    "epr_claims": "SELECT o.claim_id, o.account_id, o.producer_id, o.sku, o.material, "
                  "o.units, o.amount, o.opened_at, c.confirmed_at, r.rejected_at, "
                  "k.credited_at, k.amount AS credited FROM deposit_claim_opened o "
                  "LEFT JOIN deposit_claim_confirmed c ON c.claim_id = o.claim_id "
                  "LEFT JOIN deposit_claim_rejected r ON r.claim_id = o.claim_id "
                  "LEFT JOIN deposit_claim_credited k ON k.claim_id = o.claim_id",
}


def finalize(path: Path) -> list[str]:
    """Index the id columns and create the domain views; returns views that failed."""
    conn = connect(path)
    failed: list[str] = []
    try:
        tables = [*TABLES.values()]
        for table in tables:
            keyed = [c.name for c in table.columns if c.name.endswith("_id") or c.name == "commune"]
            for col in keyed:
                conn.execute(
                    f'CREATE INDEX IF NOT EXISTS "ix_{table.name}_{col}" '
                    f'ON "{table.name}" ("{col}")'
                )
            for child in table.children:
                conn.execute(
                    f'CREATE INDEX IF NOT EXISTS "ix_{child.name}" '
                    f'ON "{child.name}" ("{child.parent_key}")'
                )
                if any(c.name == "trip_id" for c in child.columns):
                    conn.execute(
                        f'CREATE INDEX IF NOT EXISTS "ix_{child.name}_trip" '
                        f'ON "{child.name}" (trip_id)'
                    )
        for name, select in VIEWS.items():
            try:
                conn.execute(f'DROP VIEW IF EXISTS "{name}"')
                conn.execute(f'CREATE VIEW "{name}" AS {select}')
            except sqlite3.Error:
                # A view over a field the contracts renamed: the tables are still complete.
                failed.append(name)
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return failed


def iter_models(
    conn: sqlite3.Connection, model: type[E], where: str = "", params: Sequence[object] = ()
) -> Iterator[E]:
    """Rebuild payload models from their table (in log order), optionally filtered."""
    table = TABLE_OF[model]
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    sql = f'SELECT {names} FROM "{table.name}"'
    if where:
        sql += f" WHERE {where}"
    sql += " ORDER BY _topic, _partition, _offset"
    for row in conn.execute(sql, tuple(params)):
        data: dict[str, object] = {}
        for col, value in zip(table.columns, tuple(row), strict=True):
            if value is None:
                continue
            if col.kind == "json":
                data[col.name] = json.loads(value)
            elif col.kind == "bool":
                data[col.name] = bool(value)
            else:
                data[col.name] = value
        yield model.model_validate(data)
