"""The weighbridge receipt: acceptance, discrepancy, custody of the refused part, treatment.

A receipt is one crossing of the plant's weighbridge by a dispatched batch, a direct-haul
trip, or the refused part of another plant's receipt. Declared and measured quantities are
kept apart; received = accepted + refused (domain.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wastetrail_contracts.enums import AcceptanceStatus, Category, TreatmentMethod
from wastetrail_contracts.events.treatment import ENERGY_METHODS

from wastetrail_treatment.domain.errors import RuleViolation
from wastetrail_treatment.domain.plant import PlantRules

Destination = Literal["station", "plant"]


@dataclass(frozen=True)
class Acceptance:
    """The plant's decision on what crossed its weighbridge."""

    status: AcceptanceStatus
    received_grams: int
    accepted_grams: int
    refused_grams: int
    refusal_reason: str


def decide_acceptance(
    *,
    received_grams: int,
    status: AcceptanceStatus,
    refused_grams: int | None,
    refusal_reason: str,
    category: Category,
    plant: PlantRules,
) -> Acceptance:
    """Check the operator's decision against the invariants and return the quantities.

    ACCEPTED ⇒ refused = 0; REFUSED ⇒ refused = received; PARTIALLY_REFUSED ⇒
    0 < refused < received; anything refused needs a reason. ``refused_grams`` may be
    omitted for ACCEPTED and REFUSED (it follows from the status). A category the plant
    does not accept can only be refused.
    """
    if received_grams <= 0:
        raise RuleViolation("nothing-received", "measured_grams",
                            f"the measured weight must be positive, got {received_grams} g")
    if refused_grams is not None and refused_grams > received_grams:
        raise RuleViolation(
            "refused-exceeds-received", "refused_grams",
            f"cannot refuse {refused_grams} g of the {received_grams} g received",
        )
    if status is AcceptanceStatus.ACCEPTED:
        if refused_grams not in (None, 0):
            raise RuleViolation("acceptance-inconsistent", "refused_grams",
                                "refused_grams must be 0 when status is ACCEPTED")
        refused = 0
    elif status is AcceptanceStatus.REFUSED:
        if refused_grams not in (None, received_grams):
            raise RuleViolation(
                "acceptance-inconsistent", "refused_grams",
                f"refused_grams must equal the {received_grams} g received when status is "
                "REFUSED",
            )
        refused = received_grams
    else:
        if refused_grams is None or not 0 < refused_grams < received_grams:
            raise RuleViolation(
                "acceptance-inconsistent", "refused_grams",
                f"PARTIALLY_REFUSED needs 0 < refused_grams < {received_grams} g received "
                f"(got {refused_grams})",
            )
        refused = refused_grams
    if refused > 0 and not refusal_reason.strip():
        raise RuleViolation("refusal-reason-missing", "refusal_reason",
                            "a reason is required when anything is refused")
    if category not in plant.categories and status is not AcceptanceStatus.REFUSED:
        raise RuleViolation(
            "category-not-accepted", "status",
            f"plant {plant.plant_id} does not accept {category.value} waste; it can only be "
            "REFUSED",
        )
    return Acceptance(status, received_grams, received_grams - refused, refused,
                      refusal_reason.strip())


def is_discrepant(declared_grams: int, measured_grams: int, tolerance_percent: int) -> bool:
    """Whether measured and declared differ by more than ``tolerance_percent`` % of declared.

    Integer arithmetic, and the same rule as ``BatchReceived.significant_discrepancy``, so an
    auditor replaying the log reaches the same verdict. Nothing declared but something
    measured is always a discrepancy.
    """
    return abs(measured_grams - declared_grams) * 100 > tolerance_percent * declared_grams


def direct_haul_net(gross_grams: int, tare_grams: int) -> int:
    """Net weight of a vehicle weighed at the plant; the tare may not exceed the gross."""
    if tare_grams >= gross_grams:
        raise RuleViolation(
            "tare-not-below-gross", "tare_grams",
            f"tare {tare_grams} g must be below the gross {gross_grams} g: nothing was delivered",
        )
    return gross_grams - tare_grams


@dataclass(frozen=True)
class ReceiptBalance:
    """What is left to account for on a receipt."""

    receipt_id: str
    plant_id: str
    category: Category
    accepted_grams: int
    refused_grams: int
    treated_grams: int
    redirected_grams: int

    @property
    def untreated_grams(self) -> int:
        """Accepted grams not yet covered by a treatment record."""
        return self.accepted_grams - self.treated_grams

    @property
    def held_refused_grams(self) -> int:
        """Refused grams still at the plant (not yet redirected)."""
        return self.refused_grams - self.redirected_grams


def check_treatment(
    receipt: ReceiptBalance,
    plant: PlantRules,
    methods: Mapping[TreatmentMethod, int],
    *,
    output_grams: int = 0,
    residue_grams: int = 0,
    residue_destination: str = "",
    energy_kwh: int = 0,
) -> int:
    """Validate one treatment record against the receipt; returns the grams it treats.

    Only methods the plant is permitted may be used, and the running total of all the
    receipt's records never exceeds what was accepted. What comes out (outputs and
    residue) cannot outweigh what went in, and only energy-recovering methods yield kWh.
    """
    if not methods:
        raise RuleViolation("treatment-empty", "methods", "give grams for at least one method")
    for method, grams in methods.items():
        if grams <= 0:
            raise RuleViolation("treatment-empty", f"methods.{method.value}",
                                f"{method.value}: grams must be positive, got {grams}")
    forbidden = sorted(m.value for m in methods if m not in plant.methods)
    if forbidden:
        permitted = ", ".join(sorted(m.value for m in plant.methods))
        raise RuleViolation(
            "method-not-permitted", "methods",
            f"plant {plant.plant_id} is not permitted to use {', '.join(forbidden)} "
            f"(permitted: {permitted})",
        )
    treated = sum(methods.values())
    if receipt.treated_grams + treated > receipt.accepted_grams:
        raise RuleViolation(
            "treatment-exceeds-accepted", "methods",
            f"methods sum to {treated} g; with the {receipt.treated_grams} g already treated "
            f"that makes {receipt.treated_grams + treated} g, more than the "
            f"{receipt.accepted_grams} g accepted on receipt {receipt.receipt_id} "
            f"(at most {receipt.untreated_grams} g remain)",
        )
    if output_grams + residue_grams > treated:
        raise RuleViolation(
            "outputs-exceed-input", "outputs",
            f"outputs ({output_grams} g) and residue ({residue_grams} g) weigh more than the "
            f"{treated} g treated (a kg/g mix-up?)",
        )
    if residue_grams > 0 and not residue_destination.strip():
        raise RuleViolation("residue-destination-missing", "residue_destination",
                            "say where the residue went when residue_grams > 0")
    if energy_kwh > 0 and not ENERGY_METHODS.intersection(methods):
        raise RuleViolation(
            "energy-without-recovery", "energy_kwh",
            "kWh come only from " + ", ".join(sorted(m.value for m in ENERGY_METHODS)),
        )
    return treated


def check_redirect(
    receipt: ReceiptBalance,
    grams: int,
    destination_kind: Destination,
    destination: PlantRules | None,
) -> None:
    """Validate sending (part of) a receipt's refused waste away; it stays in custody.

    The grams must still be held at the plant; another plant must exist, differ from
    this one and accept the category.
    """
    if receipt.refused_grams == 0:
        raise RuleViolation("nothing-refused", "grams",
                            f"receipt {receipt.receipt_id} refused nothing; nothing to redirect")
    if grams <= 0 or grams > receipt.held_refused_grams:
        raise RuleViolation(
            "redirect-exceeds-refused", "grams",
            f"{receipt.held_refused_grams} g of refused waste are still held at plant "
            f"{receipt.plant_id}; cannot redirect {grams} g",
        )
    if destination_kind == "plant":
        if destination is None:
            raise RuleViolation("unknown-plant", "destination_id", "no such plant is registered")
        if destination.plant_id == receipt.plant_id:
            raise RuleViolation("redirect-to-self", "destination_id",
                                "the refused part must leave this plant")
        if receipt.category not in destination.categories:
            raise RuleViolation(
                "category-not-accepted", "destination_id",
                f"plant {destination.plant_id} does not accept {receipt.category.value} waste",
            )
