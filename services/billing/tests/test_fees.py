"""compute_invoice: every basis, the rounding rule, Art. 79, proration, credits.

Every expected number is worked out by hand in the comment above it.
"""

import random
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from wastetrail_contracts.pricing.fees import (
    Account,
    BillingMonth,
    ChargedQuantity,
    Credit,
    Invoice,
    InvoiceError,
    UnchargedQuantity,
    UnchargedReason,
    Unit,
    VatLine,
    compute_invoice,
    compute_supplement,
    price_boundaries,
    prorate_grams,
    round_half_up,
)
from wastetrail_contracts.pricing.tariff import (
    Basis,
    Category,
    CommuneClass,
    Component,
    CustomerClass,
    Tariff,
    load_tariff,
    parse_tariff,
)

TARIFFS = Path(__file__).resolve().parents[1] / "tariffs"
HCMC = load_tariff((TARIFFS / "hcmc_tiered_example.toml").read_text(encoding="utf-8"))
HANOI = load_tariff((TARIFFS / "hanoi_per_kg_example.toml").read_text(encoding="utf-8"))
FLAT = load_tariff((TARIFFS / "rural_flat_example.toml").read_text(encoding="utf-8"))

URBAN_HOUSEHOLD = Account(commune_class=CommuneClass.URBAN, customer_class=CustomerClass.HOUSEHOLD)
RURAL_HOUSEHOLD = Account(commune_class=CommuneClass.RURAL, customer_class=CustomerClass.HOUSEHOLD)
URBAN_BUSINESS = Account(
    commune_class=CommuneClass.URBAN, customer_class=CustomerClass.INDIVIDUAL_BUSINESS
)
URBAN_ORGANISATION = Account(
    commune_class=CommuneClass.URBAN, customer_class=CustomerClass.ORGANISATION
)


def load(
    day: date,
    category: Category,
    grams: int,
    *,
    litres: int | None = None,
    bag_size: str | None = None,
    bag_count: int = 1,
    refused: bool = False,
) -> ChargedQuantity:
    return ChargedQuantity(
        collected_on=day,
        category=category,
        grams=grams,
        litres=litres,
        bag_size=bag_size,
        bag_count=bag_count,
        refused=refused,
    )


def rule(category: str, component: str, basis: str, **price: object) -> dict[str, object]:
    return {
        "commune_class": "urban",
        "customer_class": "household",
        "category": category,
        "component": component,
        "basis": basis,
        **price,
    }


def version(effective_from: date, vat_rate_bp: int, *rules: dict[str, object]) -> dict[str, object]:
    return {"effective_from": effective_from, "vat_rate_bp": vat_rate_bp, "rules": list(rules)}


def tariff(*versions: dict[str, object]) -> Tariff:
    return parse_tariff(
        {"province": "Test", "label": "test", "note": "test", "versions": list(versions)}
    )


def amounts(invoice: Invoice) -> list[int]:
    return [line.amount for line in invoice.lines]


def totals(invoice: Invoice) -> tuple[int, int, int, int]:
    return invoice.subtotal, invoice.vat, invoice.total, invoice.amount_due


MAR_2026 = BillingMonth(year=2026, month=3)
FEB_2026 = BillingMonth(year=2026, month=2)
OCT_2025 = BillingMonth(year=2025, month=10)


# --- the rounding primitives --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(0), 0),
        (Fraction(49, 100), 0),
        (Fraction(1, 2), 1),  # half-even would give 0
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),  # half-even would give 2
        (Fraction(9093, 20), 455),  # 454.65
        (Fraction(909, 2), 455),  # 454.5 — half-even would give 454
    ],
)
def test_round_half_up(value: Fraction, expected: int) -> None:
    assert round_half_up(value) == expected


def test_round_half_up_refuses_negative_amounts() -> None:
    with pytest.raises(ValueError, match="negative"):
        round_half_up(Fraction(-1, 2))


def test_prorate_grams() -> None:
    # 250 kg × 10/30 = 83,333.33 g → 83,333; 126 kg × 20/30 = 84,000 g exactly;
    # 0.001 kg × 1/2 = 0.5 g → 1 (half-up).
    assert prorate_grams(Decimal(250), 10, 30) == 83_333
    assert prorate_grams(Decimal(126), 20, 30) == 84_000
    assert prorate_grams(Decimal("0.001"), 1, 2) == 1
    assert prorate_grams(Decimal(126), 31, 31) == 126_000


# --- flat_monthly -------------------------------------------------------------------


def test_flat_monthly_urban_household_pays_60000_with_or_without_loads() -> None:
    # 30,000 collection + 15,000 transport + 15,000 treatment; VAT 0 % → 60,000.
    invoice = compute_invoice(URBAN_HOUSEHOLD, MAR_2026, FLAT, [])
    assert amounts(invoice) == [30_000, 15_000, 15_000]
    assert [line.component for line in invoice.lines] == list(Component)
    assert all(
        line.unit is Unit.MONTH and line.basis is Basis.FLAT_MONTHLY for line in invoice.lines
    )
    assert totals(invoice) == (60_000, 0, 60_000, 60_000)

    # Loads do not change a flat bill; they are reported as not priced.
    with_loads = compute_invoice(
        URBAN_HOUSEHOLD,
        MAR_2026,
        FLAT,
        [
            load(date(2026, 3, 2), Category.FOOD, 4_000),
            load(date(2026, 3, 9), Category.OTHER, 2_500),
        ],
    )
    assert totals(with_loads) == (60_000, 0, 60_000, 60_000)
    assert with_loads.uncharged == (
        UnchargedQuantity(category=Category.FOOD, reason=UnchargedReason.NOT_PRICED, grams=4_000),
        UnchargedQuantity(category=Category.OTHER, reason=UnchargedReason.NOT_PRICED, grams=2_500),
    )


def test_flat_monthly_rural_household_pays_20000() -> None:
    # 10,000 + 5,000 + 5,000.
    invoice = compute_invoice(RURAL_HOUSEHOLD, MAR_2026, FLAT, [])
    assert amounts(invoice) == [10_000, 5_000, 5_000]
    assert invoice.total == 20_000


# --- per_kg with a fractional price ----------------------------------------------------


def test_per_kg_with_a_fractional_price() -> None:
    # Hanoi 242.4 đ/kg, collection only, Feb 2026.
    # food 10,000 g: 10 kg × 242.4 = 2,424.0 → 2,424
    # other 5,250 + 2,500 = 7,750 g: 7.75 × 242.4 = 1,878.6 → 1,879
    # subtotal 4,303; VAT 8 % = 344.24 → 344; total 4,647.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD,
        FEB_2026,
        HANOI,
        [
            load(date(2026, 2, 3), Category.FOOD, 10_000),
            load(date(2026, 2, 10), Category.OTHER, 5_250),
            load(date(2026, 2, 20), Category.OTHER, 2_500),
        ],
    )
    assert [(line.category, line.component) for line in invoice.lines] == [
        (Category.FOOD, Component.COLLECTION),
        (Category.OTHER, Component.COLLECTION),
    ]
    food, other = invoice.lines
    assert (food.quantity, food.unit, food.unit_price, food.amount) == (
        Decimal(10),
        Unit.KG,
        Decimal("242.4"),
        2_424,
    )
    assert (other.quantity, other.amount) == (Decimal("7.75"), 1_879)
    assert totals(invoice) == (4_303, 344, 4_647, 4_647)
    assert invoice.vat_lines == (VatLine(rate_bp=800, taxable=4_303, vat=344),)


def test_a_line_that_lands_on_half_a_dong_rounds_up() -> None:
    # 1,875 g × 242.4 đ/kg = 454.5 → 455 (half-even would say 454).
    # VAT 8 % of 455 = 36.4 → 36; total 491.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD, FEB_2026, HANOI, [load(date(2026, 2, 1), Category.OTHER, 1_875)]
    )
    assert amounts(invoice) == [455]
    assert totals(invoice) == (455, 36, 491, 491)


def test_rounding_is_per_line_not_per_load() -> None:
    # Two loads of 1,875 g: one line of 3.75 kg × 242.4 = 909.0 → 909.
    # Rounding each load first would give 455 + 455 = 910.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD,
        FEB_2026,
        HANOI,
        [
            load(date(2026, 2, 1), Category.OTHER, 1_875),
            load(date(2026, 2, 2), Category.OTHER, 1_875),
        ],
    )
    assert amounts(invoice) == [909]


def test_vat_half_a_dong_rounds_up() -> None:
    # 5 đ/kg × 5 kg = 25; VAT 10 % = 2.5 → 3 (half-even would say 2); total 28.
    ten_percent = tariff(
        version(date(2026, 1, 1), 1_000, rule("other", "collection", "per_kg", price_per_kg=5))
    )
    invoice = compute_invoice(
        URBAN_HOUSEHOLD, MAR_2026, ten_percent, [load(date(2026, 3, 1), Category.OTHER, 5_000)]
    )
    assert totals(invoice) == (25, 3, 28, 28)


def test_vat_is_computed_on_the_rounded_subtotal_not_per_line() -> None:
    # food 5 kg × 1 = 5, other 5 kg × 1 = 5; subtotal 10; VAT 10 % = 1.0 → 1.
    # VAT per line would be 0.5 → 1 twice = 2.
    one_dong = tariff(
        version(
            date(2026, 1, 1),
            1_000,
            rule("food", "collection", "per_kg", price_per_kg=1),
            rule("other", "collection", "per_kg", price_per_kg=1),
        )
    )
    invoice = compute_invoice(
        URBAN_HOUSEHOLD,
        MAR_2026,
        one_dong,
        [
            load(date(2026, 3, 1), Category.FOOD, 5_000),
            load(date(2026, 3, 1), Category.OTHER, 5_000),
        ],
    )
    assert amounts(invoice) == [5, 5]
    assert totals(invoice) == (10, 1, 11, 11)


def test_hanoi_versions_price_each_month_by_the_version_in_force() -> None:
    # July 2026: 10 kg other × (242.4 collection + 160.0 transport)
    #   = 2,424 + 1,600 = 4,024; VAT 321.92 → 322; total 4,346.
    july_2026 = compute_invoice(
        URBAN_HOUSEHOLD,
        BillingMonth(year=2026, month=7),
        HANOI,
        [load(date(2026, 7, 15), Category.OTHER, 10_000)],
    )
    assert amounts(july_2026) == [2_424, 1_600]
    assert totals(july_2026) == (4_024, 322, 4_346, 4_346)

    # July 2027: 10 kg × (242.4 + 160.0 + 368.7 = 771.1) = 2,424 + 1,600 + 3,687 = 7,711;
    # VAT 616.88 → 617; total 8,328.
    july_2027 = compute_invoice(
        URBAN_HOUSEHOLD,
        BillingMonth(year=2027, month=7),
        HANOI,
        [load(date(2027, 7, 15), Category.OTHER, 10_000)],
    )
    assert amounts(july_2027) == [2_424, 1_600, 3_687]
    assert totals(july_2027) == (7_711, 617, 8_328, 8_328)


# --- per_litre and per_bag ------------------------------------------------------------


def test_per_litre() -> None:
    # Organisation, 240 L + 121 L = 361 L of other.
    # collection 361 × 120 = 43,320; transport 361 × 60.5 = 21,840.5 → 21,841.
    # VAT 0 %; total 65,161. Food has no organisation rule → not priced.
    invoice = compute_invoice(
        URBAN_ORGANISATION,
        MAR_2026,
        FLAT,
        [
            load(date(2026, 3, 3), Category.OTHER, 30_000, litres=240),
            load(date(2026, 3, 17), Category.OTHER, 14_000, litres=121),
            load(date(2026, 3, 17), Category.FOOD, 9_000, litres=60),
        ],
    )
    assert [(line.unit, line.quantity, line.amount) for line in invoice.lines] == [
        (Unit.LITRE, Decimal(361), 43_320),
        (Unit.LITRE, Decimal(361), 21_841),
    ]
    assert totals(invoice) == (65_161, 0, 65_161, 65_161)
    assert invoice.uncharged == (
        UnchargedQuantity(category=Category.FOOD, reason=UnchargedReason.NOT_PRICED, grams=9_000),
    )


def test_per_litre_needs_litres_on_the_load() -> None:
    with pytest.raises(InvoiceError) as caught:
        compute_invoice(
            URBAN_ORGANISATION,
            MAR_2026,
            FLAT,
            [
                load(date(2026, 3, 3), Category.OTHER, 30_000, litres=240),
                load(date(2026, 3, 4), Category.OTHER, 30_000),
            ],
        )
    assert caught.value.field == "quantities[1].litres"


def test_per_bag_by_bag_size() -> None:
    # Household business: food 2 × 20l = 6,000, food 1 × 40l = 5,500,
    # other 1 × 120l = 20,000, other 1 × 20l = 4,000; subtotal 35,500, VAT 0.
    # Its recyclables are not free (not a household) but have no rule → not priced.
    invoice = compute_invoice(
        URBAN_BUSINESS,
        MAR_2026,
        FLAT,
        [
            load(date(2026, 3, 2), Category.FOOD, 7_000, bag_size="20l", bag_count=2),
            load(date(2026, 3, 5), Category.FOOD, 6_000, bag_size="40l"),
            load(date(2026, 3, 6), Category.OTHER, 15_000, bag_size="120l"),
            load(date(2026, 3, 7), Category.OTHER, 2_000, bag_size="20l"),
            load(date(2026, 3, 7), Category.RECYCLABLE, 3_000),
        ],
    )
    assert [(line.category, line.band, line.quantity, line.amount) for line in invoice.lines] == [
        (Category.FOOD, "20l", Decimal(2), 6_000),
        (Category.FOOD, "40l", Decimal(1), 5_500),
        (Category.OTHER, "120l", Decimal(1), 20_000),
        (Category.OTHER, "20l", Decimal(1), 4_000),
    ]
    assert totals(invoice) == (35_500, 0, 35_500, 35_500)
    assert invoice.uncharged == (
        UnchargedQuantity(
            category=Category.RECYCLABLE, reason=UnchargedReason.NOT_PRICED, grams=3_000
        ),
    )


@pytest.mark.parametrize("bag_size", ["30l", None])
def test_per_bag_refuses_a_bag_size_the_tariff_does_not_price(bag_size: str | None) -> None:
    with pytest.raises(InvoiceError) as caught:
        compute_invoice(
            URBAN_BUSINESS,
            MAR_2026,
            FLAT,
            [load(date(2026, 3, 2), Category.FOOD, 7_000, bag_size=bag_size)],
        )
    assert caught.value.field == "quantities[0].bag_size"
    assert "120l, 20l, 40l" in caught.value.detail


# --- monthly_mass_tiers (HCMC example, 31-day month, no proration) --------------------
# collection: 61,000 up to 126 kg, then 520 / 560 / 600 đ/kg for 126–250 / 250–420 / >420;
# transport:  23,000 up to 126 kg, then 200 / 215 / 230 đ/kg; VAT 8 %.


def hcmc(*grams_by_category: tuple[Category, int]) -> Invoice:
    return compute_invoice(
        URBAN_HOUSEHOLD,
        OCT_2025,
        HCMC,
        [load(date(2025, 10, 1 + i), c, g) for i, (c, g) in enumerate(grams_by_category)],
    )


@pytest.mark.parametrize("grams", [0, 100_000, 126_000])
def test_tiers_base_covers_up_to_126_kg_inclusive(grams: int) -> None:
    # 61,000 + 23,000 = 84,000; VAT 6,720; total 90,720 — at 0, 100 and exactly 126 kg.
    invoice = hcmc((Category.OTHER, grams))
    assert [(line.band, line.amount) for line in invoice.lines] == [
        ("≤126 kg", 61_000),
        ("≤126 kg", 23_000),
    ]
    assert totals(invoice) == (84_000, 6_720, 90_720, 90_720)


def test_tiers_one_gram_over_the_base() -> None:
    # 126,001 g: 1 g in the 126–250 band. collection 0.001 × 520 = 0.52 → 1;
    # transport 0.001 × 200 = 0.2 → 0. subtotal 84,001; VAT 6,720.08 → 6,720; total 90,721.
    invoice = hcmc((Category.OTHER, 126_001))
    assert [(line.band, line.quantity, line.amount) for line in invoice.lines] == [
        ("≤126 kg", Decimal(1), 61_000),
        ("126–250 kg", Decimal("0.001"), 1),
        ("≤126 kg", Decimal(1), 23_000),
        ("126–250 kg", Decimal("0.001"), 0),
    ]
    assert totals(invoice) == (84_001, 6_720, 90_721, 90_721)


def test_tiers_exactly_at_250_kg() -> None:
    # 124 kg in band 1: collection 124 × 520 = 64,480; transport 124 × 200 = 24,800.
    # subtotal 84,000 + 64,480 + 24,800 = 173,280; VAT 13,862.4 → 13,862; total 187,142.
    invoice = hcmc((Category.FOOD, 100_000), (Category.OTHER, 150_000))
    assert [(line.band, line.amount) for line in invoice.lines] == [
        ("≤126 kg", 61_000),
        ("126–250 kg", 64_480),
        ("≤126 kg", 23_000),
        ("126–250 kg", 24_800),
    ]
    assert totals(invoice) == (173_280, 13_862, 187_142, 187_142)


def test_tiers_exactly_at_420_kg() -> None:
    # + 170 kg in band 2: collection 170 × 560 = 95,200; transport 170 × 215 = 36,550.
    # subtotal 173,280 + 95,200 + 36,550 = 305,030; VAT 24,402.4 → 24,402; total 329,432.
    invoice = hcmc((Category.OTHER, 420_000))
    assert [(line.band, line.amount) for line in invoice.lines] == [
        ("≤126 kg", 61_000),
        ("126–250 kg", 64_480),
        ("250–420 kg", 95_200),
        ("≤126 kg", 23_000),
        ("126–250 kg", 24_800),
        ("250–420 kg", 36_550),
    ]
    assert totals(invoice) == (305_030, 24_402, 329_432, 329_432)


def test_tiers_across_every_band_pooling_food_other_and_bulky() -> None:
    # food 200 + other 250 + bulky 50 = 500 kg pooled; recyclable 30 kg and hazardous
    # 1 kg are free (Art. 79). + 80 kg above 420: collection 80 × 600 = 48,000;
    # transport 80 × 230 = 18,400. subtotal 305,030 + 48,000 + 18,400 = 371,430;
    # VAT 29,714.4 → 29,714; total 401,144.
    invoice = hcmc(
        (Category.FOOD, 200_000),
        (Category.OTHER, 250_000),
        (Category.BULKY, 50_000),
        (Category.RECYCLABLE, 30_000),
        (Category.HAZARDOUS, 1_000),
    )
    assert [(line.component, line.band, line.quantity, line.amount) for line in invoice.lines] == [
        (Component.COLLECTION, "≤126 kg", Decimal(1), 61_000),
        (Component.COLLECTION, "126–250 kg", Decimal(124), 64_480),
        (Component.COLLECTION, "250–420 kg", Decimal(170), 95_200),
        (Component.COLLECTION, ">420 kg", Decimal(80), 48_000),
        (Component.TRANSPORT, "≤126 kg", Decimal(1), 23_000),
        (Component.TRANSPORT, "126–250 kg", Decimal(124), 24_800),
        (Component.TRANSPORT, "250–420 kg", Decimal(170), 36_550),
        (Component.TRANSPORT, ">420 kg", Decimal(80), 18_400),
    ]
    assert all(
        line.covers == (Category.OTHER, Category.FOOD, Category.BULKY) for line in invoice.lines
    )
    assert totals(invoice) == (371_430, 29_714, 401_144, 401_144)
    assert invoice.uncharged == (
        UnchargedQuantity(
            category=Category.RECYCLABLE, reason=UnchargedReason.FREE_SORTED, grams=30_000
        ),
        UnchargedQuantity(
            category=Category.HAZARDOUS, reason=UnchargedReason.FREE_SORTED, grams=1_000
        ),
    )


# --- Art. 79: free sorted waste, refused waste charged as other --------------------------


def test_household_recyclable_and_hazardous_are_free_and_refused_is_charged_as_other() -> None:
    # Hanoi 242.4 đ/kg: recyclable 3 kg and hazardous 0.5 kg sorted → free.
    # A recyclable bag of 2 kg refused as unsorted → other: 2 × 242.4 = 484.8 → 485.
    # VAT 38.8 → 39; total 524.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD,
        FEB_2026,
        HANOI,
        [
            load(date(2026, 2, 2), Category.RECYCLABLE, 3_000),
            load(date(2026, 2, 2), Category.HAZARDOUS, 500),
            load(date(2026, 2, 9), Category.RECYCLABLE, 2_000, refused=True),
        ],
    )
    (line,) = invoice.lines
    assert (line.category, line.quantity, line.amount) == (Category.OTHER, Decimal(2), 485)
    assert totals(invoice) == (485, 39, 524, 524)
    assert invoice.refused_grams == 2_000
    assert invoice.uncharged == (
        UnchargedQuantity(
            category=Category.RECYCLABLE, reason=UnchargedReason.FREE_SORTED, grams=3_000
        ),
        UnchargedQuantity(
            category=Category.HAZARDOUS, reason=UnchargedReason.FREE_SORTED, grams=500
        ),
    )


def test_a_household_with_only_sorted_recyclables_pays_nothing_per_kg() -> None:
    invoice = compute_invoice(
        URBAN_HOUSEHOLD, FEB_2026, HANOI, [load(date(2026, 2, 2), Category.RECYCLABLE, 9_000)]
    )
    assert invoice.lines == ()
    assert totals(invoice) == (0, 0, 0, 0)


def test_organisations_pay_for_recyclables() -> None:
    # HCMC organisation: recyclable 10 kg × 300 = 3,000 (collection);
    # food 20 kg × 650 = 13,000 collection + 20 × 250 = 5,000 transport.
    # subtotal 21,000; VAT 1,680; total 22,680.
    invoice = compute_invoice(
        URBAN_ORGANISATION,
        OCT_2025,
        HCMC,
        [
            load(date(2025, 10, 3), Category.FOOD, 20_000),
            load(date(2025, 10, 3), Category.RECYCLABLE, 10_000),
        ],
    )
    assert [(line.category, line.component, line.amount) for line in invoice.lines] == [
        (Category.RECYCLABLE, Component.COLLECTION, 3_000),
        (Category.FOOD, Component.COLLECTION, 13_000),
        (Category.FOOD, Component.TRANSPORT, 5_000),
    ]
    assert totals(invoice) == (21_000, 1_680, 22_680, 22_680)


def test_refused_hazardous_from_an_organisation_is_charged_as_other() -> None:
    # 4 kg refused → other: 4 × 650 = 2,600 + 4 × 250 = 1,000; VAT 288; total 3,888.
    invoice = compute_invoice(
        URBAN_ORGANISATION,
        OCT_2025,
        HCMC,
        [load(date(2025, 10, 3), Category.HAZARDOUS, 4_000, refused=True)],
    )
    assert [(line.category, line.amount) for line in invoice.lines] == [
        (Category.OTHER, 2_600),
        (Category.OTHER, 1_000),
    ]
    assert totals(invoice) == (3_600, 288, 3_888, 3_888)


# --- a tariff change mid-month ----------------------------------------------------------

JUNE_2026 = BillingMonth(year=2026, month=6)  # 30 days
SPLIT = tariff(
    version(
        date(2026, 1, 1),
        800,
        rule("food", "treatment", "per_kg", price_per_kg="100.5"),
        rule("other", "collection", "flat_monthly", amount=30_000),
        rule(
            "other",
            "transport",
            "monthly_mass_tiers",
            base_amount=12_000,
            base_up_to_kg=126,
            tiers=[{"up_to_kg": 250, "price_per_kg": 100}, {"price_per_kg": 200}],
        ),
    ),
    version(
        date(2026, 6, 11),
        800,
        rule("food", "treatment", "per_kg", price_per_kg=200),
        rule("other", "collection", "flat_monthly", amount=45_000),
        rule(
            "other",
            "transport",
            "monthly_mass_tiers",
            base_amount=15_000,
            base_up_to_kg=126,
            tiers=[{"up_to_kg": 250, "price_per_kg": 150}, {"price_per_kg": 300}],
        ),
    ),
)


def test_a_mid_month_change_splits_the_month_by_effective_date() -> None:
    # Old version 1–10 June (10/30 days), new version 11–30 June (20/30 days).
    # Old: food 3 kg × 100.5 = 301.5 → 302; flat 30,000 × 10/30 = 10,000;
    #   tier base 12,000 × 10/30 = 4,000; thresholds 126 kg × 10/30 = 42,000 g,
    #   250 kg × 10/30 = 83,333.3 → 83,333 g; other mass 50 + 40 = 90 kg:
    #   41,333 g × 100 = 4,133.3 → 4,133; 6,667 g × 200 = 1,333.4 → 1,333.
    #   Old sum 302 + 10,000 + 4,000 + 4,133 + 1,333 = 19,768.
    # New: food 4 kg × 200 = 800; flat 45,000 × 20/30 = 30,000;
    #   tier base 15,000 × 20/30 = 10,000; thresholds 84,000 g and 166,666.7 → 166,667 g;
    #   other mass 100 + 80 = 180 kg: 82,667 g × 150 = 12,400.05 → 12,400;
    #   13,333 g × 300 = 3,999.9 → 4,000.
    #   New sum 800 + 30,000 + 10,000 + 12,400 + 4,000 = 57,200.
    # subtotal 76,968; VAT 8 % = 6,157.44 → 6,157; total 83,125.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD,
        JUNE_2026,
        SPLIT,
        [
            load(date(2026, 6, 5), Category.OTHER, 50_000),
            load(date(2026, 6, 10), Category.OTHER, 40_000),
            load(date(2026, 6, 10), Category.FOOD, 3_000),
            load(date(2026, 6, 11), Category.OTHER, 100_000),
            load(date(2026, 6, 11), Category.FOOD, 4_000),
            load(date(2026, 6, 30), Category.OTHER, 80_000),
        ],
    )
    summary = [
        (line.period_start.day, line.period_end.day, line.days_in_force, line.band, line.amount)
        for line in invoice.lines
    ]
    assert summary == [
        (1, 10, 10, None, 302),
        (1, 10, 10, None, 10_000),
        (1, 10, 10, "≤42 kg", 4_000),
        (1, 10, 10, "42–83.333 kg", 4_133),
        (1, 10, 10, ">83.333 kg", 1_333),
        (11, 30, 20, None, 800),
        (11, 30, 20, None, 30_000),
        (11, 30, 20, "≤84 kg", 10_000),
        (11, 30, 20, "84–166.667 kg", 12_400),
        (11, 30, 20, ">166.667 kg", 4_000),
    ]
    assert [line.tariff_effective_from for line in invoice.lines] == [date(2026, 1, 1)] * 5 + [
        date(2026, 6, 11)
    ] * 5
    assert totals(invoice) == (76_968, 6_157, 83_125, 83_125)


def test_prorated_flat_amounts_round_half_up_per_line() -> None:
    # July 2026 has 31 days; change on the 16th: 15 days old, 16 days new.
    # 30,000 × 15/31 = 14,516.13 → 14,516; 45,000 × 16/31 = 23,225.81 → 23,226.
    flat = tariff(
        version(date(2026, 1, 1), 0, rule("other", "collection", "flat_monthly", amount=30_000)),
        version(date(2026, 7, 16), 0, rule("other", "collection", "flat_monthly", amount=45_000)),
    )
    invoice = compute_invoice(URBAN_HOUSEHOLD, BillingMonth(year=2026, month=7), flat, [])
    assert amounts(invoice) == [14_516, 23_226]
    assert invoice.total == 37_742


def test_a_vat_rate_change_mid_month_taxes_each_part_at_its_rate() -> None:
    # 15/30 days each: 30,000 × 15/30 = 15,000 at 8 % → 1,200; 15,000 at 10 % → 1,500.
    changing = tariff(
        version(date(2026, 1, 1), 800, rule("other", "collection", "flat_monthly", amount=30_000)),
        version(
            date(2026, 6, 16), 1_000, rule("other", "collection", "flat_monthly", amount=30_000)
        ),
    )
    invoice = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, changing, [])
    assert invoice.vat_lines == (
        VatLine(rate_bp=800, taxable=15_000, vat=1_200),
        VatLine(rate_bp=1_000, taxable=15_000, vat=1_500),
    )
    assert totals(invoice) == (30_000, 2_700, 32_700, 32_700)


def test_days_before_the_first_version_are_not_charged() -> None:
    # In force from 11 June: 30,000 × 20/30 = 20,000.
    late = tariff(
        version(date(2026, 6, 11), 0, rule("other", "collection", "flat_monthly", amount=30_000))
    )
    assert compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, late, []).total == 20_000
    with pytest.raises(InvoiceError) as caught:
        compute_invoice(
            URBAN_HOUSEHOLD, JUNE_2026, late, [load(date(2026, 6, 5), Category.OTHER, 1_000)]
        )
    assert caught.value.field == "quantities[0].collected_on"
    assert "no tariff version" in caught.value.detail


# --- credits ---------------------------------------------------------------------------

FEB_LOADS = [
    load(date(2026, 2, 3), Category.FOOD, 10_000),
    load(date(2026, 2, 10), Category.OTHER, 7_750),
]  # total 4,647 (see test_per_kg_with_a_fractional_price)


def test_credits_reduce_the_amount_due() -> None:
    # 4,647 − 1,000 = 3,647; nothing carried over.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD, FEB_2026, HANOI, FEB_LOADS, [Credit(reference="EPR-1", amount=1_000)]
    )
    assert invoice.total == 4_647
    assert (invoice.credits_applied, invoice.amount_due, invoice.credit_carried_over) == (
        1_000,
        3_647,
        0,
    )


def test_credits_larger_than_the_total_never_make_it_negative() -> None:
    # 3,000 + 2,500 = 5,500 available against 4,647: apply 4,647, due 0, carry 853.
    invoice = compute_invoice(
        URBAN_HOUSEHOLD,
        FEB_2026,
        HANOI,
        FEB_LOADS,
        [Credit(reference="EPR-1", amount=3_000), Credit(reference="EPR-2", amount=2_500)],
    )
    assert invoice.credits_available == 5_500
    assert invoice.credits_applied == 4_647
    assert invoice.amount_due == 0
    assert invoice.credit_carried_over == 853
    assert invoice.total == 4_647  # VAT is on the charges; a refund does not reduce it


# --- input errors -----------------------------------------------------------------------


def test_a_load_outside_the_billing_month_is_refused() -> None:
    with pytest.raises(InvoiceError) as caught:
        compute_invoice(
            URBAN_HOUSEHOLD,
            FEB_2026,
            HANOI,
            [load(date(2026, 2, 28), Category.FOOD, 1), load(date(2026, 3, 1), Category.FOOD, 1)],
        )
    assert caught.value.field == "quantities[1].collected_on"


def test_an_account_class_missing_from_the_tariff_is_refused() -> None:
    # Hanoi example prices ward households only; billing a rural one 0 đ would hide the gap.
    with pytest.raises(InvoiceError) as caught:
        compute_invoice(RURAL_HOUSEHOLD, FEB_2026, HANOI, [])
    assert caught.value.field == "account"


# --- determinism -----------------------------------------------------------------------


def test_same_input_same_invoice_whatever_the_order_of_the_loads() -> None:
    loads = [
        load(date(2026, 6, 5), Category.OTHER, 50_000),
        load(date(2026, 6, 10), Category.FOOD, 3_000),
        load(date(2026, 6, 11), Category.OTHER, 100_000),
        load(date(2026, 6, 12), Category.RECYCLABLE, 2_000),
        load(date(2026, 6, 20), Category.RECYCLABLE, 1_000, refused=True),
        load(date(2026, 6, 30), Category.FOOD, 4_000),
    ]
    credits = [Credit(reference="EPR-9", amount=500)]
    first = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, loads, credits)
    again = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, loads, credits)
    shuffled = list(loads)
    random.Random(7).shuffle(shuffled)
    reordered = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, shuffled, credits)
    assert first == again == reordered
    assert first.model_dump_json() == reordered.model_dump_json()
    assert first.amount_due > 0


# --- pricing sums of loads (what month-end invoicing does) -------------------------------


def test_price_boundaries_are_the_days_a_version_starts_or_ends_in_the_month() -> None:
    assert price_boundaries(SPLIT, JUNE_2026) == (
        date(2026, 6, 1), date(2026, 6, 11), date(2026, 7, 1))
    assert price_boundaries(HANOI, JUNE_2026) == (date(2026, 6, 1), date(2026, 7, 1))
    late = tariff(
        version(date(2026, 6, 11), 0, rule("other", "collection", "flat_monthly", amount=30_000))
    )
    assert price_boundaries(late, JUNE_2026) == (
        date(2026, 6, 1), date(2026, 6, 11), date(2026, 7, 1))


def summed(loads: list[ChargedQuantity], bounds: tuple[date, ...]) -> list[ChargedQuantity]:
    """The loads summed per category, bag size and span between boundaries, dated on the
    span's first load — the SQL of month-end invoicing, in Python."""
    groups: dict[tuple[Category, str | None, int], list[ChargedQuantity]] = {}
    for x in loads:
        span = sum(1 for b in bounds if b <= x.collected_on)
        groups.setdefault((x.category, x.bag_size, span), []).append(x)
    return [
        load(min(x.collected_on for x in group), category, sum(x.grams for x in group),
             litres=(None if any(x.litres is None for x in group)
                     else sum(x.litres or 0 for x in group)),
             bag_size=bag_size, bag_count=len(group))
        for (category, bag_size, _), group in groups.items()
    ]


@pytest.mark.parametrize("seed", range(20))
def test_summed_loads_are_priced_exactly_as_the_loads_one_by_one(seed: int) -> None:
    # Tiers prorated across a mid-month change (SPLIT), and bags / litres (FLAT business).
    rng = random.Random(seed)
    loads = [load(date(2026, 6, rng.randint(1, 30)), rng.choice(list(Category)),
                  rng.randint(0, 40_000)) for _ in range(rng.randint(0, 60))]
    bounds = price_boundaries(SPLIT, JUNE_2026)
    assert compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, summed(loads, bounds)) == (
        compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, loads))
    bagged = [load(date(2026, 3, rng.randint(1, 31)), rng.choice([Category.FOOD, Category.OTHER]),
                   rng.randint(0, 9_000), bag_size=rng.choice(["20l", "40l", "120l"]),
                   litres=rng.randint(0, 120)) for _ in range(rng.randint(1, 40))]
    bounds = price_boundaries(FLAT, MAR_2026)
    assert compute_invoice(URBAN_BUSINESS, MAR_2026, FLAT, summed(bagged, bounds)) == (
        compute_invoice(URBAN_BUSINESS, MAR_2026, FLAT, bagged))


# --------------------------------------------------------------- supplementary invoices


def _split_loads(rng: random.Random, count: int) -> list[ChargedQuantity]:
    return [load(date(2026, 6, rng.randint(1, 30)),
                 rng.choice([Category.FOOD, Category.OTHER, Category.RECYCLABLE]),
                 rng.randint(1, 60_000), refused=rng.random() < 0.05)
            for _ in range(count)]


@pytest.mark.parametrize("seed", range(25))
def test_a_month_and_its_supplement_add_up_to_the_month_priced_with_every_load(
        seed: int) -> None:
    # Mid-month change, per-kg with half-đồng prices, tiers pooled across loads: whatever
    # late loads come, invoice + supplement = one invoice of every load, line by line.
    rng = random.Random(seed)
    on_time, late = _split_loads(rng, rng.randint(0, 12)), _split_loads(rng, rng.randint(1, 6))
    billed = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, on_time)
    full = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, on_time + late)

    extra = compute_supplement(full, billed)

    assert billed.subtotal + extra.subtotal == full.subtotal
    assert billed.vat + extra.vat == full.vat
    assert extra.total == extra.subtotal + extra.vat == extra.amount_due
    assert extra.subtotal == sum(line.amount for line in extra.lines)
    assert all(line.amount >= 0 and line.quantity >= 0 for line in extra.lines)
    # Flat monthly amounts were billed once, on the month's invoice.
    assert not [line for line in extra.lines if line.unit is Unit.MONTH]
    assert extra.refused_grams == sum(x.grams for x in late if x.refused)
    assert sum(u.grams for u in billed.uncharged) + sum(u.grams for u in extra.uncharged) == (
        sum(u.grams for u in full.uncharged))


def test_a_supplement_bills_a_late_load_at_the_tier_the_month_reached() -> None:
    # 200 kg of other on time in October (HCMC): base up to 126 kg, then 74 kg in the
    # 126–250 kg band. A late 100 kg load: 50 kg more in that band, 50 kg in the next.
    billed = hcmc((Category.OTHER, 200_000))
    full = compute_invoice(URBAN_HOUSEHOLD, OCT_2025, HCMC, [
        load(date(2025, 10, 1), Category.OTHER, 200_000),
        load(date(2025, 10, 20), Category.OTHER, 100_000)])

    extra = compute_supplement(full, billed, [Credit(reference="c", amount=1_000)])

    # collection 520 / 560 đ/kg, transport 200 / 215 đ/kg in those bands.
    assert [(line.component, line.band, line.quantity, line.amount) for line in extra.lines] == [
        (Component.COLLECTION, "126–250 kg", Decimal(50), 26_000),
        (Component.COLLECTION, "250–420 kg", Decimal(50), 28_000),
        (Component.TRANSPORT, "126–250 kg", Decimal(50), 10_000),
        (Component.TRANSPORT, "250–420 kg", Decimal(50), 10_750)]
    assert extra.subtotal == full.subtotal - billed.subtotal == 74_750
    assert extra.vat == full.vat - billed.vat
    assert (extra.credits_applied, extra.amount_due) == (1_000, extra.total - 1_000)


def test_a_supplement_of_loads_a_flat_fee_covers_is_a_zero_invoice() -> None:
    billed = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, FLAT, [])
    full = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, FLAT,
                           [load(date(2026, 6, 3), Category.OTHER, 5_000)])
    extra = compute_supplement(full, billed)
    assert (extra.lines, extra.total) == ((), 0)


def test_a_supplement_refuses_inputs_that_price_the_month_lower() -> None:
    more = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT,
                           [load(date(2026, 6, 3), Category.FOOD, 5_000)])
    less = compute_invoice(URBAN_HOUSEHOLD, JUNE_2026, SPLIT, [])
    with pytest.raises(InvoiceError) as caught:
        compute_supplement(less, more)
    assert caught.value.field == "lines"
    other_month = compute_invoice(URBAN_HOUSEHOLD, OCT_2025, HCMC, [])
    with pytest.raises(InvoiceError) as caught:
        compute_supplement(more, other_month)
    assert caught.value.field == "billed"
