"""One valid, realistic example of every event type.

Used by the generated schemas and AsyncAPI document (``examples``), by the contract tests
(invalid payloads are made by breaking one field of an example) and as a starting point
for anyone writing a producer. A commune in Cần Thơ, a Tuesday morning in March 2026.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

from wastetrail_contracts.base import Event
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    AlertKind,
    Category,
    ClaimRejection,
    CommuneClass,
    CostComponent,
    CustodySite,
    CustomerClass,
    GeneratorKind,
    Material,
    PaymentChannel,
    RefusalReason,
    TreatmentMethod,
)
from wastetrail_contracts.events import (
    billing,
    collection,
    custody,
    epr,
    integrity,
    transfer,
    treatment,
)

T0 = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)  # 07:30 in Asia/Ho_Chi_Minh


def at(minutes: int) -> datetime:
    """``minutes`` after the examples' start time."""
    return datetime.fromtimestamp(T0.timestamp() + 60 * minutes, tz=UTC)


_TARIFF_JSON = '{"province":"CT","versions":[{"from":"2026-01-01","flat":30000}]}'

EXAMPLES: tuple[Event, ...] = (
    collection.GeneratorRegistered(
        generator_id="gen-ct-000123", code="HH-000123", kind=GeneratorKind.HOUSEHOLD,
        name="Hộ ông Nguyễn Văn An", commune="ninh-kieu-an-hoa",
        commune_class=CommuneClass.URBAN, customer_class=CustomerClass.HOUSEHOLD,
        address="12 Đường 30/4, An Hòa", members=4, tag_ids=("QR-8F3K2",),
    ),
    collection.GeneratorStatusChanged(
        generator_id="gen-ct-000123", active=False, reason="moved away"
    ),
    collection.CollectionPointRegistered(
        point_id="cp-ct-017", name="Điểm tập kết chợ An Hòa", commune="ninh-kieu-an-hoa",
        latitude=10.0452, longitude=105.7469,
    ),
    collection.CollectorRegistered(collector_id="col-ct-01", name="Công ty Công trình đô thị"),
    collection.VehicleRegistered(
        vehicle_id="veh-65c-12345", plate="65C-123.45", collector_id="col-ct-01",
        capacity_grams=7_000_000, registered_tare_grams=5_200_000,
    ),
    collection.DeviceRegistered(device_id="dev-0042", collector_id="col-ct-01"),
    collection.TripStarted(
        trip_id="trip-20260303-07", vehicle_id="veh-65c-12345", collector_id="col-ct-01",
        crew=("op-anh", "op-binh"), commune="ninh-kieu-an-hoa", route="An Hòa 1",
        started_at=at(0),
    ),
    collection.LoadCollected(
        load_id="load-0001", trip_id="trip-20260303-07", generator_id="gen-ct-000123",
        tag_id="QR-8F3K2", commune="ninh-kieu-an-hoa", category=Category.FOOD,
        measure="scale", grams=3_450, collected_at=at(5), latitude=10.0449,
        longitude=105.7471, device_id="dev-0042", vehicle_id="veh-65c-12345",
        idempotency_key="dev-0042:000917",
    ),
    collection.LoadRefused(
        refusal_id="ref-0001", trip_id="trip-20260303-07", generator_id="gen-ct-000124",
        commune="ninh-kieu-an-hoa", reason=RefusalReason.UNSORTED, category=Category.OTHER,
        note="food mixed with plastic", refused_at=at(9), device_id="dev-0042",
        idempotency_key="dev-0042:000918",
    ),
    collection.TripClosed(
        trip_id="trip-20260303-07", vehicle_id="veh-65c-12345",
        declared_total_grams=1_850_000, scanned_total_grams=1_790_500, load_count=412,
        closed_at=at(180),
    ),
    transfer.StationRegistered(
        station_id="st-ct-cai-rang", name="Trạm trung chuyển Cái Răng", commune="cai-rang",
        capacity_grams=200_000_000_000, categories=(Category.FOOD, Category.OTHER),
    ),
    transfer.TripWeighed(
        trip_id="trip-20260303-07", vehicle_id="veh-65c-12345", site=CustodySite.STATION,
        site_id="st-ct-cai-rang", gross_grams=7_060_000, tare_grams=5_210_000,
        net_grams=1_850_000, tare_source="weighed", weighed_in_at=at(200),
        weighed_out_at=at(215),
    ),
    transfer.TripMarkedDirectHaul(
        trip_id="trip-20260303-11", plant_id="plant-ct-compost", station_id="st-ct-cai-rang",
        marked_at=at(150),
    ),
    transfer.TripReconciled(
        trip_id="trip-20260303-07", site_id="st-ct-cai-rang", net_grams=1_850_000,
        scanned_grams=1_790_500, load_count=412, difference_grams=59_500,
        tolerance_grams=92_500, discrepancy=False,
    ),
    transfer.BatchConsolidated(
        batch_id="batch-0301", station_id="st-ct-cai-rang", category=Category.FOOD,
        allocations=(
            transfer.Allocation(trip_id="trip-20260303-07", grams=1_850_000),
            transfer.Allocation(trip_id="trip-20260303-09", grams=950_000),
        ),
        total_grams=2_800_000, seal_number="SEAL-778812",
    ),
    transfer.BatchDispatched(
        batch_id="batch-0301", station_id="st-ct-cai-rang", category=Category.FOOD,
        seal_number="SEAL-778812", dispatched_grams=2_800_000, plant_id="plant-ct-compost",
        vehicle_id="veh-65c-99001", dispatched_at=at(300),
    ),
    transfer.RefusedWasteReturned(
        receipt_id="rcpt-5501", batch_id="batch-0301", station_id="st-ct-cai-rang",
        grams=120_000, returned_at=at(500),
    ),
    treatment.PlantRegistered(
        plant_id="plant-ct-compost", name="Nhà máy xử lý chất thải Cần Thơ", commune="thoi-lai",
        methods=(TreatmentMethod.COMPOSTING, TreatmentMethod.INCINERATION_ENERGY_RECOVERY),
        categories=(Category.FOOD, Category.OTHER), daily_capacity_grams=400_000_000_000,
    ),
    treatment.BatchReceived(
        receipt_id="rcpt-5501", plant_id="plant-ct-compost", batch_id="batch-0301",
        category=Category.FOOD, declared_grams=2_800_000, received_grams=2_780_000,
        accepted_grams=2_660_000, refused_grams=120_000,
        status=AcceptanceStatus.PARTIALLY_REFUSED, refusal_reason="plastic contamination",
        received_at=at(360),
    ),
    treatment.RefusedWasteRedirected(
        receipt_id="rcpt-5501", plant_id="plant-ct-compost", batch_id="batch-0301",
        grams=120_000, destination_kind="station", destination_id="st-ct-cai-rang",
        redirected_at=at(420),
    ),
    treatment.TreatmentRecorded(
        treatment_id="trt-9001", plant_id="plant-ct-compost", receipt_id="rcpt-5501",
        batch_id="batch-0301", accepted_grams=2_660_000,
        methods={
            TreatmentMethod.COMPOSTING: 2_400_000,
            TreatmentMethod.INCINERATION_ENERGY_RECOVERY: 260_000,
        },
        outputs=(treatment.TreatmentOutput(kind="compost", grams=900_000),),
        energy_kwh=130, residue_grams=40_000, residue_destination="sanitary landfill cell 3",
        treated_at=at(1440),
    ),
    custody.CustodyAlertRaised(
        alert_id="alert-0007", kind=AlertKind.RECEIPT_DISCREPANCY, subject_kind="receipt",
        subject_id="rcpt-5501", detail="weighbridge 0.7 % below dispatch",
        expected_grams=2_800_000, observed_grams=2_780_000, raised_at=at(361),
        commune="cai-rang",
    ),
    custody.CustodyAlertCleared(
        alert_id="alert-0007", kind=AlertKind.RECEIPT_DISCREPANCY, subject_kind="receipt",
        subject_id="rcpt-5501", resolution="within weighbridge tolerance", cleared_at=at(400),
    ),
    billing.AccountOpened(
        account_id="acc-000123", generator_id="gen-ct-000123", commune="ninh-kieu-an-hoa",
        commune_class=CommuneClass.URBAN, customer_class=CustomerClass.HOUSEHOLD,
    ),
    billing.TariffPublished(
        tariff_id="tariff-ct-2026", province="CT", label="Cần Thơ 2026",
        document_json=_TARIFF_JSON,
        document_sha256=hashlib.sha256(_TARIFF_JSON.encode()).hexdigest(),
        effective_from=(date(2026, 1, 1),),
    ),
    billing.InvoiceIssued(
        invoice_id="inv-2026-02-000123", account_id="acc-000123", period="2026-02",
        tariff_id="tariff-ct-2026",
        lines=(
            billing.InvoiceLine(
                category=Category.OTHER, component=CostComponent.COLLECTION, basis="flat",
                quantity=1, unit="month", amount=30_000, tariff_version=date(2026, 1, 1),
            ),
        ),
        charged_grams=41_200, subtotal=30_000, vat=2_400, credits=1_000, total=31_400,
        issued_at=at(60 * 24 * 3),
    ),
    billing.PaymentInitiated(
        payment_id="pay-77001", invoice_id="inv-2026-02-000123", account_id="acc-000123",
        amount=31_400, channel=PaymentChannel.VNPAY, txn_ref="INV000123T1",
        initiated_at=at(60 * 24 * 4),
    ),
    billing.PaymentSucceeded(
        payment_id="pay-77001", invoice_id="inv-2026-02-000123", account_id="acc-000123",
        amount=31_400, channel=PaymentChannel.VNPAY, gateway_transaction_no="14226112",
        bank_code="NCB", paid_at=at(60 * 24 * 4 + 2),
    ),
    billing.PaymentFailed(
        payment_id="pay-77002", invoice_id="inv-2026-02-000124", account_id="acc-000124",
        amount=30_000, response_code="24", transaction_status="02",
        failed_at=at(60 * 24 * 4 + 5),
    ),
    billing.PaymentRefunded(
        payment_id="pay-77001", invoice_id="inv-2026-02-000123", account_id="acc-000123",
        amount=31_400, refund_ref="RF-0001", refunded_at=at(60 * 24 * 6),
    ),
    billing.OperatingCostRecorded(
        cost_id="cost-2026-02-trt-compost", period="2026-02", component=CostComponent.TREATMENT,
        driver="plant_tonne", method=TreatmentMethod.COMPOSTING, quantity=3_100_000_000,
        amount=1_085_000_000, description="compost plant, February",
    ),
    billing.LedgerEntryPosted(
        entry_id="je-0001",
        postings=(
            billing.Posting(account="cash:vnpay", amount=31_400),
            billing.Posting(account="receivable:acc-000123", amount=-31_400),
        ),
        memo="VNPay payment of inv-2026-02-000123", reference="pay-77001",
        posted_at=at(60 * 24 * 4 + 2),
    ),
    epr.ProducerRegistered(
        producer_id="prod-0009", name="Công ty Nước giải khát Mekong", tax_code="1801234567",
        kind="producer",
    ),
    epr.PackagingRegistered(
        sku="PET-500ML", producer_id="prod-0009", material=Material.PET, unit_grams=22,
        deposit_per_unit=500, effective_from=date(2026, 1, 1),
    ),
    epr.UnitsPlacedOnMarket(
        report_id="pom-2026-02-0009", producer_id="prod-0009", sku="PET-500ML",
        period="2026-02", province="CT", units=120_000, deposit_owed=60_000_000,
        deposit_per_unit=500,
    ),
    epr.DepositPaid(
        payment_id="dep-0009-02", producer_id="prod-0009", amount=60_000_000,
        channel=PaymentChannel.BANK_TRANSFER, reference="UNC-2026-0311", paid_at=at(60 * 24 * 8),
    ),
    epr.DepositClaimOpened(
        claim_id="claim-3001", account_id="acc-000123", generator_id="gen-ct-000123",
        load_id="load-0002", producer_id="prod-0009", sku="PET-500ML", material=Material.PET,
        units=24, grams=528, amount=12_000, deposit_per_unit=500, opened_at=at(6),
    ),
    epr.DepositClaimConfirmed(
        claim_id="claim-3001", batch_id="batch-0307", receipt_id="rcpt-5520",
        treatment_id="trt-9010", amount=12_000, confirmed_at=at(60 * 24 * 2),
    ),
    epr.DepositClaimRejected(
        claim_id="claim-3002", reason="batch went to direct landfill",
        reason_code=ClaimRejection.NOT_RECYCLED, rejected_at=at(60 * 24 * 2),
    ),
    epr.DepositClaimCredited(
        claim_id="claim-3001", account_id="acc-000123", amount=12_000, method="account_credit",
        credited_at=at(60 * 24 * 2 + 1),
    ),
    integrity.ChainCheckpoint(
        chain_id="collection:wastetrail.collection.events:0", chain_seq=1000,
        head_hash="9f" * 32, key_id="3b1f0c9e5d7a2468", signature="ab" * 64,
        signed_at=at(30),
    ),
    integrity.KeyRotated(
        old_key_id="3b1f0c9e5d7a2468", new_key_id="7c2d9e0f1a3b5c47", new_public_key="5e" * 32,
        rotated_at=at(40), signature="cd" * 64,
    ),
)


def example_of(cls: type[Event]) -> Event:
    """The example of one event class (KeyError if it has none)."""
    for event in EXAMPLES:
        if type(event) is cls:
            return event
    raise KeyError(cls.event_type)
