"""Full cost (tính đúng, tính đủ): cost per component and tonne, recovery ratios and prices.

Every expected number is worked out by hand in the comment above it.
"""

from decimal import Decimal

import pytest
from pydantic import ValidationError
from wastetrail_billing.domain.full_cost import (
    ComponentCost,
    CostDriver,
    CostEntry,
    DriverCost,
    MethodCost,
    PeriodActivity,
    TreatmentMethod,
    ceil_div,
    compute_full_cost,
)
from wastetrail_contracts.pricing.tariff import Component

TONNE = 1_000_000  # grams

# One quarter of a small city.
ENTRIES = [
    CostEntry(component=Component.COLLECTION, driver=CostDriver.TRIP_KM, amount=600_000_000),
    CostEntry(component=Component.COLLECTION, driver=CostDriver.OVERHEAD, amount=50_000_000),
    CostEntry(component=Component.TRANSPORT, driver=CostDriver.TRIP_KM, amount=300_000_000),
    CostEntry(component=Component.TRANSPORT, driver=CostDriver.STATION_TONNE, amount=120_000_000),
    CostEntry(
        component=Component.TREATMENT,
        driver=CostDriver.PLANT_TONNE,
        treatment_method=TreatmentMethod.INCINERATION_ENERGY_RECOVERY,
        amount=450_000_000,
    ),
    CostEntry(
        component=Component.TREATMENT,
        driver=CostDriver.PLANT_TONNE,
        treatment_method=TreatmentMethod.SANITARY_LANDFILL,
        amount=90_000_000,
    ),
    CostEntry(component=Component.TREATMENT, driver=CostDriver.OVERHEAD, amount=10_000_000),
]
ACTIVITY = PeriodActivity(
    months=3,
    collected_grams=3_000 * TONNE,
    treated_grams=2_900 * TONNE,
    chargeable_grams=2_700 * TONNE,  # 300 t were free sorted recyclables/hazardous
    treated_grams_by_method={
        TreatmentMethod.INCINERATION_ENERGY_RECOVERY: 2_000 * TONNE,
        TreatmentMethod.SANITARY_LANDFILL: 900 * TONNE,
    },
    households_billed=10_000,
    revenue_billed=1_215_000_000,
    revenue_collected=1_093_500_000,
)


def test_full_cost_per_component_per_tonne_and_recovery_prices() -> None:
    # collection 650,000,000; transport 420,000,000; treatment 550,000,000;
    # total 1,620,000,000.
    # per tonne (half-up): collection /3,000 t = 216,666.67 → 216,667; transport /3,000 t
    #   = 140,000; treatment per tonne TREATED /2,900 t = 189,655.17 → 189,655.
    # per kg of chargeable mass (2,700,000 kg), rounded UP:
    #   650,000,000 / 2.7e6 = 240.74 → 241; 420,000,000 / 2.7e6 = 155.56 → 156;
    #   550,000,000 / 2.7e6 = 203.70 → 204.
    # per household-month (10,000 × 3 = 30,000), rounded UP:
    #   21,666.67 → 21,667; 14,000; 18,333.33 → 18,334 (half-up would be 18,333).
    report = compute_full_cost(ENTRIES, ACTIVITY)
    assert report.total_cost == 1_620_000_000
    assert report.components == (
        ComponentCost(
            component=Component.COLLECTION,
            amount=650_000_000,
            per_tonne=216_667,
            recovery_price_per_kg=241,
            recovery_price_per_household_month=21_667,
        ),
        ComponentCost(
            component=Component.TRANSPORT,
            amount=420_000_000,
            per_tonne=140_000,
            recovery_price_per_kg=156,
            recovery_price_per_household_month=14_000,
        ),
        ComponentCost(
            component=Component.TREATMENT,
            amount=550_000_000,
            per_tonne=189_655,
            recovery_price_per_kg=204,
            recovery_price_per_household_month=18_334,
        ),
    )
    # total per tonne collected: 1,620,000,000 / 3,000 = 540,000.
    assert report.cost_per_tonne_collected == 540_000
    # total per kg: 1,620,000,000 / 2,700,000 = 600 exactly (stays 600: ceiling of a whole
    # number). The components' own ceilings add up to 601 — one đồng more, as documented.
    assert report.recovery_price_per_kg == 600
    assert sum(c.recovery_price_per_kg or 0 for c in report.components) == 601
    # per household-month: 1,620,000,000 / 30,000 = 54,000.
    assert report.recovery_price_per_household_month == 54_000


def test_cost_recovery_ratios_billed_and_collected() -> None:
    # 1,215,000,000 / 1,620,000,000 = 0.75; 1,093,500,000 / 1,620,000,000 = 0.675.
    report = compute_full_cost(ENTRIES, ACTIVITY)
    assert report.recovery_ratio_billed == Decimal("0.7500")
    assert report.recovery_ratio_collected == Decimal("0.6750")


def test_breakdown_by_driver_and_treatment_method() -> None:
    # trip_km 600 + 300 = 900 M; station 120 M; plant 450 + 90 = 540 M; overhead 50 + 10 = 60 M.
    # incineration 450,000,000 / 2,000 t = 225,000 đ/t; landfill 90,000,000 / 900 t = 100,000.
    report = compute_full_cost(ENTRIES, ACTIVITY)
    assert report.by_driver == (
        DriverCost(driver=CostDriver.TRIP_KM, amount=900_000_000),
        DriverCost(driver=CostDriver.STATION_TONNE, amount=120_000_000),
        DriverCost(driver=CostDriver.PLANT_TONNE, amount=540_000_000),
        DriverCost(driver=CostDriver.OVERHEAD, amount=60_000_000),
    )
    assert report.by_method == (
        MethodCost(
            method=TreatmentMethod.INCINERATION_ENERGY_RECOVERY,
            amount=450_000_000,
            treated_grams=2_000 * TONNE,
            per_tonne=225_000,
        ),
        MethodCost(
            method=TreatmentMethod.SANITARY_LANDFILL,
            amount=90_000_000,
            treated_grams=900 * TONNE,
            per_tonne=100_000,
        ),
    )


def test_recovery_price_is_rounded_up_so_the_cost_is_always_covered() -> None:
    # 1,000,001 đ over 1,000 kg = 1,000.001 đ/kg → 1,001 (half-up would give 1,000, and
    # 1,000 × 1,000 kg = 1,000,000 < 1,000,001: one đồng short).
    # Per household-month: 1,000,001 / (7 × 1) = 142,857.29 → 142,858 (half-up: 142,857).
    activity = PeriodActivity(
        months=1,
        collected_grams=1_000_000,
        treated_grams=1_000_000,
        households_billed=7,
        revenue_billed=0,
        revenue_collected=0,
    )
    entry = CostEntry(component=Component.COLLECTION, driver=CostDriver.TRIP_KM, amount=1_000_001)
    report = compute_full_cost([entry], activity)
    assert report.recovery_price_per_kg == 1_001
    assert report.recovery_price_per_kg * 1_000 >= report.total_cost
    assert report.recovery_price_per_household_month == 142_858
    assert report.recovery_price_per_household_month * 7 >= report.total_cost


def test_per_kg_price_uses_chargeable_mass_when_given() -> None:
    # 600,000 đ over all 1,000 kg collected would be 600 đ/kg; only 800 kg pay
    # (200 kg free sorted recyclables), so 600,000 / 800 = 750 đ/kg.
    base = {
        "months": 1,
        "collected_grams": 1_000_000,
        "treated_grams": 1_000_000,
        "households_billed": 1,
        "revenue_billed": 0,
        "revenue_collected": 0,
    }
    entry = CostEntry(component=Component.TREATMENT, driver=CostDriver.OVERHEAD, amount=600_000)
    everything = compute_full_cost([entry], PeriodActivity.model_validate(base))
    assert everything.recovery_price_per_kg == 600
    chargeable = compute_full_cost(
        [entry], PeriodActivity.model_validate({**base, "chargeable_grams": 800_000})
    )
    assert chargeable.recovery_price_per_kg == 750


def test_ratio_is_rounded_half_up_to_four_places() -> None:
    # 1 / 20,000 = 0.00005 → 0.0001 (half-even would give 0.0000); 2 / 3 = 0.66667 → 0.6667.
    def ratio(billed: int, cost: int) -> Decimal | None:
        activity = PeriodActivity(
            months=1,
            collected_grams=0,
            treated_grams=0,
            households_billed=0,
            revenue_billed=billed,
            revenue_collected=billed,
        )
        entry = CostEntry(component=Component.COLLECTION, driver=CostDriver.OVERHEAD, amount=cost)
        return compute_full_cost([entry], activity).recovery_ratio_billed

    assert ratio(1, 20_000) == Decimal("0.0001")
    assert ratio(2, 3) == Decimal("0.6667")
    assert ratio(3, 2) == Decimal("1.5000")  # over-recovery is reported, not capped


def test_nothing_to_divide_by_gives_none_not_an_error() -> None:
    activity = PeriodActivity(
        months=1,
        collected_grams=0,
        treated_grams=0,
        households_billed=0,
        revenue_billed=0,
        revenue_collected=0,
    )
    report = compute_full_cost([], activity)
    assert report.total_cost == 0
    assert report.recovery_ratio_billed is None
    assert report.cost_per_tonne_collected is None
    assert report.recovery_price_per_kg is None
    assert report.recovery_price_per_household_month is None
    assert [c.amount for c in report.components] == [0, 0, 0]


def test_a_plant_cost_needs_its_treatment_method() -> None:
    with pytest.raises(ValidationError, match="treatment_method"):
        CostEntry(component=Component.TREATMENT, driver=CostDriver.PLANT_TONNE, amount=1)
    with pytest.raises(ValidationError, match="treatment_method"):
        CostEntry(
            component=Component.TRANSPORT,
            driver=CostDriver.TRIP_KM,
            treatment_method=TreatmentMethod.COMPOSTING,
            amount=1,
        )


def test_inputs_are_validated() -> None:
    with pytest.raises(ValidationError, match="amount"):
        CostEntry(component=Component.COLLECTION, driver=CostDriver.TRIP_KM, amount=-1)
    with pytest.raises(ValidationError, match="chargeable_grams"):
        PeriodActivity(
            months=1,
            collected_grams=100,
            treated_grams=100,
            chargeable_grams=101,
            households_billed=1,
            revenue_billed=0,
            revenue_collected=0,
        )
    with pytest.raises(ValidationError, match="treated_grams_by_method"):
        PeriodActivity(
            months=1,
            collected_grams=100,
            treated_grams=100,
            treated_grams_by_method={TreatmentMethod.COMPOSTING: 101},
            households_billed=1,
            revenue_billed=0,
            revenue_collected=0,
        )
    with pytest.raises(ValidationError, match="months"):
        PeriodActivity.model_validate(
            {
                "months": 0,
                "collected_grams": 0,
                "treated_grams": 0,
                "households_billed": 0,
                "revenue_billed": 0,
                "revenue_collected": 0,
            }
        )


def test_ceil_div() -> None:
    assert ceil_div(10, 5) == 2
    assert ceil_div(11, 5) == 3
    assert ceil_div(0, 5) == 0
    with pytest.raises(ValueError, match="denominator"):
        ceil_div(1, 0)
