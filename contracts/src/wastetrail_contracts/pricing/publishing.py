"""Publishing tariff documents: their canonical JSON, digest, and history protection."""

from __future__ import annotations

import hashlib
from datetime import date

from wastetrail_contracts.pricing.tariff import Tariff


def tariff_json(tariff: Tariff) -> str:
    """The document as JSON (prices as decimal strings), what TariffPublished carries.

    ``Tariff.model_validate_json`` reads it back to an equal tariff, so an auditor can
    recompute every invoice from the event log alone.
    """
    return tariff.model_dump_json()


def tariff_from_json(text: str) -> Tariff:
    """Read a document published by ``tariff_json``."""
    return Tariff.model_validate_json(text)


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 text, lower-case hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rewritten_history(old: Tariff, new: Tariff, invoiced_until: date | None) -> list[date]:
    """Effective dates of versions that bills were already computed with and ``new`` changes.

    ``invoiced_until`` is the last day of the latest month invoiced under this tariff
    (None: nothing invoiced yet, anything may change). A version starting on or before it
    priced issued invoices, so a new revision may not drop it, change it or insert an
    earlier one; a correction of the past is a new version with a later date.
    """
    if invoiced_until is None:
        return []
    old_by_day = {v.effective_from: v for v in old.versions if v.effective_from <= invoiced_until}
    new_by_day = {v.effective_from: v for v in new.versions if v.effective_from <= invoiced_until}
    return sorted(day for day in old_by_day.keys() | new_by_day.keys()
                  if old_by_day.get(day) != new_by_day.get(day))
