"""`wastetrail audit verify-invoices`: every invoiced account-month priced again from the log."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from _auditlog import LogBuilder, ProducedLog, make_keys, produce, write_public_keys
from typer.testing import CliRunner
from wastetrail_audit.cli import app
from wastetrail_audit.invoices import recompute_invoices
from wastetrail_contracts.base import Event
from wastetrail_contracts.enums import Category, CommuneClass, CostComponent, CustomerClass
from wastetrail_contracts.events.billing import (
    AccountOpened,
    InvoiceIssued,
    InvoiceLine,
    TariffPublished,
)
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.pricing.publishing import sha256_hex, tariff_json
from wastetrail_contracts.pricing.tariff import load_tariff

# 300 đ/kg of other waste, VAT 8 %: 10.5 kg → 3,150 đ + 252 đ VAT.
TARIFF = load_tariff("""
province = "Tỉnh Ví Dụ"
label = "TEST per-kg tariff"
note = "hand-computed test tariff"

[[versions]]
effective_from = 2026-01-01
vat_rate_bp = 800
[[versions.rules]]
commune_class = "urban"
customer_class = "household"
category = "other"
component = "treatment"
basis = "per_kg"
price_per_kg = 300
""")


def published() -> TariffPublished:
    text = tariff_json(TARIFF)
    return TariffPublished(tariff_id="tf", province="vi-du", label="TEST", document_json=text,
                           document_sha256=sha256_hex(text),
                           effective_from=(date(2026, 1, 1),))


def opened(account: str = "A1", generator: str = "H1") -> AccountOpened:
    return AccountOpened(account_id=account, generator_id=generator, commune="U1",
                         commune_class=CommuneClass.URBAN,
                         customer_class=CustomerClass.HOUSEHOLD)


def load(load_id: str, grams: int, at: datetime, generator: str = "H1") -> LoadCollected:
    return LoadCollected(load_id=load_id, trip_id="T1", generator_id=generator, commune="U1",
                         category=Category.OTHER, measure="scale", grams=grams,
                         collected_at=at, device_id="dev-1", vehicle_id="veh-1",
                         idempotency_key=f"k-{load_id}")


def invoice(invoice_id: str, grams: int, amount: int, vat: int,
            account: str = "A1") -> InvoiceIssued:
    return InvoiceIssued(
        invoice_id=invoice_id, account_id=account, period="2026-01", tariff_id="tf",
        lines=(InvoiceLine(category=Category.OTHER, component=CostComponent.TREATMENT,
                           basis="per_kg", quantity=grams, unit="g", amount=amount,
                           tariff_version=date(2026, 1, 1)),),
        charged_grams=grams, subtotal=amount, vat=vat, credits=0, total=amount + vat,
        issued_at=datetime(2026, 2, 3, 3, tzinfo=UTC))


def scenario() -> list[Event]:
    """January for A1: 10.5 kg on time, 2 kg synced after January's invoice and billed by a
    supplement (600 đ, VAT 48: 12.5 kg × 300 = 3,750 → VAT 300, 252 already billed)."""
    return [
        published(), opened(),
        load("L1", 10_500, datetime(2026, 1, 5, 2, tzinfo=UTC)),
        # 23:30 UTC on 31 January is 1 February in Vietnam: February's, not January's.
        load("L-FEB", 9_000, datetime(2026, 1, 31, 23, 30, tzinfo=UTC)),
        invoice("INV-202601-A1", 10_500, 3_150, 252),
        load("L-LATE", 2_000, datetime(2026, 1, 25, 2, tzinfo=UTC)),
        invoice("SUP-202601-1-A1", 2_000, 600, 48),
    ]


def test_a_month_and_its_supplement_agree_with_the_tariff_applied_to_the_log() -> None:
    events = scenario()
    check = recompute_invoices(events + events[2:4])  # redelivered loads count once

    assert (check.months, check.invoices, check.loads, check.differences) == (1, 2, 2, [])


def test_an_invoice_that_bills_other_than_the_tariff_is_listed() -> None:
    events = [*scenario()[:-1], invoice("SUP-202601-1-A1", 2_000, 500, 48)]

    check = recompute_invoices(events)

    (diff,) = check.differences
    assert (diff.account_id, diff.period, diff.field, diff.log, diff.billed) == (
        "A1", "2026-01", "subtotal", 3_750, 3_650)
    assert diff.line() == ("account A1 2026-01 subtotal: log 3,750 đ, billed 3,650 đ "
                           "(2 loads, 2 invoice(s))")


def test_a_late_load_no_invoice_billed_yet_is_a_difference() -> None:
    check = recompute_invoices(scenario()[:-1])  # the supplement was never issued
    assert [(d.field, d.log, d.billed) for d in check.differences] == [
        ("subtotal", 3_750, 3_150), ("vat", 300, 252)]


def test_a_month_that_cannot_be_priced_from_the_log_says_why() -> None:
    no_tariff = recompute_invoices([e for e in scenario() if not isinstance(e, TariffPublished)])
    no_account = recompute_invoices([e for e in scenario() if not isinstance(e, AccountOpened)])
    assert [(d.field, d.log, d.detail.split(";")[0]) for d in no_tariff.differences] == [
        ("priced", None, "no tariff_published event in the log")]
    assert [d.detail.split(";")[0] for d in no_account.differences] == [
        "no account_opened event in the log"]


@pytest.mark.integration
def test_verify_invoices_reads_the_log_from_kafka(
        kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    keys = make_keys()
    good = LogBuilder(keys, checkpoint_every=4)
    for event in scenario():
        good.emit(event, _stream(event), datetime(2026, 2, 3, 3, tzinfo=UTC))
    bad = LogBuilder(keys, checkpoint_every=4)
    for event in scenario()[:-1]:
        bad.emit(event, _stream(event), datetime(2026, 2, 3, 3, tzinfo=UTC))
    keys_dir = write_public_keys(keys, tmp_path / "keys")
    for name, log in (("good", good), ("bad", bad)):
        prefix = f"{topic_prefix}inv{name}."
        produce(kafka_bootstrap, prefix, log.records)
        produced = ProducedLog(log, prefix, keys_dir, kafka_bootstrap)
        result = CliRunner().invoke(app, [
            "verify-invoices", "--bootstrap", produced.bootstrap, "--topic-prefix", prefix,
            "--keys-dir", str(keys_dir), "--work-dir", str(tmp_path / name), "--quiet"])
        out = result.stdout + result.stderr
        if name == "good":
            assert result.exit_code == 0, out
            assert "OK: 1 account-months (2 invoices, 2 loads) recomputed from the log" in out
        else:
            assert result.exit_code == 1, out
            assert "DIFF account A1 2026-01 subtotal: log 3,750 đ, billed 3,150 đ" in out


def _stream(event: Event) -> str:
    for name in ("invoice_id", "load_id", "account_id", "tariff_id"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            return value
    raise AssertionError(event)
