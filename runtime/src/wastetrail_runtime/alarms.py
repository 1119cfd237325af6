"""Custody alarms, written once for every service that raises them (transfer, treatment).

An alarm is a pair of events on its subject's stream: ``CustodyAlertRaised`` when a periodic
sweep finds a gap past its deadline, ``CustodyAlertCleared`` when the event that closes the
gap arrives. Each service keeps the alarms it raised in its own ``alert`` table (a
``AlertColumns`` subclass on its own registry, plus its site column) so the HTTP API can
list the open ones; this module records both, and runs the sweep on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel
from sqlalchemy import BigInteger, DateTime
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar
from wastetrail_contracts import SYSTEM_ACTOR
from wastetrail_contracts.enums import AlertKind
from wastetrail_contracts.envelope import uuid7
from wastetrail_contracts.events.custody import (
    CustodyAlertCleared,
    CustodyAlertRaised,
    SubjectKind,
)

from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.store import EventStore, UnitOfWork

log = get_logger(__name__)


class AlertColumns(SQLModel):
    """The columns every service's ``alert`` table has (the service adds its site column)."""

    alert_id: str = Field(primary_key=True, max_length=80)
    kind: str = Field(max_length=40)
    subject_kind: str = Field(max_length=20)
    subject_id: str = Field(max_length=80)
    detail: str = Field(max_length=500)
    expected_grams: int | None = Field(default=None, sa_type=BigInteger)
    observed_grams: int | None = Field(default=None, sa_type=BigInteger)
    raised_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False, index=True)
    cleared_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    resolution: str | None = Field(default=None, max_length=500)


A = TypeVar("A", bound=AlertColumns)


async def raise_alert(
    uow: UnitOfWork,
    table: type[A],
    *,
    kind: AlertKind,
    subject_kind: SubjectKind,
    subject_id: str,
    detail: str,
    now: datetime,
    commune: str | None = None,
    expected_grams: int | None = None,
    observed_grams: int | None = None,
    **site: str | None,
) -> str:
    """Record ``CustodyAlertRaised`` on the subject's stream and keep the alert open.

    ``site`` fills the service's own column (``station_id=...``, ``plant_id=...``).
    """
    alert_id = uuid7()
    event = CustodyAlertRaised(
        alert_id=alert_id, kind=kind, subject_kind=subject_kind, subject_id=subject_id,
        detail=detail[:500], expected_grams=expected_grams, observed_grams=observed_grams,
        raised_at=now, commune=commune,
    )
    await uow.record(subject_id, [event], actor=SYSTEM_ACTOR)
    row = table(
        alert_id=alert_id, kind=kind.value, subject_kind=subject_kind, subject_id=subject_id,
        detail=event.detail, expected_grams=expected_grams, observed_grams=observed_grams,
        raised_at=now,
    )
    for name, value in site.items():
        if name not in table.model_fields:
            raise TypeError(f"{table.__name__} has no column {name!r}")
        setattr(row, name, value)
    uow.session.add(row)
    return alert_id


async def clear_alert(uow: UnitOfWork, table: type[AlertColumns], alert_id: str,
                      resolution: str, now: datetime) -> bool:
    """Record ``CustodyAlertCleared`` for an open alert; False when it was already cleared."""
    alert = await uow.session.get(table, alert_id, with_for_update=True)
    if alert is None or alert.cleared_at is not None:
        return False
    alert.cleared_at = now
    alert.resolution = resolution[:500]
    await uow.record(alert.subject_id, [CustodyAlertCleared(
        alert_id=alert.alert_id, kind=AlertKind(alert.kind),
        subject_kind=alert.subject_kind,
        subject_id=alert.subject_id, resolution=alert.resolution, cleared_at=now,
    )], actor=SYSTEM_ACTOR)
    return True


def alerts_query(table: type[A], *, open_only: bool, kind: str | None,
                 subject_id: str | None, **site: str | None) -> SelectOfScalar[A]:
    """Alerts newest first, filtered by kind, subject and the service's site column."""
    query = select(table)
    if open_only:
        query = query.where(col(table.cleared_at).is_(None))
    if kind is not None:
        query = query.where(col(table.kind) == kind)
    if subject_id is not None:
        query = query.where(col(table.subject_id) == subject_id)
    for name, value in site.items():
        if value is not None:
            query = query.where(getattr(table, name) == value)
    return query.order_by(col(table.raised_at).desc(), col(table.alert_id))


RT = TypeVar("RT")


def sweep_job(name: str, interval: Callable[[RT], float],
              sweep: Callable[[RT], Awaitable[int]]
              ) -> Callable[[RT], Coroutine[Any, Any, None]]:
    """A background job (``ServiceSpec.background``) running ``sweep`` every ``interval``.

    A failed sweep (the database is away) is logged and tried again next round; raising
    again later is safe because a sweep only raises what has no open alert yet.
    """
    async def loop(rt: RT) -> None:
        every = interval(rt)
        while True:
            await asyncio.sleep(every)
            try:
                raised = await sweep(rt)
                if raised:
                    log.info(f"{name}.alarms_raised", count=raised)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{name}.alarm_sweep_failed", error=str(exc))

    loop.__name__ = f"{name}_alarm_loop"
    return loop


def _as_utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; PostgreSQL in the session's zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


StoredTime = Annotated[datetime, AfterValidator(_as_utc)]


class AlertOut(BaseModel):
    """A custody alert as the HTTP APIs list it (services add their site column)."""

    alert_id: str
    kind: str
    subject_kind: str
    subject_id: str
    detail: str
    expected_grams: int | None
    observed_grams: int | None
    raised_at: StoredTime
    cleared_at: StoredTime | None
    resolution: str | None


CHUNK = 200  # subjects examined per transaction; keeps one sweep's row locks short

SweepStep = Callable[[UnitOfWork], Awaitable[tuple[int, int]]]


async def in_chunks(store: EventStore, step: SweepStep) -> int:
    """Run one sweep ``step`` per transaction until a chunk comes back short.

    ``step`` selects at most ``CHUNK`` overdue subjects (``FOR UPDATE SKIP LOCKED``: a subject
    being changed right now is not overdue, and a second instance sweeping at the same time
    takes other rows), raises their alarms and returns (subjects seen, alarms raised).
    """
    raised = 0
    while True:
        async with store.unit_of_work() as uow:
            seen, count = await step(uow)
            await uow.commit()
        raised += count
        if seen < CHUNK:
            return raised
