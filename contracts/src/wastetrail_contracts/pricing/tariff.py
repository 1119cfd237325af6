"""Tariffs as versioned data.

A `Tariff` is one province's price document. It holds `TariffVersion`s, each in
force from its `effective_from` date until the next version's date; a new version
replaces the previous one entirely (every rule is restated), so an auditor can read
any version on its own. A version has a VAT rate in basis points and a list of
rules, each keyed by commune class × customer class × category × component and
priced on one basis:

- `flat_monthly`        — đồng per account per month, whatever was collected;
- `per_kg`              — đồng per kg of the loads' weight (fractions allowed: 242.4);
- `per_litre`           — đồng per litre of the loads' declared volume;
- `per_bag`             — đồng per priced bag, by bag size label ("20l", "40l", ...);
- `monthly_mass_tiers`  — a fixed monthly amount that covers the mass up to a
  threshold, then a price per kg for each band above it (HCMC Decision 67/2025).

Prices are `Decimal`s with at most three decimal places (milli-đồng); they are given
as integers or decimal strings, never as floats, because 242.4 as a binary float
is 242.39999… and this is money.

Which category a load is charged as — separately sorted recyclable and hazardous
waste is free for households, refused waste is charged as `other` — is decided in
one place: `charged_category`.
"""

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from wastetrail_contracts.enums import Category as Category
from wastetrail_contracts.enums import CommuneClass as CommuneClass
from wastetrail_contracts.enums import CustomerClass as CustomerClass

# Categories and classes are the contracts' shared vocabulary, re-exported above so the fee
# arithmetic and its callers read as before.


class Component(StrEnum):
    """The three parts a service price is split into."""

    COLLECTION = "collection"
    TRANSPORT = "transport"
    TREATMENT = "treatment"


class Basis(StrEnum):
    """How a rule turns what was collected into đồng."""

    FLAT_MONTHLY = "flat_monthly"
    PER_KG = "per_kg"
    PER_LITRE = "per_litre"
    PER_BAG = "per_bag"
    MONTHLY_MASS_TIERS = "monthly_mass_tiers"


# Categories a household never pays for when it sorted them separately.
FREE_FOR_HOUSEHOLDS: frozenset[Category] = frozenset({Category.RECYCLABLE, Category.HAZARDOUS})


def charged_category(
    category: Category, customer_class: CustomerClass, *, refused: bool
) -> Category | None:
    """Return the category a load is charged as, or None when it is free.

    The one place the exemption rule lives:

    1. Waste the collector refused (unsorted, wrongly sorted, not in the prescribed
       packaging — Art. 77) was not "separately sorted", so it is charged as
       `other`, whatever category the household declared. This comes first: a bag
       declared recyclable but refused pays like any other bag.
    2. Separately sorted `recyclable` and `hazardous` waste from a household is
       free (Law on Environmental Protection 2020, Art. 79). Businesses and
       organisations pay whatever their tariff says for these categories.
    3. Everything else is charged as the category it was collected as.
    """
    if refused:
        return Category.OTHER
    if customer_class is CustomerClass.HOUSEHOLD and category in FREE_FOR_HOUSEHOLDS:
        return None
    return category


def _to_decimal(value: object) -> Decimal:
    """Parse a price or a mass from TOML/JSON/Python without ever going through float."""
    if isinstance(value, bool):
        # bool is an int subclass; `true` as a price is a typo, not 1 đồng.
        raise ValueError("expected an integer or a decimal string, got a boolean")
    if isinstance(value, float):
        raise ValueError(
            f'write fractional amounts as a decimal string, e.g. "{value}", not as a float'
        )
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    else:
        raise ValueError(f"expected an integer or a decimal string, got {type(value).__name__}")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if number < 0:
        raise ValueError("must not be negative")
    if (number * 1000) % 1 != 0:
        # Milli-đồng (and whole grams, for kg thresholds) is the finest unit kept.
        raise ValueError(f"{number} has more than 3 decimal places")
    return number


# Đồng (or đồng per unit); an integer or a decimal string, ≥ 0, ≤ 3 decimals.
Price = Annotated[Decimal, BeforeValidator(_to_decimal)]
# A mass threshold in kg; 3 decimals = whole grams.
Kilograms = Annotated[Decimal, BeforeValidator(_to_decimal), Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]

# Strict everywhere (no "12" → 12, no 1.0 → 1), except that enums accept their
# string values, since that is how TOML and JSON spell them.
_LaxCommuneClass = Annotated[CommuneClass, Strict(False)]
_LaxCustomerClass = Annotated[CustomerClass, Strict(False)]
_LaxCategory = Annotated[Category, Strict(False)]
_LaxComponent = Annotated[Component, Strict(False)]

_MODEL_CONFIG = ConfigDict(strict=True, frozen=True, extra="forbid")


class _RuleKey(BaseModel):
    """The four-part key every rule carries."""

    model_config = _MODEL_CONFIG

    commune_class: _LaxCommuneClass
    customer_class: _LaxCustomerClass
    category: _LaxCategory
    component: _LaxComponent

    @property
    def key_categories(self) -> tuple[Category, ...]:
        """Categories this rule claims for its component; at most one rule may claim each."""
        return (self.category,)

    @property
    def priced_categories(self) -> tuple[Category, ...]:
        """Categories whose loads this rule prices by quantity (none for flat rules)."""
        return (self.category,)


class FlatMonthlyRule(_RuleKey):
    """A fixed amount per account per month, whatever was collected.

    The category is nominal — it labels the invoice line (usually `other`); the
    amount is charged even in a month with no loads.
    """

    basis: Literal[Basis.FLAT_MONTHLY]
    amount: Price

    @property
    def priced_categories(self) -> tuple[Category, ...]:
        """A flat rule prices no quantity."""
        return ()


class PerKgRule(_RuleKey):
    """Đồng per kg of the loads' weight."""

    basis: Literal[Basis.PER_KG]
    price_per_kg: Price


class PerLitreRule(_RuleKey):
    """Đồng per litre of the loads' declared volume (container or bag volume)."""

    basis: Literal[Basis.PER_LITRE]
    price_per_litre: Price


class PerBagRule(_RuleKey):
    """Đồng per priced bag, by bag size label (Circular 02/2022 priced bags)."""

    basis: Literal[Basis.PER_BAG]
    bag_prices: Annotated[dict[NonEmptyStr, Price], Field(min_length=1)]


class MassTier(BaseModel):
    """One band above the base: its price per kg applies to the kg inside the band."""

    model_config = _MODEL_CONFIG

    up_to_kg: Kilograms | None = None  # None: no upper bound (only the last tier)
    price_per_kg: Price


class MonthlyMassTiersRule(_RuleKey):
    """A fixed monthly amount covering up to `base_up_to_kg`, then per-kg bands.

    Bands are marginal, like electricity tiers: with a 126 kg base and a
    126–250 kg band, a 300 kg month pays the base + 124 kg at the first band
    price + 50 kg at the second, so the bill never jumps at a boundary. The base
    amount is charged even in a month with no loads.

    `pooled_categories` are further categories whose charged mass counts toward
    the same tiers (HCMC tiers the household's whole mass, not each bag type); the
    invoice line carries `category` and lists every pooled category it covers.
    """

    basis: Literal[Basis.MONTHLY_MASS_TIERS]
    base_amount: Price
    base_up_to_kg: Kilograms
    tiers: Annotated[tuple[MassTier, ...], Strict(False)]
    pooled_categories: Annotated[tuple[_LaxCategory, ...], Strict(False)] = ()

    @field_validator("tiers")
    @classmethod
    def _tiers_ascend(
        cls, tiers: tuple[MassTier, ...], info: ValidationInfo
    ) -> tuple[MassTier, ...]:
        if not tiers:
            raise ValueError("at least one tier is needed, the last one without up_to_kg")
        base = info.data.get("base_up_to_kg")
        lower = base if isinstance(base, Decimal) else Decimal(0)
        for index, tier in enumerate(tiers):
            last = index == len(tiers) - 1
            if tier.up_to_kg is None and not last:
                raise ValueError(f"tiers[{index}] has no up_to_kg but is not the last tier")
            if tier.up_to_kg is not None and last:
                raise ValueError(
                    f"the last tier (tiers[{index}]) must have no up_to_kg, so every mass is priced"
                )
            if tier.up_to_kg is not None:
                if tier.up_to_kg <= lower:
                    raise ValueError(
                        f"tiers[{index}].up_to_kg ({tier.up_to_kg}) must be above the previous "
                        f"boundary ({lower} kg)"
                    )
                lower = tier.up_to_kg
        return tiers

    @field_validator("pooled_categories")
    @classmethod
    def _pool_is_distinct(
        cls, pooled: tuple[Category, ...], info: ValidationInfo
    ) -> tuple[Category, ...]:
        if len(set(pooled)) != len(pooled):
            raise ValueError("pooled_categories lists a category twice")
        if info.data.get("category") in pooled:
            raise ValueError("pooled_categories must not repeat the rule's own category")
        return pooled

    @property
    def key_categories(self) -> tuple[Category, ...]:
        """The rule's category and every pooled category."""
        return (self.category, *self.pooled_categories)

    @property
    def priced_categories(self) -> tuple[Category, ...]:
        """The rule's category and every pooled category."""
        return self.key_categories


TariffRule = Annotated[
    FlatMonthlyRule | PerKgRule | PerLitreRule | PerBagRule | MonthlyMassTiersRule,
    Field(discriminator="basis"),
]


class TariffVersion(BaseModel):
    """The complete set of rules in force from `effective_from` until the next version."""

    model_config = _MODEL_CONFIG

    effective_from: date
    vat_rate_bp: Annotated[int, Field(ge=0, le=10_000)]  # basis points: 800 = 8 %
    note: str = ""
    # Emptiness is checked in the validator: a length constraint here would also
    # fire, misleadingly, whenever one of the items is invalid.
    rules: Annotated[tuple[TariffRule, ...], Strict(False)]

    @field_validator("rules")
    @classmethod
    def _one_rule_per_key(cls, rules: tuple[TariffRule, ...]) -> tuple[TariffRule, ...]:
        # Two rules pricing the same thing would charge it twice (or leave it
        # ambiguous which applies); refuse the document instead of guessing.
        if not rules:
            raise ValueError("a version needs at least one rule")
        seen: dict[tuple[CommuneClass, CustomerClass, Category, Component], int] = {}
        for index, rule in enumerate(rules):
            for category in rule.key_categories:
                key = (rule.commune_class, rule.customer_class, category, rule.component)
                if key in seen:
                    raise ValueError(
                        f"rules[{seen[key]}] and rules[{index}] both price "
                        f"{'/'.join(str(part) for part in key)}"
                    )
                seen[key] = index
        return rules

    def rules_for(
        self, commune_class: CommuneClass, customer_class: CustomerClass
    ) -> tuple[TariffRule, ...]:
        """Rules that apply to an account, ordered by category then component."""
        categories = list(Category)
        components = list(Component)
        matching = [
            rule
            for rule in self.rules
            if rule.commune_class == commune_class and rule.customer_class == customer_class
        ]
        # Keys are unique per version, so this order is total and deterministic.
        return tuple(
            sorted(
                matching,
                key=lambda rule: (
                    categories.index(rule.category),
                    components.index(rule.component),
                ),
            )
        )


class Tariff(BaseModel):
    """One province's tariff document: a label, a note and dated versions."""

    model_config = _MODEL_CONFIG

    province: NonEmptyStr
    label: NonEmptyStr
    note: NonEmptyStr  # the legal basis, or why this is only an example
    versions: Annotated[tuple[TariffVersion, ...], Strict(False)]

    @field_validator("versions")
    @classmethod
    def _versions_ascend(cls, versions: tuple[TariffVersion, ...]) -> tuple[TariffVersion, ...]:
        if not versions:
            raise ValueError("a tariff needs at least one version")
        for index in range(1, len(versions)):
            before, after = versions[index - 1].effective_from, versions[index].effective_from
            if after <= before:
                raise ValueError(
                    f"versions[{index}].effective_from ({after}) must be after "
                    f"versions[{index - 1}].effective_from ({before})"
                )
        return versions

    def version_on(self, day: date) -> TariffVersion | None:
        """The version in force on `day`, or None before the first version."""
        in_force: TariffVersion | None = None
        for version in self.versions:
            if version.effective_from > day:
                break
            in_force = version
        return in_force


@dataclass(frozen=True)
class TariffProblem:
    """One thing wrong with a tariff document, and where."""

    path: str  # e.g. "versions[1].rules[3].price_per_kg"
    message: str


class TariffError(ValueError):
    """A tariff document that cannot be used; `problems` names every bad path."""

    def __init__(self, problems: Sequence[TariffProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {problem.path}: {problem.message}" for problem in self.problems)
        super().__init__(f"invalid tariff document:\n{lines}")


_BASIS_TAGS = frozenset(basis.value for basis in Basis)


def _path(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif previous == "bag_prices":
            parts.append(f"[{item!r}]")  # a bag size key, not a field
        elif item in _BASIS_TAGS:
            # Pydantic puts the union tag in the location; it is not a field.
            continue
        else:
            parts.append(f".{item}" if parts else item)
        previous = item
    return "".join(parts) or "<document>"


def _problem(error: ErrorDetails) -> TariffProblem:
    loc = list(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # Point at the `basis` field itself and list the choices in plain words.
        choices = ", ".join(basis.value for basis in Basis)
        given = error.get("ctx", {}).get("tag")
        what = f"unknown basis {given!r}" if given is not None else "missing basis"
        return TariffProblem(_path([*loc, "basis"]), f"{what}; expected one of: {choices}")
    message = error["msg"].removeprefix("Value error, ")
    return TariffProblem(_path(loc), message)


def parse_tariff(data: Mapping[str, object]) -> Tariff:
    """Validate an already-parsed tariff document; raise `TariffError` naming each bad path."""
    try:
        return Tariff.model_validate(data)
    except ValidationError as exc:
        raise TariffError([_problem(error) for error in exc.errors()]) from exc


def load_tariff(text: str) -> Tariff:
    """Parse and validate a tariff written in TOML; raise `TariffError` naming each bad path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError([TariffProblem("<toml>", str(exc))]) from exc
    return parse_tariff(data)
