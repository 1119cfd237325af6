"""A hand-made province whose numbers are computed by hand in the tests' comments.

Communes U1 (urban) and R1 (rural); one station st-1; plants pl-1 and pl-2.

Trip T1 (U1, veh-1): L1 H1 food 30 kg, L2 H2 food 50 kg, L3 H3 (R1) food 20 kg → 100 kg
scanned; weighed at st-1 112 − 10 = 102 kg; reconciled (difference 2 kg, tolerance 5 kg).
Trip T2 (R1, veh-2): L4 H3 food 40 kg; weighed 50 − 10 = 40 kg.
H4 (R1) was refused once (unsorted) and had no load.
Batch B1 (food): T1 60 kg + T2 40 kg = 100 kg → pl-1: received 100 kg, accepted 90 kg,
refused 10 kg (redirected to pl-2); treated composting 60, sanitary landfill 20, direct
landfill 10 kg.
Batch B2 (food): T1 40 kg → pl-1: received 40 kg, all accepted, incinerated 40 kg.
Billing (2025-03): A1 (H1) 43,200 paid; A2 (H2) 32,400 paid by VNPay, 5,000 refunded;
A3 (H3) 21,600 unpaid. Costs 150,000. EPR producer P1: PET-500 (pet, 20 g, 500 đ) 1,000
units and CAN-330 (aluminium, 15 g, 1,000 đ) 200 units placed in province "demo"; deposits
paid 600,000; claim C1 (A1, 100 PET) confirmed and credited to the account, C2 (A3, 50
cans) confirmed and paid out, C3 (A2, 40 PET) rejected.
Alerts: AL1 (trip T2 not weighed) raised then cleared; AL3 (load L3 not received) open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from _auditlog import LogBuilder, actor
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    ActorKind,
    AlertKind,
    Category,
    CommuneClass,
    CostComponent,
    CustodySite,
    CustomerClass,
    GeneratorKind,
    Material,
    PaymentChannel,
    RefusalReason,
    Role,
    TreatmentMethod,
)
from wastetrail_contracts.events.billing import (
    AccountOpened,
    InvoiceIssued,
    InvoiceLine,
    OperatingCostRecorded,
    PaymentRefunded,
    PaymentSucceeded,
)
from wastetrail_contracts.events.collection import (
    CollectorRegistered,
    DeviceRegistered,
    GeneratorRegistered,
    LoadCollected,
    LoadRefused,
    TripClosed,
    TripStarted,
    VehicleRegistered,
)
from wastetrail_contracts.events.custody import CustodyAlertCleared, CustodyAlertRaised
from wastetrail_contracts.events.epr import (
    DepositClaimConfirmed,
    DepositClaimCredited,
    DepositClaimOpened,
    DepositClaimRejected,
    DepositPaid,
    PackagingRegistered,
    ProducerRegistered,
    UnitsPlacedOnMarket,
)
from wastetrail_contracts.events.transfer import (
    Allocation,
    BatchConsolidated,
    BatchDispatched,
    StationRegistered,
    TripReconciled,
    TripWeighed,
)
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    PlantRegistered,
    RefusedWasteRedirected,
    TreatmentRecorded,
)

DAY = datetime(2025, 3, 3, 0, 30, tzinfo=UTC)  # 07:30 in Hà Nội
COLLECTOR = actor(Role.COLLECTOR, "dev-1", ActorKind.DEVICE)
STATION = actor(Role.STATION_OPERATOR, "op-st-1")
PLANT = actor(Role.PLANT_OPERATOR, "op-pl-1")
CASHIER = actor(Role.CASHIER, "cashier-1")


def at(minutes: int) -> datetime:
    """A time on the scenario's day."""
    return DAY + timedelta(minutes=minutes)


def registries(log: LogBuilder) -> None:
    """Generators, collector, vehicles, device, station, plants."""
    for gid, commune, cls, members in (
        ("H1", "U1", CommuneClass.URBAN, 4), ("H2", "U1", CommuneClass.URBAN, 2),
        ("H3", "R1", CommuneClass.RURAL, 5), ("H4", "R1", CommuneClass.RURAL, 3),
    ):
        log.emit(GeneratorRegistered(
            generator_id=gid, code=f"QR-{gid}", kind=GeneratorKind.HOUSEHOLD, name=f"Hộ {gid}",
            commune=commune, commune_class=cls, customer_class=CustomerClass.HOUSEHOLD,
            members=members,
        ), gid, at(0))
    log.emit(CollectorRegistered(collector_id="col-1", name="HTX Môi trường"), "col-1", at(0))
    for vid in ("veh-1", "veh-2"):
        log.emit(VehicleRegistered(vehicle_id=vid, plate=f"29C-{vid}", collector_id="col-1",
                                   capacity_grams=5_000_000, registered_tare_grams=10_000),
                 vid, at(0))
    log.emit(DeviceRegistered(device_id="dev-1", collector_id="col-1"), "dev-1", at(0))
    log.emit(StationRegistered(station_id="st-1", name="Trạm 1", commune="U1",
                               capacity_grams=50_000_000, categories=(Category.FOOD,)),
             "st-1", at(0))
    log.emit(PlantRegistered(plant_id="pl-1", name="Khu xử lý 1", commune="R1",
                             methods=(TreatmentMethod.COMPOSTING, TreatmentMethod.SANITARY_LANDFILL,
                                      TreatmentMethod.DIRECT_LANDFILL,
                                      TreatmentMethod.INCINERATION_ENERGY_RECOVERY),
                             categories=(Category.FOOD,), daily_capacity_grams=500_000_000),
             "pl-1", at(0))
    log.emit(PlantRegistered(plant_id="pl-2", name="Khu xử lý 2", commune="R1",
                             methods=(TreatmentMethod.SANITARY_LANDFILL,),
                             categories=(Category.FOOD,), daily_capacity_grams=500_000_000),
             "pl-2", at(0))


def _load(log: LogBuilder, load_id: str, trip: str, gen: str, commune: str, grams: int,
          minute: int, vehicle: str = "veh-1", category: Category = Category.FOOD) -> None:
    log.emit(LoadCollected(
        load_id=load_id, trip_id=trip, generator_id=gen, commune=commune, category=category,
        measure="scale", grams=grams, collected_at=at(minute), device_id="dev-1",
        vehicle_id=vehicle, idempotency_key=f"k-{load_id}",
    ), load_id, at(minute), COLLECTOR)


def collection(log: LogBuilder) -> None:
    """Trips T1, T2, their loads and one refusal."""
    log.emit(TripStarted(trip_id="T1", vehicle_id="veh-1", collector_id="col-1",
                         crew=("crew-a",), commune="U1", started_at=at(0)), "T1", at(0), COLLECTOR)
    _load(log, "L1", "T1", "H1", "U1", 30_000, 5)
    _load(log, "L2", "T1", "H2", "U1", 50_000, 10)
    _load(log, "L3", "T1", "H3", "R1", 20_000, 15)
    log.emit(TripClosed(trip_id="T1", vehicle_id="veh-1", declared_total_grams=100_000,
                        scanned_total_grams=100_000, load_count=3, closed_at=at(30)),
             "T1", at(30), COLLECTOR)
    log.emit(TripStarted(trip_id="T2", vehicle_id="veh-2", collector_id="col-1",
                         crew=("crew-b",), commune="R1", started_at=at(0)), "T2", at(0), COLLECTOR)
    _load(log, "L4", "T2", "H3", "R1", 40_000, 20, vehicle="veh-2")
    log.emit(LoadRefused(refusal_id="RF1", trip_id="T2", generator_id="H4", commune="R1",
                         reason=RefusalReason.UNSORTED, refused_at=at(22), device_id="dev-1",
                         idempotency_key="k-RF1"), "RF1", at(22), COLLECTOR)
    log.emit(TripClosed(trip_id="T2", vehicle_id="veh-2", declared_total_grams=40_000,
                        scanned_total_grams=40_000, load_count=1, closed_at=at(35)),
             "T2", at(35), COLLECTOR)


def transfer(log: LogBuilder) -> None:
    """Weighing, reconciliation, two batches, dispatch."""
    log.emit(TripWeighed(trip_id="T1", vehicle_id="veh-1", site=CustodySite.STATION,
                         site_id="st-1", gross_grams=112_000, tare_grams=10_000, net_grams=102_000,
                         tare_source="weighed", weighed_in_at=at(45), weighed_out_at=at(50)),
             "T1", at(50), STATION)
    log.emit(TripReconciled(trip_id="T1", site_id="st-1", net_grams=102_000,
                            scanned_grams=100_000, load_count=3, difference_grams=2_000,
                            tolerance_grams=5_000, discrepancy=False), "T1", at(50), STATION)
    log.emit(CustodyAlertRaised(alert_id="AL1", kind=AlertKind.TRIP_NOT_WEIGHED,
                                subject_kind="trip", subject_id="T2", detail="not weighed in 2h",
                                raised_at=at(40), commune="R1"), "AL1", at(40), service="transfer")
    log.emit(TripWeighed(trip_id="T2", vehicle_id="veh-2", site=CustodySite.STATION,
                         site_id="st-1", gross_grams=50_000, tare_grams=10_000, net_grams=40_000,
                         tare_source="registered", weighed_in_at=at(55)), "T2", at(55), STATION)
    log.emit(CustodyAlertCleared(alert_id="AL1", kind=AlertKind.TRIP_NOT_WEIGHED,
                                 subject_kind="trip", subject_id="T2", resolution="weighed",
                                 cleared_at=at(56)), "AL1", at(56), service="transfer")
    log.emit(TripReconciled(trip_id="T2", site_id="st-1", net_grams=40_000, scanned_grams=40_000,
                            load_count=1, difference_grams=0, tolerance_grams=5_000,
                            discrepancy=False), "T2", at(55), STATION)
    log.emit(BatchConsolidated(batch_id="B1", station_id="st-1", category=Category.FOOD,
                               allocations=(Allocation(trip_id="T1", grams=60_000),
                                            Allocation(trip_id="T2", grams=40_000)),
                               total_grams=100_000, seal_number="SEAL-0001"), "B1", at(60), STATION)
    log.emit(BatchConsolidated(batch_id="B2", station_id="st-1", category=Category.FOOD,
                               allocations=(Allocation(trip_id="T1", grams=40_000),),
                               total_grams=40_000, seal_number="SEAL-0002"), "B2", at(61), STATION)
    for bid, grams, seal, minute in (("B1", 100_000, "SEAL-0001", 70),
                                     ("B2", 40_000, "SEAL-0002", 71)):
        log.emit(BatchDispatched(batch_id=bid, station_id="st-1", category=Category.FOOD,
                                 seal_number=seal, dispatched_grams=grams, plant_id="pl-1",
                                 vehicle_id="veh-9", dispatched_at=at(minute)),
                 bid, at(minute), STATION)
    log.emit(CustodyAlertRaised(alert_id="AL3", kind=AlertKind.LOAD_NOT_RECEIVED,
                                subject_kind="load", subject_id="L3",
                                detail="no weighing of its trip within 48 h (test)",
                                raised_at=at(80), commune="R1"), "AL3", at(80), service="transfer")


def treatment(log: LogBuilder) -> None:
    """Receipts at pl-1, treatment split, the refused part sent to pl-2."""
    log.emit(BatchReceived(receipt_id="R-B1", plant_id="pl-1", batch_id="B1",
                           category=Category.FOOD, declared_grams=100_000, received_grams=100_000,
                           accepted_grams=90_000, refused_grams=10_000,
                           status=AcceptanceStatus.PARTIALLY_REFUSED,
                           refusal_reason="contaminated with hazardous waste",
                           received_at=at(120)), "R-B1", at(120), PLANT)
    log.emit(RefusedWasteRedirected(receipt_id="R-B1", plant_id="pl-1", batch_id="B1",
                                    grams=10_000, destination_kind="plant", destination_id="pl-2",
                                    redirected_at=at(130)), "R-B1", at(130), PLANT)
    log.emit(TreatmentRecorded(
        treatment_id="TR1", plant_id="pl-1", receipt_id="R-B1", batch_id="B1",
        accepted_grams=90_000,
        methods={TreatmentMethod.COMPOSTING: 60_000, TreatmentMethod.SANITARY_LANDFILL: 20_000,
                 TreatmentMethod.DIRECT_LANDFILL: 10_000},
        treated_at=at(200)), "R-B1", at(200), PLANT)
    log.emit(BatchReceived(receipt_id="R-B2", plant_id="pl-1", batch_id="B2",
                           category=Category.FOOD, declared_grams=40_000, received_grams=40_000,
                           accepted_grams=40_000, refused_grams=0,
                           status=AcceptanceStatus.ACCEPTED, received_at=at(125)),
             "R-B2", at(125), PLANT)
    log.emit(TreatmentRecorded(
        treatment_id="TR2", plant_id="pl-1", receipt_id="R-B2", batch_id="B2",
        accepted_grams=40_000, methods={TreatmentMethod.INCINERATION_ENERGY_RECOVERY: 40_000},
        energy_kwh=20, treated_at=at(210)), "R-B2", at(210), PLANT)


def _invoice(log: LogBuilder, inv: str, acc: str, amount: int, vat: int) -> None:
    log.emit(InvoiceIssued(
        invoice_id=inv, account_id=acc, period="2025-03", tariff_id="tf-demo",
        lines=(InvoiceLine(category=Category.FOOD, component=CostComponent.COLLECTION,
                           basis="flat", quantity=1, unit="month", amount=amount,
                           tariff_version=date(2025, 1, 1)),),
        charged_grams=0, subtotal=amount, vat=vat, credits=0, total=amount + vat,
        issued_at=at(60 * 24 * 28)), inv, at(60 * 24 * 28))


def billing(log: LogBuilder) -> None:
    """Accounts, invoices, payments, a refund, operating costs."""
    for acc, gen, commune, cls in (("A1", "H1", "U1", CommuneClass.URBAN),
                                   ("A2", "H2", "U1", CommuneClass.URBAN),
                                   ("A3", "H3", "R1", CommuneClass.RURAL)):
        log.emit(AccountOpened(account_id=acc, generator_id=gen, commune=commune,
                               commune_class=cls, customer_class=CustomerClass.HOUSEHOLD),
                 acc, at(0))
    _invoice(log, "INV-1", "A1", 40_000, 3_200)
    _invoice(log, "INV-2", "A2", 30_000, 2_400)
    _invoice(log, "INV-3", "A3", 20_000, 1_600)
    paid = at(60 * 24 * 30)
    log.emit(PaymentSucceeded(payment_id="PAY-1", invoice_id="INV-1", account_id="A1",
                              amount=43_200, channel=PaymentChannel.CASH, paid_at=paid),
             "PAY-1", paid, CASHIER)
    log.emit(PaymentSucceeded(payment_id="PAY-2", invoice_id="INV-2", account_id="A2",
                              amount=32_400, channel=PaymentChannel.VNPAY,
                              gateway_transaction_no="14000001", paid_at=paid), "PAY-2", paid)
    log.emit(PaymentRefunded(payment_id="PAY-2", invoice_id="INV-2", account_id="A2",
                             amount=5_000, refund_ref="RF-PAY-2", refunded_at=paid), "PAY-2", paid)
    log.emit(OperatingCostRecorded(cost_id="CO-1", period="2025-03",
                                   component=CostComponent.COLLECTION, driver="trip_km",
                                   quantity=120, amount=100_000), "CO-1", paid)
    log.emit(OperatingCostRecorded(cost_id="CO-2", period="2025-03",
                                   component=CostComponent.TREATMENT, driver="plant_tonne",
                                   method=TreatmentMethod.COMPOSTING, quantity=140_000,
                                   amount=50_000), "CO-2", paid)


def epr(log: LogBuilder) -> None:
    """Producer P1, packaging, units on the market, deposits, three claims."""
    log.emit(ProducerRegistered(producer_id="P1", name="Công ty Nước Sạch", tax_code="0101",
                                kind="producer"), "P1", at(0))
    log.emit(PackagingRegistered(sku="PET-500", producer_id="P1", material=Material.PET,
                                 unit_grams=20, deposit_per_unit=500,
                                 effective_from=date(2025, 1, 1)), "P1", at(0))
    log.emit(PackagingRegistered(sku="CAN-330", producer_id="P1", material=Material.ALUMINIUM,
                                 unit_grams=15, deposit_per_unit=1_000,
                                 effective_from=date(2025, 1, 1)), "P1", at(0))
    log.emit(UnitsPlacedOnMarket(report_id="UPM-1", producer_id="P1", sku="PET-500",
                                 period="2025-01", province="demo", units=1_000,
                                 deposit_owed=500_000), "P1", at(1))
    log.emit(UnitsPlacedOnMarket(report_id="UPM-2", producer_id="P1", sku="CAN-330",
                                 period="2025-01", province="demo", units=200,
                                 deposit_owed=200_000), "P1", at(1))
    log.emit(DepositPaid(payment_id="DP-1", producer_id="P1", amount=600_000,
                         channel=PaymentChannel.BANK_TRANSFER, reference="UNC-1",
                         paid_at=at(2)), "P1", at(2))
    for claim, acc, gen, load, sku, mat, units, amount in (
        ("C1", "A1", "H1", "L1", "PET-500", Material.PET, 100, 50_000),
        ("C2", "A3", "H3", "L3", "CAN-330", Material.ALUMINIUM, 50, 50_000),
        ("C3", "A2", "H2", "L2", "PET-500", Material.PET, 40, 20_000),
    ):
        log.emit(DepositClaimOpened(claim_id=claim, account_id=acc, generator_id=gen,
                                    load_id=load, producer_id="P1", sku=sku, material=mat,
                                    units=units, grams=0, amount=amount, opened_at=at(6)),
                 claim, at(6))
    log.emit(DepositClaimConfirmed(claim_id="C1", batch_id="B1", receipt_id="R-B1",
                                   treatment_id="TR1", amount=50_000, confirmed_at=at(300)),
             "C1", at(300))
    log.emit(DepositClaimCredited(claim_id="C1", account_id="A1", amount=50_000,
                                  method="account_credit", credited_at=at(301)), "C1", at(301))
    log.emit(DepositClaimConfirmed(claim_id="C2", batch_id="B1", receipt_id="R-B1",
                                   treatment_id="TR1", amount=50_000, confirmed_at=at(300)),
             "C2", at(300))
    log.emit(DepositClaimCredited(claim_id="C2", account_id="A3", amount=50_000,
                                  method="payout", credited_at=at(302)), "C2", at(302))
    log.emit(DepositClaimRejected(claim_id="C3", reason="material refused at the plant",
                                  rejected_at=at(300)), "C3", at(300))


def hand_scenario(log: LogBuilder) -> LogBuilder:
    """The whole hand-made province, sealed."""
    registries(log)
    collection(log)
    transfer(log)
    treatment(log)
    billing(log)
    epr(log)
    log.seal(at(60 * 24 * 31))
    return log


def filler(log: LogBuilder, trips: int = 30, loads_per_trip: int = 6) -> LogBuilder:
    """More trips and loads in commune F1, to make partitions a few dozen events long."""
    log.emit(GeneratorRegistered(
        generator_id="HF", code="QR-HF", kind=GeneratorKind.HOUSEHOLD, name="Hộ F",
        commune="F1", commune_class=CommuneClass.RURAL, customer_class=CustomerClass.HOUSEHOLD,
    ), "HF", at(0))
    for t in range(trips):
        trip = f"TF{t}"
        log.emit(TripStarted(trip_id=trip, vehicle_id="veh-1", collector_id="col-1",
                             crew=("crew-f",), commune="F1", started_at=at(t)),
                 trip, at(t), COLLECTOR)
        for n in range(loads_per_trip):
            _load(log, f"LF{t}-{n}", trip, "HF", "F1", 1_000 + n, t)
        total = sum(1_000 + n for n in range(loads_per_trip))
        log.emit(TripClosed(trip_id=trip, vehicle_id="veh-1", declared_total_grams=total,
                            scanned_total_grams=total, load_count=loads_per_trip,
                            closed_at=at(t + 1)), trip, at(t + 1), COLLECTOR)
    return log
