"""Pure helpers of billing's domain: periods, invoice ids, tariff history, event lines."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from billing_support import FLAT_TARIFF, TARIFFS
from wastetrail_billing.domain import invoicing
from wastetrail_contracts.pricing.fees import (
    Account,
    BillingMonth,
    ChargedQuantity,
    compute_invoice,
)
from wastetrail_contracts.pricing.periods import (
    invoice_id,
    local_date,
    period_closed,
    periods_between,
)
from wastetrail_contracts.pricing.publishing import (
    rewritten_history,
    tariff_from_json,
    tariff_json,
)
from wastetrail_contracts.pricing.tariff import load_tariff


def test_dates_are_vietnamese_calendar_dates() -> None:
    assert local_date(datetime(2026, 1, 31, 16, 59, tzinfo=UTC)) == date(2026, 1, 31)
    assert local_date(datetime(2026, 1, 31, 17, 0, tzinfo=UTC)) == date(2026, 2, 1)
    # January is over at 00:00 on 1 February in Vietnam, 17:00 UTC on 31 January.
    assert not period_closed("2026-01", datetime(2026, 1, 31, 16, 59, tzinfo=UTC))
    assert period_closed("2026-01", datetime(2026, 1, 31, 17, 0, tzinfo=UTC))
    assert periods_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01",
                                                     "2026-02"]


def test_invoice_ids_are_deterministic_and_fit_the_id_limit() -> None:
    assert invoice_id("HH-1", "2026-01") == "INV-202601-HH-1"
    long_account = "G" * 80
    assert invoice_id(long_account, "2026-01") == invoice_id(long_account, "2026-01")
    assert len(invoice_id(long_account, "2026-01")) <= 80
    assert invoice_id(long_account, "2026-01") != invoice_id("G" * 79 + "H", "2026-01")


def test_published_json_reads_back_to_the_same_tariff() -> None:
    for path in TARIFFS.glob("*.toml"):
        tariff = load_tariff(path.read_text())
        assert tariff_from_json(tariff_json(tariff)) == tariff


def test_only_versions_that_priced_invoices_are_frozen() -> None:
    hanoi = load_tariff((TARIFFS / "hanoi_per_kg_example.toml").read_text())
    changed = load_tariff((TARIFFS / "hanoi_per_kg_example.toml").read_text().replace(
        'price_per_kg = "242.4"', 'price_per_kg = "250"', 1))
    assert rewritten_history(hanoi, changed, None) == []
    assert rewritten_history(hanoi, changed, date(2026, 1, 31)) == [date(2026, 1, 1)]
    # A change to a version that starts after the last invoiced month is allowed.
    later = load_tariff((TARIFFS / "hanoi_per_kg_example.toml").read_text().replace(
        'price_per_kg = "180.0"', 'price_per_kg = "190.0"', 1))
    assert rewritten_history(hanoi, later, date(2026, 6, 30)) == []


@pytest.mark.parametrize(("settled", "expected"), [(0, 0), (54_000, 50_000), (1, 0),
                                                   (27_000, 25_000)])
def test_collected_revenue_excludes_vat(settled: int, expected: int) -> None:
    assert invoicing.ex_vat(settled, 50_000, 4_000) == expected


def test_invoice_entries_balance_and_split_revenue_by_component() -> None:
    tariff = load_tariff(FLAT_TARIFF.read_text())
    bill = compute_invoice(Account(commune_class="urban", customer_class="household"),
                           BillingMonth(year=2026, month=2), tariff,
                           [ChargedQuantity(collected_on=date(2026, 2, 3), category="other",
                                            grams=1_000)])
    entry = invoicing.issue_entry("INV-X", "HH-1", bill)
    assert entry is not None
    assert {p.account: p.amount for p in entry.postings} == {
        "household:HH-1:receivable": 60_000, "revenue:fees:collection": -30_000,
        "revenue:fees:transport": -15_000, "revenue:fees:treatment": -15_000}
    assert [invoicing.event_line(line).unit for line in bill.lines] == ["day/28"] * 3
    assert invoicing.credit_entry("INV-X", "HH-1", 0) is None
