"""Tariffs as data: the Art. 79 rule, the example TOML files, and refusing bad documents."""

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from wastetrail_contracts.pricing.tariff import (
    Basis,
    Category,
    CommuneClass,
    Component,
    CustomerClass,
    FlatMonthlyRule,
    MonthlyMassTiersRule,
    PerBagRule,
    PerKgRule,
    PerLitreRule,
    Tariff,
    TariffError,
    charged_category,
    load_tariff,
)

TARIFFS = Path(__file__).resolve().parents[1] / "tariffs"
HOUSEHOLD = CustomerClass.HOUSEHOLD


def example(name: str) -> Tariff:
    return load_tariff((TARIFFS / name).read_text(encoding="utf-8"))


# --- Art. 79: what a load is charged as -----------------------------------------


@pytest.mark.parametrize("category", [Category.RECYCLABLE, Category.HAZARDOUS])
def test_separately_sorted_recyclable_and_hazardous_are_free_for_households(
    category: Category,
) -> None:
    assert charged_category(category, HOUSEHOLD, refused=False) is None


@pytest.mark.parametrize("category", [Category.FOOD, Category.OTHER, Category.BULKY])
def test_other_household_categories_are_charged_as_themselves(category: Category) -> None:
    assert charged_category(category, HOUSEHOLD, refused=False) is category


@pytest.mark.parametrize(
    "customer", [CustomerClass.INDIVIDUAL_BUSINESS, CustomerClass.ORGANISATION]
)
@pytest.mark.parametrize("category", [Category.RECYCLABLE, Category.HAZARDOUS])
def test_the_exemption_is_for_households_only(customer: CustomerClass, category: Category) -> None:
    assert charged_category(category, customer, refused=False) is category


@pytest.mark.parametrize("customer", list(CustomerClass))
@pytest.mark.parametrize("category", list(Category))
def test_refused_waste_is_charged_as_other_whatever_was_declared(
    customer: CustomerClass, category: Category
) -> None:
    # A bag declared "recyclable" but refused as unsorted was not separately sorted.
    assert charged_category(category, customer, refused=True) is Category.OTHER


def test_enum_values_match_the_shared_contract_spelling() -> None:
    assert [c.value for c in Category] == ["recyclable", "food", "other", "hazardous", "bulky"]
    assert [c.value for c in CommuneClass] == ["urban", "rural"]
    assert [c.value for c in CustomerClass] == ["household", "individual_business", "organisation"]
    assert [c.value for c in Component] == ["collection", "transport", "treatment"]


# --- the example tariffs -----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["hcmc_tiered_example.toml", "hanoi_per_kg_example.toml", "rural_flat_example.toml"]
)
def test_every_example_says_it_is_an_example_and_marks_assumptions(name: str) -> None:
    text = (TARIFFS / name).read_text(encoding="utf-8")
    tariff = load_tariff(text)
    assert "EXAMPLE" in tariff.label
    assert "not" in tariff.label
    assert "official" in tariff.label
    assert "assumed" in tariff.note
    assert "# EXAMPLE" in text.splitlines()[0]
    assert "# assumed" in text


def test_hcmc_example_has_the_decision_base_amounts_and_tier_boundaries() -> None:
    tariff = example("hcmc_tiered_example.toml")
    (version,) = tariff.versions
    assert version.vat_rate_bp == 800  # 8 %
    rules = version.rules_for(CommuneClass.URBAN, HOUSEHOLD)
    assert [(r.category, r.component) for r in rules] == [
        (Category.OTHER, Component.COLLECTION),
        (Category.OTHER, Component.TRANSPORT),
    ]
    collection, transport = rules
    assert isinstance(collection, MonthlyMassTiersRule)
    assert isinstance(transport, MonthlyMassTiersRule)
    assert (collection.base_amount, transport.base_amount) == (Decimal(61000), Decimal(23000))
    for rule in (collection, transport):
        assert rule.base_up_to_kg == Decimal(126)
        assert [t.up_to_kg for t in rule.tiers] == [Decimal(250), Decimal(420), None]
        # The whole household mass is tiered, not each bag type separately.
        assert rule.priced_categories == (Category.OTHER, Category.FOOD, Category.BULKY)


def test_hanoi_example_steps_from_242_4_to_771_1_per_kg() -> None:
    tariff = example("hanoi_per_kg_example.toml")
    assert [v.effective_from for v in tariff.versions] == [
        date(2026, 1, 1),
        date(2026, 7, 1),
        date(2027, 1, 1),
        date(2027, 7, 1),
    ]

    def price_per_kg(day: date, category: Category) -> Decimal:
        version = tariff.version_on(day)
        assert version is not None
        total = Decimal(0)
        for rule in version.rules_for(CommuneClass.URBAN, HOUSEHOLD):
            assert isinstance(rule, PerKgRule)
            if rule.category is category:
                total += rule.price_per_kg
        return total

    for category in (Category.FOOD, Category.OTHER):
        # Exact decimals, not 242.39999…: the file writes them as strings.
        assert price_per_kg(date(2026, 1, 1), category) == Decimal("242.4")
        assert price_per_kg(date(2026, 6, 30), category) == Decimal("242.4")
        assert price_per_kg(date(2026, 7, 1), category) == Decimal("402.4")
        assert price_per_kg(date(2027, 1, 1), category) == Decimal("582.4")
        assert price_per_kg(date(2027, 7, 1), category) == Decimal("771.1")
    assert tariff.version_on(date(2025, 12, 31)) is None


def test_rural_flat_example_is_60000_urban_and_20000_rural_per_household() -> None:
    tariff = example("rural_flat_example.toml")
    (version,) = tariff.versions
    for commune, expected in ((CommuneClass.URBAN, 60_000), (CommuneClass.RURAL, 20_000)):
        rules = version.rules_for(commune, HOUSEHOLD)
        assert all(isinstance(rule, FlatMonthlyRule) for rule in rules)
        assert sum(rule.amount for rule in rules if isinstance(rule, FlatMonthlyRule)) == expected
    bags = version.rules_for(CommuneClass.URBAN, CustomerClass.INDIVIDUAL_BUSINESS)
    assert all(isinstance(rule, PerBagRule) for rule in bags)
    litres = version.rules_for(CommuneClass.URBAN, CustomerClass.ORGANISATION)
    assert [r.price_per_litre for r in litres if isinstance(r, PerLitreRule)] == [
        Decimal(120),
        Decimal("60.5"),
    ]


def test_version_on_picks_the_version_in_force_on_the_day() -> None:
    tariff = example("hanoi_per_kg_example.toml")
    first, second, _, last = tariff.versions
    assert tariff.version_on(date(2026, 6, 30)) == first
    assert tariff.version_on(date(2026, 7, 1)) == second  # in force from its own date
    assert tariff.version_on(date(2040, 1, 1)) == last


def test_tariff_models_are_frozen() -> None:
    tariff = example("rural_flat_example.toml")
    with pytest.raises(ValidationError):
        tariff.versions[0].vat_rate_bp = 1000


# --- bad documents are refused, naming the path --------------------------------------

HEADER = """
province = "P"
label = "L"
note = "N"
[[versions]]
effective_from = 2026-01-01
vat_rate_bp = 800
"""
KEY = """
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "collection"
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(TariffError) as caught:
        load_tariff(text)
    return {p.path: p.message for p in caught.value.problems}


def test_a_good_minimal_document_loads() -> None:
    tariff = load_tariff(HEADER + KEY + 'basis = "per_kg"\nprice_per_kg = "242.4"\n')
    (rule,) = tariff.versions[0].rules
    assert isinstance(rule, PerKgRule)
    assert rule.basis is Basis.PER_KG
    assert rule.price_per_kg == Decimal("242.4")


def test_a_float_price_is_refused_naming_the_field() -> None:
    found = problems(HEADER + KEY + 'basis = "per_kg"\nprice_per_kg = 242.4\n')
    assert list(found) == ["versions[0].rules[0].price_per_kg"]
    assert "decimal string" in found["versions[0].rules[0].price_per_kg"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("-1", "negative"),
        ('"242.4001"', "3 decimal places"),
        ('"abc"', "not a decimal number"),
        ("true", "boolean"),
        ('"NaN"', "finite"),
    ],
)
def test_bad_prices_are_refused_naming_the_field(value: str, words: str) -> None:
    found = problems(HEADER + KEY + f'basis = "per_kg"\nprice_per_kg = {value}\n')
    assert words in found["versions[0].rules[0].price_per_kg"]


def test_an_unknown_basis_is_refused_at_the_basis_field() -> None:
    found = problems(HEADER + KEY + 'basis = "per_tonne"\nprice_per_kg = 1\n')
    message = found["versions[0].rules[0].basis"]
    assert "per_tonne" in message
    assert "monthly_mass_tiers" in message


def test_a_missing_basis_is_refused_at_the_basis_field() -> None:
    found = problems(HEADER + KEY + "price_per_kg = 1\n")
    assert "missing basis" in found["versions[0].rules[0].basis"]


def test_an_unknown_enum_value_is_refused_naming_the_field() -> None:
    bad = KEY.replace('"urban"', '"suburban"')
    found = problems(HEADER + bad + 'basis = "per_kg"\nprice_per_kg = 1\n')
    assert "versions[0].rules[0].commune_class" in found


def test_a_misspelt_field_is_refused_not_ignored() -> None:
    found = problems(HEADER + KEY + 'basis = "per_kg"\nprice_per_kg = 1\nprice_per_kilo = 2\n')
    assert "versions[0].rules[0].price_per_kilo" in found


def test_a_missing_price_is_refused_naming_the_field() -> None:
    found = problems(HEADER + KEY + 'basis = "flat_monthly"\n')
    assert "versions[0].rules[0].amount" in found


def test_the_vat_rate_must_be_an_integer_in_basis_points() -> None:
    found = problems(
        HEADER.replace("vat_rate_bp = 800", 'vat_rate_bp = "800"')
        + KEY
        + 'basis = "per_kg"\nprice_per_kg = 1\n'
    )
    assert "versions[0].vat_rate_bp" in found
    found = problems(
        HEADER.replace("vat_rate_bp = 800", "vat_rate_bp = 10001")
        + KEY
        + 'basis = "per_kg"\nprice_per_kg = 1\n'
    )
    assert "versions[0].vat_rate_bp" in found


def test_effective_from_must_be_a_toml_date() -> None:
    text = HEADER.replace("effective_from = 2026-01-01", 'effective_from = "01/01/2026"')
    found = problems(text + KEY + 'basis = "per_kg"\nprice_per_kg = 1\n')
    assert "versions[0].effective_from" in found


def test_a_bad_bag_price_names_the_bag_size() -> None:
    found = problems(HEADER + KEY + 'basis = "per_bag"\nbag_prices = { "20l" = 1.5 }\n')
    assert "versions[0].rules[0].bag_prices['20l']" in found


TIERS = 'basis = "monthly_mass_tiers"\nbase_amount = 61000\nbase_up_to_kg = 126\n'


@pytest.mark.parametrize(
    ("tiers", "words"),
    [
        ("[{ up_to_kg = 100, price_per_kg = 1 }, { price_per_kg = 2 }]", "above the previous"),
        (
            "[{ up_to_kg = 250, price_per_kg = 1 }, { up_to_kg = 250, price_per_kg = 2 },"
            " { price_per_kg = 3 }]",
            "above the previous",
        ),
        ("[{ up_to_kg = 250, price_per_kg = 1 }]", "last tier"),
        ("[{ price_per_kg = 1 }, { up_to_kg = 420, price_per_kg = 2 }]", "not the last"),
        ("[]", "at least one tier"),
    ],
)
def test_tier_boundaries_must_ascend_and_end_unbounded(tiers: str, words: str) -> None:
    found = problems(HEADER + KEY + TIERS + f"tiers = {tiers}\n")
    assert words in found["versions[0].rules[0].tiers"]


def test_two_rules_for_the_same_key_are_refused() -> None:
    rule = KEY + 'basis = "per_kg"\nprice_per_kg = 1\n'
    found = problems(HEADER + rule + rule)
    message = found["versions[0].rules"]
    assert "rules[0] and rules[1] both price urban/household/other/collection" in message


def test_a_pooled_category_cannot_also_have_its_own_rule() -> None:
    pooled = KEY + TIERS + 'pooled_categories = ["food"]\ntiers = [{ price_per_kg = 1 }]\n'
    food = KEY.replace('"other"', '"food"') + 'basis = "per_kg"\nprice_per_kg = 1\n'
    found = problems(HEADER + pooled + food)
    assert "urban/household/food/collection" in found["versions[0].rules"]


def test_versions_must_be_in_date_order() -> None:
    rule = KEY + 'basis = "per_kg"\nprice_per_kg = 1\n'
    older = HEADER.split("[[versions]]")[1].replace("2026-01-01", "2025-01-01")
    found = problems(HEADER + rule + "[[versions]]" + older + rule)
    assert "must be after" in found["versions"]


def test_an_empty_document_names_every_missing_field() -> None:
    found = problems("")
    assert set(found) == {"province", "label", "note", "versions"}


def test_a_toml_syntax_error_is_a_tariff_error() -> None:
    found = problems("province = \n")
    assert "<toml>" in found


def test_every_problem_is_reported_at_once() -> None:
    text = (
        HEADER
        + KEY
        + 'basis = "per_kg"\nprice_per_kg = 1.5\n'
        + KEY
        + 'basis = "per_litre"\nprice_per_litre = -2\n'
    )
    with pytest.raises(TariffError) as caught:
        load_tariff(text)
    assert [p.path for p in caught.value.problems] == [
        "versions[0].rules[0].price_per_kg",
        "versions[0].rules[1].price_per_litre",
    ]
    assert "versions[0].rules[1].price_per_litre" in str(caught.value)
