"""The certificate as a JSON document (with its digest) and as a printable HTML page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import TypeAdapter
from wastetrail_contracts import labels
from wastetrail_contracts.enums import AcceptanceStatus, Category, TreatmentMethod

from wastetrail_treatment.domain.certificate import Certificate, digest
from wastetrail_treatment.domain.plant import PLANT_DAY_OFFSET

_DOCUMENT = TypeAdapter(Certificate)

# Labels on the page: Vietnamese first, English beneath (the plans are Vietnamese; auditors
# and EPR producers may not be), from the one catalogue every output uses.
METHOD_LABELS = {m.value: labels.pair(m.value) for m in TreatmentMethod}
STATUS_LABELS = {s.value: labels.pair(f"status.{s.value}") for s in AcceptanceStatus}
CATEGORY_LABELS = {c.value: labels.pair(c.value) for c in Category}

_env = Environment(
    loader=PackageLoader("wastetrail_treatment", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _kg(grams: int | None) -> str:
    """12345678 g → "12 345,678 kg" (Vietnamese grouping: thin space, decimal comma)."""
    if grams is None:
        return "—"
    kilos, rest = divmod(int(grams), 1000)
    return f"{kilos:,}".replace(",", "\u202f") + f",{rest:03d} kg"


def _when(value: str | None) -> str:
    """ISO UTC text → "02/03/2026 08:15 (UTC+7)"."""
    if not value:
        return "—"
    local = datetime.fromisoformat(value).astimezone(PLANT_DAY_OFFSET)
    return local.strftime("%d/%m/%Y %H:%M") + " (UTC+7)"


_env.filters["kg"] = _kg
_env.filters["when"] = _when


def certificate_document(cert: Certificate) -> dict[str, Any]:
    """The certificate as JSON, with ``sha256`` over its canonical encoding."""
    doc: dict[str, Any] = _DOCUMENT.dump_python(cert, mode="json")
    doc["sha256"] = digest(doc)
    return doc


def render_html(doc: dict[str, Any]) -> str:
    """The printable page of a certificate document."""
    return _env.get_template("certificate.html.j2").render(
        c=doc, methods=METHOD_LABELS, statuses=STATUS_LABELS, categories=CATEGORY_LABELS,
    )
