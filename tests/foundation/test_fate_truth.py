"""The simulator's fate truth, by hand: it must catch a fate that crosses categories."""

from __future__ import annotations

from fractions import Fraction

from wastetrail.simulate.truth import FateTruth


def _truth() -> tuple[FateTruth, dict[str, dict[str, object]]]:
    # Trip T: food F1 4 000 g, F2 2 000 g, recyclable R1 2 000 g; weighed 7 600 g net.
    # Food batch BF (T with trip U: 4 000 g scanned, 4 300 g net) composted 10 000 g;
    # recyclable batch BR (T alone) recycled 1 500 g and, through its redirected part,
    # landfilled 400 g.
    truth = FateTruth()
    truth.trip_net.update({"T": 7_600, "U": 4_300})
    truth.batches.update({"BF": ("food", ["T", "U"]), "BR": ("recyclable", ["T"])})
    truth.treated["BF"]["composting"] = 10_000
    truth.treated["BR"]["recycling"] = 1_500
    truth.treated["BR"]["sanitary_landfill"] = 400
    loads: dict[str, dict[str, object]] = {
        "F1": {"trip": "T", "category": "food", "grams": 4_000},
        "F2": {"trip": "T", "category": "food", "grams": 2_000},
        "R1": {"trip": "T", "category": "recyclable", "grams": 2_000},
        "U1": {"trip": "U", "category": "food", "grams": 4_000},
    }
    return truth, loads


def test_expected_shares_by_hand() -> None:
    truth, loads = _truth()
    want = truth.expected(loads)
    # T's food: 7 600 × 6 000 / 8 000 = 5 700 of BF's 5 700 + 4 300 = 10 000 g.
    assert want["F1"] == {"composting": Fraction(3_800)}
    assert want["F2"] == {"composting": Fraction(1_900)}
    assert want["U1"] == {"composting": Fraction(4_300)}
    assert want["R1"] == {"recycling": Fraction(1_500), "sanitary_landfill": Fraction(400)}


def test_the_right_fate_passes_and_a_cross_category_fate_is_caught() -> None:
    truth, loads = _truth()
    right = {"F1": {"composting": 3_800}, "F2": {"composting": 1_900},
             "U1": {"composting": 4_300}, "R1": {"recycling": 1_500, "sanitary_landfill": 400}}
    assert truth.mismatches(loads, right, "api") == []
    # The old rule spread each load over every batch of its trip, whatever the category.
    spread = {**right, "F1": {"composting": 2_900, "recycling": 700, "sanitary_landfill": 200}}
    wrong = truth.mismatches(loads, spread, "api")
    assert any("load F1 recycling" in w for w in wrong)
    assert any("batch BF" in w for w in wrong)  # the food batch no longer adds up
    # A load missing from the answer is a mismatch too.
    assert truth.mismatches(loads, {k: v for k, v in right.items() if k != "U1"}, "api")


def test_one_gram_of_rounding_is_tolerated_but_sums_are_exact() -> None:
    truth, loads = _truth()
    rounded = {"F1": {"composting": 3_801}, "F2": {"composting": 1_899},
               "U1": {"composting": 4_300}, "R1": {"recycling": 1_500, "sanitary_landfill": 400}}
    assert truth.mismatches(loads, rounded, "api") == []
    off = {**rounded, "F2": {"composting": 1_900}}  # BF's loads now sum to 10 001 g
    assert truth.mismatches(loads, off, "api") == [
        "api: batch BF loads sum to {'composting': 10001}, plants treated {'composting': 10000}"]
