"""Publishing tariff documents and assigning them to communes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts import Actor
from wastetrail_contracts.events.billing import TariffPublished
from wastetrail_contracts.pricing.periods import billing_month
from wastetrail_contracts.pricing.publishing import (
    rewritten_history,
    sha256_hex,
    tariff_from_json,
    tariff_json,
)
from wastetrail_contracts.pricing.tariff import Tariff, TariffError, load_tariff
from wastetrail_runtime.problems import Problem, conflict, not_found
from wastetrail_runtime.store import UnitOfWork

from wastetrail_billing.adapters.tables import CommuneTariff, Invoice, TariffDocument
from wastetrail_billing.handlers.common import build_event

DEFAULT_COMMUNE = "*"


def tariff_stream(tariff_id: str) -> str:
    """The event stream of a tariff's revisions."""
    return f"tariff-{tariff_id}"[:80]


@dataclass(frozen=True)
class Published:
    """The outcome of a publication: the stored revision and whether it is new."""

    document: TariffDocument
    created: bool


def parse_toml(text: str) -> Tariff:
    """Validate a TOML tariff; a bad document is a 422 naming the first bad path."""
    try:
        return load_tariff(text)
    except TariffError as exc:
        first = exc.problems[0]
        raise Problem(422, "invalid-tariff", "Invalid tariff document",
                      "; ".join(f"{p.path}: {p.message}" for p in exc.problems),
                      field=first.path,
                      extra={"problems": [{"field": p.path, "message": p.message}
                                          for p in exc.problems]}) from exc


async def latest_document(session: AsyncSession, tariff_id: str) -> TariffDocument | None:
    """The newest revision of a tariff, or None."""
    rows = await session.exec(
        select(TariffDocument).where(TariffDocument.tariff_id == tariff_id)
        .order_by(col(TariffDocument.revision).desc()).limit(1)
    )
    return rows.first()


async def publish_tariff(uow: UnitOfWork, tariff_id: str, text: str, *, actor: Actor,
                         now: datetime) -> Published:
    """Store a new revision and record TariffPublished; re-posting the same document is a no-op.

    A revision may not change versions that already priced issued invoices (409).
    """
    tariff = parse_toml(text)
    document = tariff_json(tariff)
    digest = sha256_hex(document)
    latest = await latest_document(uow.session, tariff_id)
    if latest is not None and latest.document_sha256 == digest:
        return Published(latest, created=False)
    if latest is not None:
        last_period = (await uow.session.exec(
            select(func.max(Invoice.period)).where(Invoice.tariff_id == tariff_id)
        )).first()
        until = billing_month(last_period).last_day if last_period else None
        changed = rewritten_history(tariff_from_json(latest.document_json), tariff, until)
        if changed:
            raise conflict(
                "tariff-history-rewrite",
                f"versions effective {', '.join(d.isoformat() for d in changed)} already "
                f"priced invoices up to {until}; publish a new version with a later "
                "effective date instead", field="versions")
    revision = 1 if latest is None else latest.revision + 1
    stored = TariffDocument(
        tariff_id=tariff_id, revision=revision, province=tariff.province, label=tariff.label,
        source_toml=text, document_json=document, document_sha256=digest,
        effective_from=",".join(v.effective_from.isoformat() for v in tariff.versions),
        published_at=now,
    )
    uow.session.add(stored)
    event = build_event(
        TariffPublished, tariff_id=tariff_id, province=tariff.province, label=tariff.label,
        document_json=document, document_sha256=digest,
        effective_from=tuple(v.effective_from for v in tariff.versions),
    )
    await uow.record(tariff_stream(tariff_id), [event], actor=actor,
                     expected_version=revision - 1)
    return Published(stored, created=True)


async def assign_tariff(uow: UnitOfWork, commune: str, tariff_id: str, *,
                        now: datetime) -> CommuneTariff:
    """Price a commune's accounts (``*``: every commune without its own) with a tariff."""
    if await latest_document(uow.session, tariff_id) is None:
        raise not_found("tariff", tariff_id, field="tariff_id")
    row = await uow.session.get(CommuneTariff, commune)
    if row is None:
        row = CommuneTariff(commune=commune, tariff_id=tariff_id, assigned_at=now)
    else:
        row.tariff_id, row.assigned_at = tariff_id, now
    uow.session.add(row)
    return row


async def tariff_for_commune(uow: UnitOfWork, commune: str) -> str | None:
    """The tariff id that prices a commune: its own, else the default, else None."""
    for key in (commune, DEFAULT_COMMUNE):
        row = await uow.session.get(CommuneTariff, key)
        if row is not None:
            return row.tariff_id
    return None
