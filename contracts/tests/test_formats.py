"""vi_VN formatting: the same number reads the same in every output."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

from wastetrail_contracts import formats as f

NB = "\u00a0"


def test_money_is_dot_grouped_dong() -> None:
    assert f.money(1_806_000) == f"1.806.000{NB}₫"
    assert f.money(0) == f"0{NB}₫"
    assert f.money(-5_000) == f"-5.000{NB}₫"


def test_weights_use_the_decimal_comma() -> None:
    assert f.tonnes(12_345_000) == f"12,345{NB}t"  # twelve and a third tonnes, not 12 thousand
    assert f.tonnes(1_234_567_890) == f"1.234,568{NB}t"
    assert f.kilograms(12_400) == f"12,4{NB}kg"
    assert f.weight(124_000) == f"124,0{NB}kg" and f.weight(2_500_000) == f"2,500{NB}t"


def test_numbers_and_percentages() -> None:
    assert f.number(1_234_567) == "1.234.567"
    assert f.number(Fraction(1, 3), 2) == "0,33"
    assert f.percent(45.26) == f"45,3{NB}%"
    assert f.percent(None) == "–"


def test_periods_and_times_at_the_edge() -> None:
    assert f.period("2026-10") == "Tháng 10/2026"
    assert f.period("2026-01") == "Tháng 1/2026"
    # 22:30 UTC on 5 October is 05:30 on 6 October in Hà Nội.
    assert f.local_time(datetime(2026, 10, 5, 22, 30, tzinfo=UTC)) == "06/10/2026 05:30"
