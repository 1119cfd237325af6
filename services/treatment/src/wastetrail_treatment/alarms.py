"""The plant's alarm sweep: accepted waste untreated, refused waste not sent on, in time.

Raising happens here, on a clock; clearing happens in the handlers, when a treatment record
or a redirect accounts for the last waiting gram (``handlers.settle_alarms``). Each kind is
one step of the runtime's chunked sweep (``alarms.in_chunks``), as in the transfer service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from wastetrail_contracts.enums import AlertKind
from wastetrail_runtime import alarms
from wastetrail_runtime.alarms import CHUNK, in_chunks
from wastetrail_runtime.store import EventStore, UnitOfWork

from wastetrail_treatment.adapters.tables import Alert, Plant, Receipt
from wastetrail_treatment.domain.alarms import (
    AlarmDelays,
    redirect_deadline,
    refused_overdue,
    treatment_deadline,
    untreated_overdue,
)
from wastetrail_treatment.domain.receipt import ReceiptBalance
from wastetrail_treatment.handlers import receipt_balance


def _utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _communes(uow: UnitOfWork, receipts: list[Receipt]) -> dict[str, str]:
    plant_ids = {r.plant_id for r in receipts}
    if not plant_ids:
        return {}
    rows = (await uow.session.exec(
        select(Plant.plant_id, Plant.commune).where(col(Plant.plant_id).in_(plant_ids))
    )).all()
    return dict(rows)


@dataclass(frozen=True)
class _Gap:
    """One kind of waiting waste on a receipt: which grams, which alarm column, how long."""

    kind: AlertKind
    alert_column: str  # the Receipt column holding the open alarm's id
    waiting: Callable[[ReceiptBalance], int]
    overdue: Callable[[ReceiptBalance, datetime, AlarmDelays, datetime], bool]
    deadline: Callable[[datetime, AlarmDelays], datetime]
    delay: Callable[[AlarmDelays], timedelta]
    what: str  # "… were <what> by <deadline>"


UNTREATED = _Gap(AlertKind.ACCEPTED_NOT_TREATED, "untreated_alert_id",
                 lambda b: b.untreated_grams, untreated_overdue, treatment_deadline,
                 lambda d: d.untreated, "not covered by treatment records")
REFUSED_HELD = _Gap(AlertKind.REFUSED_NOT_REDIRECTED, "refused_alert_id",
                    lambda b: b.held_refused_grams, refused_overdue, redirect_deadline,
                    lambda d: d.refused,
                    "neither sent to another plant nor returned to a station")
_WAITING = {  # the same rule as ``_Gap.waiting``, as SQL for the partial indexes
    UNTREATED.kind: col(Receipt.accepted_grams) > col(Receipt.treated_grams),
    REFUSED_HELD.kind: col(Receipt.refused_grams) > col(Receipt.redirected_grams),
}


async def raise_waiting(store: EventStore, now: datetime, delays: AlarmDelays,
                        gap: _Gap) -> int:
    """Raise ``gap.kind`` for every receipt whose grams have waited past the deadline."""
    async def step(uow: UnitOfWork) -> tuple[int, int]:
        receipts = (await uow.session.exec(
            select(Receipt).where(
                _WAITING[gap.kind], col(getattr(Receipt, gap.alert_column)).is_(None),
                col(Receipt.received_at) <= now - gap.delay(delays),
            ).order_by(col(Receipt.receipt_id)).limit(CHUNK).with_for_update(skip_locked=True)
        )).all()
        communes = await _communes(uow, list(receipts))
        for receipt in receipts:
            balance = receipt_balance(receipt)
            received_at = _utc(receipt.received_at)
            assert gap.overdue(balance, received_at, delays, now)  # the query and the rule
            came = f"batch {receipt.batch_id}" if receipt.batch_id else f"trip {receipt.trip_id}"
            why = f": {receipt.refusal_reason}" if gap is REFUSED_HELD else ""
            grams = gap.waiting(balance)
            setattr(receipt, gap.alert_column, await alarms.raise_alert(
                uow, Alert, kind=gap.kind, subject_kind="receipt",
                subject_id=receipt.receipt_id, plant_id=receipt.plant_id,
                commune=communes.get(receipt.plant_id), now=now,
                detail=(f"{grams} g of {receipt.category} received at plant {receipt.plant_id} "
                        f"on {received_at:%Y-%m-%d %H:%M}Z (receipt {receipt.receipt_id}, "
                        f"{came}{why}) were {gap.what} by "
                        f"{gap.deadline(received_at, delays):%Y-%m-%d %H:%M}Z (accepted "
                        f"{balance.accepted_grams} g, treated {balance.treated_grams} g, "
                        f"refused {balance.refused_grams} g, redirected "
                        f"{balance.redirected_grams} g)"),
                expected_grams=grams,
            ))
        return len(receipts), len(receipts)

    return await in_chunks(store, step)


async def sweep(store: EventStore, now: datetime, delays: AlarmDelays) -> int:
    """One pass over the receipts; returns how many alarms were raised."""
    return (await raise_waiting(store, now, delays, UNTREATED)
            + await raise_waiting(store, now, delays, REFUSED_HELD))
