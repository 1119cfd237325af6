"""Receipt invariants (received = accepted + refused), discrepancy, capacity, treatment cap."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wastetrail_contracts.enums import AcceptanceStatus as S
from wastetrail_contracts.enums import Category as C
from wastetrail_contracts.enums import TreatmentMethod as M
from wastetrail_contracts.events.treatment import BatchReceived
from wastetrail_treatment.domain.errors import RuleViolation
from wastetrail_treatment.domain.plant import PlantRules, over_capacity, plant_day
from wastetrail_treatment.domain.receipt import (
    ReceiptBalance,
    check_redirect,
    check_treatment,
    decide_acceptance,
    direct_haul_net,
    is_discrepant,
)

PLANT = PlantRules("P", frozenset({M.COMPOSTING, M.SANITARY_LANDFILL}),
                   frozenset({C.FOOD, C.OTHER}), 100_000_000)
OTHER = PlantRules("Q", frozenset({M.INCINERATION_ENERGY_RECOVERY}), frozenset({C.OTHER}), 1)


def decide(status: S, refused: int | None, received: int = 10_000, reason: str = "wet",
           category: C = C.FOOD) -> tuple[int, int, int]:
    a = decide_acceptance(received_grams=received, status=status, refused_grams=refused,
                          refusal_reason=reason, category=category, plant=PLANT)
    assert a.received_grams == a.accepted_grams + a.refused_grams  # the invariant
    return a.received_grams, a.accepted_grams, a.refused_grams


def test_received_is_accepted_plus_refused_for_each_status() -> None:
    assert decide(S.ACCEPTED, None) == (10_000, 10_000, 0)
    assert decide(S.ACCEPTED, 0) == (10_000, 10_000, 0)
    assert decide(S.PARTIALLY_REFUSED, 2_500) == (10_000, 7_500, 2_500)
    assert decide(S.REFUSED, None) == (10_000, 0, 10_000)
    assert decide(S.REFUSED, 10_000) == (10_000, 0, 10_000)


@pytest.mark.parametrize(("status", "refused"), [
    (S.ACCEPTED, 1),                # accepted ⇒ refused = 0
    (S.REFUSED, 9_999),             # refused ⇒ refused = received
    (S.PARTIALLY_REFUSED, 0),       # partial ⇒ 0 < refused
    (S.PARTIALLY_REFUSED, 10_000),  # partial ⇒ refused < received
    (S.PARTIALLY_REFUSED, None),
    (S.PARTIALLY_REFUSED, 10_001),  # never more than received
])
def test_inconsistent_decisions_are_refused_naming_refused_grams(
    status: S, refused: int | None
) -> None:
    with pytest.raises(RuleViolation) as err:
        decide(status, refused)
    assert err.value.field == "refused_grams"


def test_refusal_needs_a_reason_and_unaccepted_category_can_only_be_refused() -> None:
    with pytest.raises(RuleViolation) as err:
        decide(S.PARTIALLY_REFUSED, 100, reason="  ")
    assert err.value.field == "refusal_reason"
    with pytest.raises(RuleViolation) as err:
        decide(S.ACCEPTED, None, category=C.HAZARDOUS)
    assert err.value.code == "category-not-accepted"
    assert decide(S.REFUSED, None, category=C.HAZARDOUS) == (10_000, 0, 10_000)


def test_discrepancy_is_more_than_the_configured_share() -> None:
    assert not is_discrepant(10_000, 11_000, 10)  # exactly 10 %: not more
    assert is_discrepant(10_000, 11_001, 10)
    assert is_discrepant(10_000, 8_999, 10)
    assert not is_discrepant(10_000, 9_000, 10)
    assert is_discrepant(10_000, 10_600, 5)  # 5 % configured
    assert is_discrepant(0, 1, 10)  # nothing declared


@given(declared=st.integers(0, 10**8), received=st.integers(1, 10**8),
       percent=st.integers(0, 100))
def test_discrepancy_agrees_with_the_contract_replay_rule(
    declared: int, received: int, percent: int
) -> None:
    event = BatchReceived(receipt_id="R", plant_id="P", batch_id="B", category=C.FOOD,
                          declared_grams=declared, received_grams=received,
                          accepted_grams=received, refused_grams=0, status=S.ACCEPTED,
                          received_at=datetime(2026, 3, 2, tzinfo=UTC))
    assert is_discrepant(declared, received, percent) == event.significant_discrepancy(percent)


def test_capacity_counts_the_plant_day_in_utc_plus_7() -> None:
    # 17:30 UTC on 1 March is 00:30 on 2 March in Vietnam.
    assert plant_day(datetime(2026, 3, 1, 17, 30, tzinfo=UTC)) == date(2026, 3, 2)
    assert plant_day(datetime(2026, 3, 1, 16, 59, tzinfo=UTC)) == date(2026, 3, 1)
    assert not over_capacity(60, 40, 100)
    assert over_capacity(60, 41, 100)


def test_direct_haul_net_needs_tare_below_gross() -> None:
    assert direct_haul_net(15_000, 9_000) == 6_000
    with pytest.raises(RuleViolation) as err:
        direct_haul_net(9_000, 9_000)
    assert err.value.field == "tare_grams"


def balance(accepted: int = 10_000, treated: int = 0, refused: int = 0,
            redirected: int = 0) -> ReceiptBalance:
    return ReceiptBalance("R", "P", C.FOOD, accepted, refused, treated, redirected)


def test_treatment_never_exceeds_accepted_across_records() -> None:
    assert check_treatment(balance(), PLANT, {M.COMPOSTING: 6_000}) == 6_000
    # A second record may take the rest, not one gram more.
    assert check_treatment(balance(treated=6_000), PLANT, {M.SANITARY_LANDFILL: 4_000}) == 4_000
    with pytest.raises(RuleViolation) as err:
        check_treatment(balance(treated=6_000), PLANT,
                        {M.COMPOSTING: 2_000, M.SANITARY_LANDFILL: 2_001})
    assert err.value.field == "methods"
    assert err.value.code == "treatment-exceeds-accepted"
    assert "4001 g" in err.value.detail and "10000 g accepted" in err.value.detail
    assert "at most 4000 g remain" in err.value.detail


def test_treatment_only_with_permitted_methods() -> None:
    with pytest.raises(RuleViolation) as err:
        check_treatment(balance(), PLANT, {M.DIRECT_LANDFILL: 1})
    assert err.value.field == "methods"
    assert "direct_landfill" in err.value.detail
    with pytest.raises(RuleViolation) as err:
        check_treatment(balance(), PLANT, {M.COMPOSTING: 10}, residue_grams=5,
                        residue_destination="")
    assert err.value.field == "residue_destination"


def test_outputs_cannot_outweigh_input_and_kwh_need_energy_recovery() -> None:
    assert check_treatment(balance(), PLANT, {M.COMPOSTING: 1_000}, output_grams=600,
                           residue_grams=400, residue_destination="cell 3") == 1_000
    with pytest.raises(RuleViolation) as err:
        check_treatment(balance(), PLANT, {M.COMPOSTING: 1_000}, output_grams=601,
                        residue_grams=400, residue_destination="cell 3")
    assert err.value.field == "outputs"
    with pytest.raises(RuleViolation) as err:
        check_treatment(balance(), PLANT, {M.COMPOSTING: 1_000}, energy_kwh=5)
    assert err.value.field == "energy_kwh"
    incinerator = PlantRules("I", frozenset({M.INCINERATION_ENERGY_RECOVERY}),
                             frozenset({C.FOOD}), 1)
    assert check_treatment(balance(), incinerator, {M.INCINERATION_ENERGY_RECOVERY: 900},
                           energy_kwh=450) == 900


def test_redirect_only_what_is_still_held_to_a_plant_that_takes_it() -> None:
    held = balance(accepted=7_000, refused=3_000, redirected=1_000)
    check_redirect(held, 2_000, "station", None)
    check_redirect(held, 2_000, "plant", PlantRules("Q", frozenset(), frozenset({C.FOOD}), 1))
    with pytest.raises(RuleViolation) as err:
        check_redirect(held, 2_001, "station", None)
    assert err.value.field == "grams"
    with pytest.raises(RuleViolation) as err:
        check_redirect(held, 1, "plant", PLANT)
    assert err.value.code == "redirect-to-self"
    with pytest.raises(RuleViolation) as err:
        check_redirect(held, 1, "plant", OTHER)  # Q takes only "other" waste
    assert err.value.code == "category-not-accepted"
    with pytest.raises(RuleViolation) as err:
        check_redirect(balance(), 1, "station", None)
    assert err.value.code == "nothing-refused"
