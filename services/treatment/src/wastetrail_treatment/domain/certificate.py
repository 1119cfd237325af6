"""The certificate of treatment of one batch (or direct-haul trip).

What a commune or an EPR producer cites: which plant weighed it, how much it accepted
or refused, where the refused part went, and how the accepted part was treated. It
follows the refused part to whichever plant received it, so the certificate accounts for
every gram that crossed a weighbridge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wastetrail_contracts.codec import canonical_bytes
from wastetrail_contracts.enums import AcceptanceStatus, Category, TreatmentMethod


@dataclass(frozen=True)
class TreatmentEntry:
    """One treatment record of a receipt."""

    treatment_id: str
    treated_at: datetime
    methods: tuple[tuple[TreatmentMethod, int], ...]
    outputs: tuple[tuple[str, int], ...] = ()
    energy_kwh: int = 0
    residue_grams: int = 0
    residue_destination: str = ""

    @property
    def treated_grams(self) -> int:
        """Grams this record treated."""
        return sum(g for _, g in self.methods)


@dataclass(frozen=True)
class RedirectEntry:
    """Refused waste sent back to a station or on to another plant."""

    redirect_id: str
    grams: int
    destination_kind: Literal["station", "plant"]
    destination_id: str
    redirected_at: datetime
    received_in: str | None = None  # the destination plant's receipt, once weighed


@dataclass(frozen=True)
class ReceiptEntry:
    """One weighbridge receipt of the subject (the first plant's, or a redirected part's)."""

    receipt_id: str
    plant_id: str
    plant_name: str
    plant_commune: str
    received_at: datetime
    declared_grams: int
    received_grams: int
    accepted_grams: int
    refused_grams: int
    status: AcceptanceStatus
    refusal_reason: str = ""
    discrepancy: bool = False
    over_capacity: bool = False
    redirect_id: str | None = None  # set when this receipt took in another plant's refusal
    treatments: tuple[TreatmentEntry, ...] = ()
    redirects: tuple[RedirectEntry, ...] = ()

    @property
    def treated_grams(self) -> int:
        """Grams treated over all of this receipt's records."""
        return sum(t.treated_grams for t in self.treatments)


@dataclass(frozen=True)
class Subject:
    """What is certified: a batch from a station, or a trip hauled straight to a plant."""

    kind: Literal["batch", "trip"]
    id: str
    category: Category
    origin_id: str                  # the dispatching station, or the trip's vehicle
    declared_grams: int
    dispatched_at: datetime | None = None
    seal_number: str | None = None


@dataclass(frozen=True)
class Totals:
    """The balance of the certificate: every received gram is in exactly one bucket."""

    received_grams: int
    accepted_grams: int
    treated_grams: int
    treated_by_method: Mapping[TreatmentMethod, int]
    awaiting_treatment_grams: int
    returned_to_station_grams: int
    held_refused_grams: int
    in_transit_grams: int
    energy_kwh: int
    residue_grams: int


@dataclass(frozen=True)
class Certificate:
    """A certificate of treatment; ``complete`` once no gram awaits treatment or custody."""

    certificate_id: str
    subject: Subject
    receipts: tuple[ReceiptEntry, ...]
    totals: Totals
    complete: bool
    as_of: datetime


def build_certificate(subject: Subject, receipts: Sequence[ReceiptEntry]) -> Certificate:
    """Assemble the certificate from the subject's receipts (first receipt first).

    ``as_of`` is the newest fact the certificate rests on, so the same facts always give
    the same certificate (and the same digest). Raises ValueError without receipts.
    """
    if not receipts:
        raise ValueError("a certificate needs at least one receipt")
    by_method: dict[TreatmentMethod, int] = {}
    for r in receipts:
        for t in r.treatments:
            for method, grams in t.methods:
                by_method[method] = by_method.get(method, 0) + grams
    redirects = [x for r in receipts for x in r.redirects]
    totals = Totals(
        received_grams=sum(r.received_grams for r in receipts if r.redirect_id is None),
        accepted_grams=sum(r.accepted_grams for r in receipts),
        treated_grams=sum(r.treated_grams for r in receipts),
        treated_by_method={m: by_method[m] for m in TreatmentMethod if m in by_method},
        awaiting_treatment_grams=sum(r.accepted_grams - r.treated_grams for r in receipts),
        returned_to_station_grams=sum(x.grams for x in redirects
                                      if x.destination_kind == "station"),
        held_refused_grams=sum(r.refused_grams - sum(x.grams for x in r.redirects)
                               for r in receipts),
        in_transit_grams=sum(x.grams for x in redirects
                             if x.destination_kind == "plant" and x.received_in is None),
        energy_kwh=sum(t.energy_kwh for r in receipts for t in r.treatments),
        residue_grams=sum(t.residue_grams for r in receipts for t in r.treatments),
    )
    complete = (totals.awaiting_treatment_grams == 0 and totals.held_refused_grams == 0
                and totals.in_transit_grams == 0)
    times = [r.received_at for r in receipts]
    times += [t.treated_at for r in receipts for t in r.treatments]
    times += [x.redirected_at for x in redirects]
    return Certificate(
        certificate_id=f"CT-{subject.kind}-{subject.id}",
        subject=subject,
        receipts=tuple(receipts),
        totals=totals,
        complete=complete,
        as_of=max(times),
    )


def digest(document: Mapping[str, object]) -> str:
    """SHA-256 over the canonical JSON of a certificate document (without its digest).

    Whoever holds a printed certificate can recompute it from the JSON to check nothing
    was altered.
    """
    body = {k: v for k, v in document.items() if k != "sha256"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()
