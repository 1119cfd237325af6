"""Billing periods: calendar months of the local (Vietnam) calendar.

Event times are UTC; a load collected at 23:30 UTC on 31 January was collected on
1 February in Vietnam and belongs to February's bill, so every date billing reasons about
is the Asia/Ho_Chi_Minh date of the UTC time.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wastetrail_contracts.pricing.fees import BillingMonth

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _vietnam() -> tzinfo:
    try:
        return ZoneInfo("Asia/Ho_Chi_Minh")
    except ZoneInfoNotFoundError:
        # Vietnam has had UTC+7 without DST since 1975.
        return timezone(timedelta(hours=7), "ICT")


VIETNAM = _vietnam()


def local_date(moment: datetime) -> date:
    """The Vietnamese calendar date of an aware UTC time."""
    if moment.tzinfo is None:
        raise ValueError("local_date needs an aware datetime")
    return moment.astimezone(VIETNAM).date()


def period_of(day: date) -> str:
    """The billing period (``YYYY-MM``) a local date falls in."""
    return f"{day.year:04d}-{day.month:02d}"


def billing_month(period: str) -> BillingMonth:
    """The BillingMonth of a ``YYYY-MM`` period; ValueError if malformed."""
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"{period!r} is not a period (YYYY-MM)")
    return BillingMonth(year=int(match.group(1)), month=int(match.group(2)))


def period_closed(period: str, now: datetime) -> bool:
    """Whether the whole month is over in Vietnam (a month is invoiced once it ended)."""
    return local_date(now) > billing_month(period).last_day


def months_before(period: str, count: int) -> list[str]:
    """The ``count`` periods before ``period`` and ``period`` itself, oldest first."""
    month = billing_month(period)
    index = month.year * 12 + month.month - 1 - count
    return periods_between(f"{index // 12:04d}-{index % 12 + 1:02d}", period)


def periods_between(first: str, last: str) -> list[str]:
    """Every period from ``first`` to ``last`` inclusive (empty if last < first)."""
    start, end = billing_month(first), billing_month(last)
    out: list[str] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def invoice_id(account_id: str, period: str) -> str:
    """The invoice id of an account's month: the same inputs always give the same id.

    Readable (``INV-202601-<account>``) when that fits the 80-character id limit,
    otherwise ``INV-202601-`` and a SHA-256 prefix of the account id.
    """
    return _with_account(f"INV-{period.replace('-', '')}-", account_id)


def supplement_id(account_id: str, period: str, number: int) -> str:
    """The id of an account's ``number``-th supplementary invoice for a month (late loads).

    ``SUP-202601-1-<account>``: the number comes before the account id, so no two
    (account, number) pairs share an id; a SHA-256 prefix of the account id replaces it
    when the readable form would pass 80 characters.
    """
    if number < 1:
        raise ValueError("number: supplements are numbered from 1")
    return _with_account(f"SUP-{period.replace('-', '')}-{number}-", account_id)


def _with_account(prefix: str, account_id: str) -> str:
    # The account id itself when the id fits in 80 characters, else a digest of it.
    readable = prefix + account_id
    if len(readable) <= 80:
        return readable
    return prefix + hashlib.sha256(account_id.encode()).hexdigest()[:32]


def utc(moment: datetime) -> datetime:
    """The same instant in UTC."""
    return moment.astimezone(UTC)
