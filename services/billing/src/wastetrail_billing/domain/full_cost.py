"""Full cost recovery (*tính đúng, tính đủ chi phí*, Law on Environmental Protection Art. 79).

Totals what collection, transport and treatment really cost over a period, and
compares it with what was billed and collected:

- cost per component, per driver (trip km, station tonne, plant tonne, overhead)
  and per treatment method;
- cost per tonne: collection and transport per tonne *collected*, treatment per
  tonne *treated* (each component per the mass it actually handled), the total per
  tonne collected — reported, so rounded half-up to whole đồng;
- cost-recovery ratios, billed / full cost and collected / full cost, as decimals
  with four places (0.8123 = 81.23 %), rounded half-up;
- the tariff that would recover the full cost: per kg of *chargeable* mass and per
  household per month, rounded UP to whole đồng. Up, because a recovery price
  rounded down falls short on every kg and every household-month it is applied to
  (1 đ/kg short on 100,000 t is 100 million đồng a year), which is exactly what
  full cost recovery forbids; rounding up over-recovers by less than 1 đ per unit.
  Per kg divides by the chargeable mass, not the collected mass, because separately
  sorted recyclables and hazardous waste are free (Art. 79) and their cost has to be
  carried by the kg that do pay. Nothing is added for unpaid bills: compare the
  two recovery ratios to see that gap.
"""

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator
from wastetrail_contracts.pricing.fees import round_half_up
from wastetrail_contracts.pricing.tariff import Component

_MODEL_CONFIG = ConfigDict(strict=True, frozen=True, extra="forbid")
_GRAMS_PER_TONNE = 1_000_000


class CostDriver(StrEnum):
    """What an operating cost is incurred per."""

    TRIP_KM = "trip_km"  # vehicle running cost per km driven on trips
    STATION_TONNE = "station_tonne"  # transfer station cost per tonne handled
    PLANT_TONNE = "plant_tonne"  # treatment plant cost per tonne, by method
    OVERHEAD = "overhead"  # administration, billing, depreciation not tied to a driver


class TreatmentMethod(StrEnum):
    """Treatment methods (same values as the shared contracts, to be re-pointed later)."""

    RECYCLING = "recycling"
    COMPOSTING = "composting"
    ANAEROBIC_DIGESTION = "anaerobic_digestion"
    INCINERATION_ENERGY_RECOVERY = "incineration_energy_recovery"
    CO_PROCESSING = "co_processing"
    SANITARY_LANDFILL = "sanitary_landfill"
    DIRECT_LANDFILL = "direct_landfill"


class CostEntry(BaseModel):
    """One operating cost of the period, in đồng, tagged with the component it serves."""

    model_config = _MODEL_CONFIG

    component: Annotated[Component, Strict(False)]
    driver: Annotated[CostDriver, Strict(False)]
    amount: Annotated[int, Field(ge=0)]
    # validate_default: a plant_tonne entry that omits the method must be refused.
    treatment_method: Annotated[TreatmentMethod | None, Strict(False)] = Field(
        default=None, validate_default=True
    )
    description: str = ""

    @field_validator("treatment_method")
    @classmethod
    def _method_only_for_plants(
        cls, method: TreatmentMethod | None, info: ValidationInfo
    ) -> TreatmentMethod | None:
        is_plant = info.data.get("driver") is CostDriver.PLANT_TONNE
        if is_plant and method is None:
            raise ValueError("a plant_tonne cost needs the treatment_method it paid for")
        if not is_plant and method is not None:
            raise ValueError("only plant_tonne costs have a treatment_method")
        return method


class PeriodActivity(BaseModel):
    """What the period's costs bought and what was billed for it."""

    model_config = _MODEL_CONFIG

    months: Annotated[int, Field(ge=1)]
    collected_grams: Annotated[int, Field(ge=0)]
    treated_grams: Annotated[int, Field(ge=0)]
    # Mass actually charged for (collected minus free sorted recyclable/hazardous);
    # None means every collected gram was chargeable.
    chargeable_grams: Annotated[int | None, Field(ge=0)] = None
    treated_grams_by_method: dict[
        Annotated[TreatmentMethod, Strict(False)], Annotated[int, Field(ge=0)]
    ] = Field(default_factory=dict)
    households_billed: Annotated[int, Field(ge=0)]  # accounts billed per month, on average
    revenue_billed: Annotated[int, Field(ge=0)]
    revenue_collected: Annotated[int, Field(ge=0)]

    @field_validator("chargeable_grams")
    @classmethod
    def _chargeable_within_collected(cls, grams: int | None, info: ValidationInfo) -> int | None:
        collected = info.data.get("collected_grams")
        if grams is not None and isinstance(collected, int) and grams > collected:
            raise ValueError(f"{grams} g chargeable is more than the {collected} g collected")
        return grams

    @field_validator("treated_grams_by_method")
    @classmethod
    def _methods_within_treated(
        cls, by_method: dict[TreatmentMethod, int], info: ValidationInfo
    ) -> dict[TreatmentMethod, int]:
        treated = info.data.get("treated_grams")
        if isinstance(treated, int) and sum(by_method.values()) > treated:
            raise ValueError(f"adds up to more than the {treated} g treated")
        return by_method

    @property
    def billable_grams(self) -> int:
        """The chargeable mass, defaulting to all collected mass."""
        return self.collected_grams if self.chargeable_grams is None else self.chargeable_grams


class ComponentCost(BaseModel):
    """Full cost of one component and the price that would recover it."""

    model_config = _MODEL_CONFIG

    component: Component
    amount: int
    per_tonne: int | None  # None when the mass it is divided by is zero
    recovery_price_per_kg: int | None
    recovery_price_per_household_month: int | None


class DriverCost(BaseModel):
    """Total cost incurred per one driver."""

    model_config = _MODEL_CONFIG

    driver: CostDriver
    amount: int


class MethodCost(BaseModel):
    """Treatment plant cost for one method, per tonne when its tonnes are known."""

    model_config = _MODEL_CONFIG

    method: TreatmentMethod
    amount: int
    treated_grams: int | None
    per_tonne: int | None


class FullCostReport(BaseModel):
    """The period's full cost, the cost-recovery ratios and the full-cost tariff."""

    model_config = _MODEL_CONFIG

    months: int
    total_cost: int
    components: tuple[ComponentCost, ...]  # always all three, in Component order
    by_driver: tuple[DriverCost, ...]
    by_method: tuple[MethodCost, ...]
    cost_per_tonne_collected: int | None
    revenue_billed: int
    revenue_collected: int
    recovery_ratio_billed: Decimal | None  # None when the full cost is zero
    recovery_ratio_collected: Decimal | None
    recovery_price_per_kg: int | None
    recovery_price_per_household_month: int | None


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounded up, for non-negative numerator and positive denominator."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("ceil_div needs numerator ≥ 0 and denominator > 0")
    return -(-numerator // denominator)


def _per_tonne(amount: int, grams: int) -> int | None:
    return None if grams == 0 else round_half_up(Fraction(amount * _GRAMS_PER_TONNE, grams))


def _ratio(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return Decimal(round_half_up(Fraction(part * 10_000, whole))).scaleb(-4)


def _recovery_prices(amount: int, activity: PeriodActivity) -> tuple[int | None, int | None]:
    grams = activity.billable_grams
    household_months = activity.households_billed * activity.months
    per_kg = None if grams == 0 else ceil_div(amount * 1000, grams)
    per_household_month = None if household_months == 0 else ceil_div(amount, household_months)
    return per_kg, per_household_month


def compute_full_cost(entries: Sequence[CostEntry], activity: PeriodActivity) -> FullCostReport:
    """Total the period's operating costs and derive cost recovery and the full-cost tariff.

    Per-tonne figures are rounded half-up (they are reported); recovery prices are
    rounded up (they must recover at least the cost — see the module docstring).
    Each component's recovery prices are computed on its own, so the three can add
    up to one or two đồng more than the total's.
    """
    by_component: defaultdict[Component, int] = defaultdict(int)
    by_driver: defaultdict[CostDriver, int] = defaultdict(int)
    by_method: defaultdict[TreatmentMethod, int] = defaultdict(int)
    for entry in entries:
        by_component[entry.component] += entry.amount
        by_driver[entry.driver] += entry.amount
        if entry.treatment_method is not None:
            by_method[entry.treatment_method] += entry.amount
    total = sum(by_component.values())

    components: list[ComponentCost] = []
    for component in Component:
        amount = by_component[component]
        handled = (
            activity.treated_grams if component is Component.TREATMENT else activity.collected_grams
        )
        per_kg, per_household_month = _recovery_prices(amount, activity)
        components.append(
            ComponentCost(
                component=component,
                amount=amount,
                per_tonne=_per_tonne(amount, handled),
                recovery_price_per_kg=per_kg,
                recovery_price_per_household_month=per_household_month,
            )
        )

    methods: list[MethodCost] = []
    for method in TreatmentMethod:
        if method not in by_method and method not in activity.treated_grams_by_method:
            continue
        grams = activity.treated_grams_by_method.get(method)
        methods.append(
            MethodCost(
                method=method,
                amount=by_method[method],
                treated_grams=grams,
                per_tonne=None if grams is None else _per_tonne(by_method[method], grams),
            )
        )

    per_kg, per_household_month = _recovery_prices(total, activity)
    return FullCostReport(
        months=activity.months,
        total_cost=total,
        components=tuple(components),
        by_driver=tuple(
            DriverCost(driver=driver, amount=by_driver[driver])
            for driver in CostDriver
            if driver in by_driver
        ),
        by_method=tuple(methods),
        cost_per_tonne_collected=_per_tonne(total, activity.collected_grams),
        revenue_billed=activity.revenue_billed,
        revenue_collected=activity.revenue_collected,
        recovery_ratio_billed=_ratio(activity.revenue_billed, total),
        recovery_ratio_collected=_ratio(activity.revenue_collected, total),
        recovery_price_per_kg=per_kg,
        recovery_price_per_household_month=per_household_month,
    )
