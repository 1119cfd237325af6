"""Largest-remainder apportionment: the one rounding rule of the service."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wastetrail_contracts.apportion import apportion


def test_exact_shares_need_no_rounding() -> None:
    assert apportion(100, [1, 3]) == [25, 75]


def test_leftover_goes_to_largest_remainder_then_earliest() -> None:
    # 10 × 1/3 = 3.33 each: one gram left, equal remainders → the first part.
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    # 10 × (1, 2)/3 = 3.33, 6.67: the larger remainder (0.67) wins.
    assert apportion(10, [1, 2]) == [3, 7]


def test_zero_weight_gets_nothing() -> None:
    assert apportion(7, [0, 1, 0, 1]) == [0, 4, 0, 3]


def test_refuses_impossible_splits() -> None:
    with pytest.raises(ValueError, match="zero weights"):
        apportion(5, [0, 0])
    with pytest.raises(ValueError, match="negative"):
        apportion(5, [1, -1])
    assert apportion(0, [0, 0]) == [0, 0]


@given(st.integers(min_value=0, max_value=10**12),
       st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12)
       .filter(lambda ws: sum(ws) > 0))
def test_parts_sum_exactly_and_stay_within_one_gram(total: int, weights: list[int]) -> None:
    parts = apportion(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert total * weight // whole <= part <= total * weight // whole + 1
