"""Invalid payloads are rejected, and the message names the offending field.

Each case breaks one thing in a valid example and sends it the way a consumer receives
it: inside a sealed envelope, through ``parse_payload``. The ``reason`` is what ends up in
the dead-letter record, so it must say which field is wrong.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from wastetrail_contracts import (
    SYSTEM_ACTOR,
    Actor,
    Event,
    InvalidPayload,
    decode,
    encode,
    parse_payload,
    payload_as,
)
from wastetrail_contracts.chain import seal_envelope
from wastetrail_contracts.codec import payload_json
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.events.billing import (
    InvoiceIssued,
    LedgerEntryPosted,
    OperatingCostRecorded,
    PaymentInitiated,
    PaymentSucceeded,
    TariffPublished,
)
from wastetrail_contracts.events.collection import (
    GeneratorRegistered,
    LoadCollected,
    TripClosed,
    VehicleRegistered,
)
from wastetrail_contracts.events.custody import CustodyAlertRaised
from wastetrail_contracts.events.epr import DepositClaimCredited, UnitsPlacedOnMarket
from wastetrail_contracts.events.transfer import BatchConsolidated, TripReconciled, TripWeighed
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    RefusedWasteRedirected,
    TreatmentRecorded,
)
from wastetrail_contracts.examples import example_of

RECEIPT = payload_json(example_of(BatchReceived))  # received 2 780 000 = 2 660 000 + 120 000


def envelope_with(cls: type[Event], payload: dict[str, Any]) -> bytes:
    """Wire bytes of a correctly sealed envelope carrying ``payload`` as a ``cls`` event."""
    envelope = seal_envelope(
        {
            "event_id": "019cb0e8-a880-7000-8000-000000000001",
            "type": cls.event_type,
            "schema_version": cls.schema_version,
            "service": "treatment",
            "stream_id": "s-1",
            "stream_version": 1,
            "occurred_at": datetime(2026, 3, 3, tzinfo=UTC),
            "recorded_at": datetime(2026, 3, 3, tzinfo=UTC),
            "actor": SYSTEM_ACTOR,
            "correlation_id": "c-1",
            "payload": payload,
            "chain_id": "treatment:wastetrail.treatment.events:0",
            "chain_seq": 1,
            "prev_hash": "0" * 64,
        }
    )
    return encode(envelope)


def broken(cls: type[Event], **changes: Any) -> dict[str, Any]:
    return {**payload_json(example_of(cls)), **changes}


CASES: list[tuple[str, type[Event], dict[str, Any], str]] = [
    ("negative grams", LoadCollected, broken(LoadCollected, grams=-5), "grams"),
    ("zero grams for a load", LoadCollected, broken(LoadCollected, grams=0), "grams"),
    ("over a vehicle's maximum", LoadCollected, broken(LoadCollected, grams=100_000_001), "grams"),
    ("float grams", LoadCollected, broken(LoadCollected, grams=3450.0), "grams"),
    ("grams as text", LoadCollected, broken(LoadCollected, grams="3450"), "grams"),
    ("grams as bool", LoadCollected, broken(LoadCollected, grams=True), "grams"),
    ("unknown category", LoadCollected, broken(LoadCollected, category="compost"), "category"),
    ("naive datetime", LoadCollected,
     broken(LoadCollected, collected_at="2026-03-03T07:30:00"), "collected_at"),
    ("local-time offset", LoadCollected,
     broken(LoadCollected, collected_at="2026-03-03T07:30:00+07:00"), "collected_at"),
    ("time as a number", LoadCollected, broken(LoadCollected, collected_at=1772498000),
     "collected_at"),
    ("extra field", LoadCollected, broken(LoadCollected, colour="green"), "colour"),
    ("missing field", LoadCollected,
     {k: v for k, v in payload_json(example_of(LoadCollected)).items() if k != "trip_id"},
     "trip_id"),
    ("id with a space", LoadCollected, broken(LoadCollected, load_id="load 1"), "load_id"),
    ("latitude alone", LoadCollected, broken(LoadCollected, longitude=None), "latitude"),
    ("bag without size", LoadCollected, broken(LoadCollected, measure="bag"), "bag_size"),
    ("refused > received", BatchReceived,
     {**RECEIPT, "refused_grams": 3_000_000, "accepted_grams": 0}, "refused_grams"),
    ("ACCEPTED with refused > 0", BatchReceived, {**RECEIPT, "status": "ACCEPTED"},
     "refused_grams"),
    ("REFUSED with refused != received", BatchReceived, {**RECEIPT, "status": "REFUSED"},
     "refused_grams"),
    ("PARTIALLY_REFUSED with nothing refused", BatchReceived,
     {**RECEIPT, "accepted_grams": 2_780_000, "refused_grams": 0}, "refused_grams"),
    ("received != accepted + refused", BatchReceived, {**RECEIPT, "accepted_grams": 2_000_000},
     "refused_grams"),
    ("refused without a reason", BatchReceived, {**RECEIPT, "refusal_reason": ""},
     "refusal_reason"),
    ("both batch and trip", BatchReceived, {**RECEIPT, "trip_id": "trip-1"}, "batch_id/trip_id"),
    ("treatment split > accepted", TreatmentRecorded,
     broken(TreatmentRecorded, methods={"composting": 2_700_000}), "methods"),
    ("earlier records + split > accepted", TreatmentRecorded,
     broken(TreatmentRecorded, previously_treated_grams=100_000), "methods"),
    ("outputs outweigh input", TreatmentRecorded,
     broken(TreatmentRecorded, outputs=[{"kind": "compost", "grams": 3_000_000}]), "outputs"),
    ("kWh without an energy method", TreatmentRecorded,
     broken(TreatmentRecorded, methods={"composting": 2_000_000}), "energy_kwh"),
    ("unknown treatment method", TreatmentRecorded,
     broken(TreatmentRecorded, methods={"burning": 1_000}), "methods"),
    ("redirected to itself", RefusedWasteRedirected,
     broken(RefusedWasteRedirected, destination_kind="plant", destination_id="plant-ct-compost"),
     "destination_id"),
    ("net != gross - tare", TripWeighed, broken(TripWeighed, net_grams=1_000_000), "net_grams"),
    ("tare > gross", TripWeighed,
     broken(TripWeighed, tare_grams=8_000_000, net_grams=0), "tare_grams"),
    ("weighed out before in", TripWeighed,
     broken(TripWeighed, weighed_out_at="2026-03-03T00:00:00Z"), "weighed_out_at"),
    ("discrepancy flag wrong", TripReconciled, broken(TripReconciled, discrepancy=True),
     "discrepancy"),
    ("difference not net - scanned", TripReconciled, broken(TripReconciled, difference_grams=1),
     "difference_grams"),
    ("batch total != allocations", BatchConsolidated,
     broken(BatchConsolidated, total_grams=1), "total_grams"),
    ("vehicle heavier than any road allows", VehicleRegistered,
     broken(VehicleRegistered, capacity_grams=99_000_000), "capacity_grams"),
    ("more loads than grams", TripClosed, broken(TripClosed, scanned_total_grams=100),
     "scanned_total_grams"),
    ("organisation billed as household", GeneratorRegistered,
     broken(GeneratorRegistered, kind="organisation"), "customer_class"),
    ("unbalanced ledger entry", LedgerEntryPosted,
     broken(LedgerEntryPosted, postings=[{"account": "cash", "amount": 100},
                                         {"account": "receivable", "amount": -99}]),
     "postings"),
    ("zero posting", LedgerEntryPosted,
     broken(LedgerEntryPosted, postings=[{"account": "cash", "amount": 0},
                                         {"account": "receivable", "amount": 0}]),
     "postings"),
    ("invoice total wrong", InvoiceIssued, broken(InvoiceIssued, total=1), "total"),
    ("invoice subtotal wrong", InvoiceIssued, broken(InvoiceIssued, subtotal=1), "subtotal"),
    ("negative đồng", InvoiceIssued, broken(InvoiceIssued, vat=-1), "vat"),
    ("tariff digest of other bytes", TariffPublished,
     broken(TariffPublished, document_sha256="0" * 64), "document_sha256"),
    ("tariff dates not increasing", TariffPublished,
     broken(TariffPublished, effective_from=["2026-07-01", "2026-01-01"]), "effective_from"),
    ("datetime where a date is due", TariffPublished,
     broken(TariffPublished, effective_from=["2026-01-01T00:00:00Z"]), "effective_from"),
    ("payment of nothing", PaymentInitiated, broken(PaymentInitiated, amount=0), "amount"),
    ("VNPay success without a transaction", PaymentSucceeded,
     broken(PaymentSucceeded, gateway_transaction_no=None), "gateway_transaction_no"),
    ("treatment cost without a method", OperatingCostRecorded,
     broken(OperatingCostRecorded, method=None), "method"),
    ("transport cost per plant tonne", OperatingCostRecorded,
     broken(OperatingCostRecorded, component="transport"), "driver"),
    ("deposit owed != units × rate", UnitsPlacedOnMarket,
     broken(UnitsPlacedOnMarket, deposit_owed=1), "deposit_owed"),
    ("credit of nothing", DepositClaimCredited, broken(DepositClaimCredited, amount=0), "amount"),
    ("alert about the wrong subject", CustodyAlertRaised,
     broken(CustodyAlertRaised, subject_kind="plant"), "subject_kind"),
    ("weight alert without weights", CustodyAlertRaised,
     broken(CustodyAlertRaised, observed_grams=None), "expected_grams/observed_grams"),
]


@pytest.mark.parametrize(
    ("cls", "payload", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_invalid_payload_is_rejected_naming_the_field(
    cls: type[Event], payload: dict[str, Any], field: str
) -> None:
    envelope = decode(envelope_with(cls, payload))  # the envelope itself is fine

    with pytest.raises(InvalidPayload) as caught:
        parse_payload(envelope)

    reason = caught.value.reason
    assert reason.startswith(f"{cls.event_type}: "), reason
    assert reason.removeprefix(f"{cls.event_type}: ").startswith(field), reason
    # The same payload is refused when built in Python, with the field in the message.
    with pytest.raises(ValidationError, match=field.split("/")[0]):
        cls.model_validate(payload)


def test_every_valid_example_parses_back_to_itself() -> None:
    # The negative cases above are only meaningful if the unbroken examples are valid.
    for cls in {case[1] for case in CASES}:
        example = example_of(cls)
        assert payload_as(decode(envelope_with(cls, payload_json(example))), cls) == example


def test_nan_latitude_cannot_be_built() -> None:
    with pytest.raises(ValidationError, match="latitude"):
        LoadCollected.model_validate(
            {**payload_json(example_of(LoadCollected)), "latitude": float("nan")}
        )


def test_events_are_frozen() -> None:
    load = example_of(LoadCollected)
    with pytest.raises(ValidationError, match="frozen"):
        load.grams = 1  # type: ignore[misc]


def test_system_actor_cannot_pass_for_a_person() -> None:
    with pytest.raises(ValidationError, match="role"):
        Actor(kind=ActorKind.SYSTEM, id="billing", role=Role.CASHIER)


def test_payload_of_another_type_is_refused_by_payload_as() -> None:
    envelope = decode(envelope_with(BatchReceived, RECEIPT))
    with pytest.raises(InvalidPayload, match=r"expected collection\.load_collected"):
        payload_as(envelope, LoadCollected)


def test_reason_is_json_safe_for_dead_letter_records() -> None:
    envelope = decode(envelope_with(LoadCollected, broken(LoadCollected, grams=-5)))
    with pytest.raises(InvalidPayload) as caught:
        parse_payload(envelope)
    assert json.loads(json.dumps({"reason": caught.value.reason}))["reason"].startswith(
        "collection.load_collected: grams: "
    )
