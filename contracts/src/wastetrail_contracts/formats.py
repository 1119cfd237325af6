"""How numbers, money, weights, shares and dates are written for people: vi_VN, via Babel.

Every output a person reads (the household page, the indicator report in HTML, CSV and
XLSX, certificates and notices) writes a number the same way, so ``12,345 t`` means twelve
and a third tonnes everywhere (Vietnamese uses the comma for decimals and the dot for
thousands) and money is ``1.806.000 ₫``. Event payloads and APIs keep integers (grams,
đồng) and UTC; this module is only for the edges. Times are shown in Asia/Ho_Chi_Minh.

Spreadsheets get numbers, not text, with ``XLSX_FORMATS``: the spreadsheet program shows
them with the reader's own separators.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal

LOCALE = "vi_VN"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NBSP = "\u00a0"  # between a number and its unit, so they never wrap apart

# Excel number formats for the same quantities (the reader's locale picks the separators).
XLSX_FORMATS = {
    "vnd": '#,##0 "₫"',
    "t": '#,##0.000 "t"',
    "kg": '#,##0.0 "kg"',
    "%": '0.0 "%"',
    "count": "#,##0",
}


def number(value: int | float | Fraction, decimals: int = 0) -> str:
    """``12.345`` (an integer) or ``12,35`` (two decimals), grouped the Vietnamese way."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return str(format_decimal(float(value) if isinstance(value, Fraction) else value,
                              format=pattern, locale=LOCALE))


def money(vnd: int) -> str:
    """Đồng: ``1.806.000 ₫`` (whole đồng; VND has no minor unit)."""
    return str(format_currency(vnd, "VND", format="#,##0\u00a0¤", locale=LOCALE,
                               currency_digits=False))


def tonnes(grams: int | float) -> str:
    """Grams as tonnes with three decimals: ``12,345 t``."""
    return f"{number(grams / 1_000_000, 3)}{NBSP}t"


def kilograms(grams: int | float, decimals: int = 1) -> str:
    """Grams as kilograms, one decimal unless asked: ``12,4 kg``."""
    return f"{number(grams / 1_000, decimals)}{NBSP}kg"


def weight(grams: int) -> str:
    """A weight in the unit a person expects: kg below a tonne, tonnes from one tonne."""
    return kilograms(grams) if abs(grams) < 1_000_000 else tonnes(grams)


def percent(value: float | Fraction | None, decimals: int = 1) -> str:
    """A percentage (given in percent, e.g. ``45.23``) as ``45,2 %``; ``–`` when unknown."""
    if value is None:
        return "–"
    return f"{number(value, decimals)}{NBSP}%"


def period(value: str, lang: str = "vi") -> str:
    """A billing period ``2026-10`` as ``Tháng 10/2026`` (``10/2026`` in English)."""
    year, month = value.split("-", 1)
    return f"Tháng {int(month)}/{year}" if lang == "vi" else f"{int(month)}/{year}"


def local_time(moment: datetime) -> str:
    """A UTC time as Hà Nội time: ``06/10/2026 08:00``."""
    return str(format_datetime(moment, "dd/MM/yyyy HH:mm", tzinfo=ZONE, locale=LOCALE))
