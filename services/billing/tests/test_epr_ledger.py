"""EPR handlers on real PostgreSQL: exact ledger postings, fraud guards, escrow, balances.

The chain's events are handed to the scheme's consumer handlers directly here (the
Kafka path is in test_epr_kafka.py), so each rule is checked quickly and exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlmodel import col, select
from wastetrail_billing.adapters.tables import LedgerPosting, meta
from wastetrail_billing.epr import handlers, queries
from wastetrail_billing.epr.tables import EprClaim
from wastetrail_contracts import decode
from wastetrail_contracts.enums import (
    AcceptanceStatus,
    ActorKind,
    Category,
    Material,
    Role,
    TreatmentMethod,
)
from wastetrail_contracts.envelope import Actor
from wastetrail_contracts.events.collection import LoadCollected
from wastetrail_contracts.events.epr import PackagingRegistered, ProducerRegistered
from wastetrail_contracts.events.transfer import Allocation, BatchConsolidated
from wastetrail_contracts.events.treatment import (
    BatchReceived,
    TreatmentOutput,
    TreatmentRecorded,
)
from wastetrail_runtime.clock import FixedClock
from wastetrail_runtime.db import Database
from wastetrail_runtime.problems import Problem
from wastetrail_runtime.store import EventStore, UnitOfWork

pytestmark = pytest.mark.integration

T = TypeVar("T")
START = datetime(2025, 6, 10, 3, 0, tzinfo=UTC)
ADMIN = Actor(kind=ActorKind.OPERATOR, id="admin-1", role=Role.ADMIN)
CASHIER = Actor(kind=ActorKind.OPERATOR, id="cashier-1", role=Role.CASHIER)
COLLECTOR = Actor(kind=ActorKind.DEVICE, id="dev-1", role=Role.COLLECTOR)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    db = Database(database_url)
    async with db.engine.begin() as conn:
        await conn.run_sync(meta.metadata.create_all)
    yield EventStore(db, meta, "billing", topic_prefix="unused.", clock=FixedClock(START))
    await db.dispose()


async def run(store: EventStore, step: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    async with store.unit_of_work() as uow:
        result = await step(uow)
        await uow.commit()
    return result


async def setup_producer(store: EventStore, *, units: int = 10_000, pay: int | None = None,
                         producer: str = "bia-sg", sku: str = "PET-500") -> None:
    await run(store, lambda uow: handlers.register_producer(uow, ProducerRegistered(
        producer_id=producer, name="Bia Sài Gòn", tax_code="0300588569", kind="producer"),
        actor=ADMIN))
    await run(store, lambda uow: handlers.register_packaging(uow, PackagingRegistered(
        sku=sku, producer_id=producer, material=Material.PET, unit_grams=25,
        deposit_per_unit=500, effective_from=datetime(2025, 1, 1).date()), actor=ADMIN))
    await run(store, lambda uow: handlers.report_units(uow, handlers.MarketReport(
        report_id=f"{producer}-2025-05", producer_id=producer, sku=sku, period="2025-05",
        province="79", units=units), actor=ADMIN))
    if pay:
        await run(store, lambda uow: handlers.record_deposit(uow, handlers.DepositPayment(
            payment_id=f"{producer}-pay-1", producer_id=producer, amount=pay,
            reference="VCB-778812", paid_at=START), actor=CASHIER))


def a_return(key: str, load: str, units: int = 120, generator: str = "gen-a",
             sku: str = "PET-500") -> handlers.PackagingReturn:
    return handlers.PackagingReturn(idempotency_key=key, load_id=load, generator_id=generator,
                                    province="79",
                                    lines=(handlers.ReturnLine(sku=sku, units=units),))


async def open_return(store: EventStore, ret: handlers.PackagingReturn) -> list[EprClaim]:
    result = await run(store, lambda uow: handlers.record_return(uow, ret, actor=COLLECTOR))
    return result.claims


async def chain(store: EventStore, *, load: str, trip: str, batch: str, receipt: str,
                generator: str = "gen-a", status: AcceptanceStatus = AcceptanceStatus.ACCEPTED,
                methods: dict[TreatmentMethod, int] | None = None, load_grams: int = 5_000,
                batch_grams: int = 100_000,
                outputs: tuple[TreatmentOutput, ...] = ()) -> None:
    """Feed a load's whole journey to the scheme's consumer handlers, link by link."""
    await run(store, lambda uow: handlers.on_load_collected(LoadCollected(
        load_id=load, trip_id=trip, generator_id=generator, commune="P01",
        category=Category.RECYCLABLE, measure="scale", grams=load_grams,
        collected_at=START, device_id="dev-1", vehicle_id="51C-12345",
        idempotency_key=f"k-{load}"), uow))
    await run(store, lambda uow: handlers.on_batch_consolidated(BatchConsolidated(
        batch_id=batch, station_id="ST1", category=Category.RECYCLABLE,
        allocations=(Allocation(trip_id=trip, grams=batch_grams),), total_grams=batch_grams,
        seal_number=f"SEAL-{batch}"), uow))
    refused = batch_grams if status is AcceptanceStatus.REFUSED else 0
    await run(store, lambda uow: handlers.on_batch_received(BatchReceived(
        receipt_id=receipt, plant_id="PL1", batch_id=batch, category=Category.RECYCLABLE,
        declared_grams=batch_grams, received_grams=batch_grams,
        accepted_grams=batch_grams - refused, refused_grams=refused, status=status,
        refusal_reason="mixed with food waste" if refused else "", received_at=START), uow))
    if status is not AcceptanceStatus.REFUSED:
        await run(store, lambda uow: handlers.on_treatment_recorded(TreatmentRecorded(
            treatment_id=f"TR-{receipt}", plant_id="PL1", receipt_id=receipt, batch_id=batch,
            accepted_grams=batch_grams,
            methods=methods or {TreatmentMethod.RECYCLING: batch_grams},
            outputs=outputs, treated_at=START), uow))


async def claim_of(store: EventStore, claim_id: str) -> EprClaim:
    async with store.db.session() as session:
        found = await session.get(EprClaim, claim_id)
    assert found is not None
    return found


async def postings(store: EventStore) -> dict[str, set[tuple[str, int]]]:
    async with store.db.session() as session:
        rows = (await session.exec(select(LedgerPosting).order_by(col(LedgerPosting.id)))).all()
    by_entry: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for row in rows:
        by_entry[row.entry_id].add((row.account, row.amount))
    return dict(by_entry)


async def assert_every_entry_balanced(store: EventStore) -> None:
    """Both the ledger tables and the LedgerEntryPosted events balance, entry by entry."""
    for entry_id, legs in (await postings(store)).items():
        assert sum(amount for _account, amount in legs) == 0, entry_id
    t = store.tables.events
    async with store.db.session() as session:
        values = (await session.execute(
            select(t.c.envelope).where(t.c.type == "billing.ledger_entry_posted"))).all()
    assert values
    for (value,) in values:
        payload = decode(value).payload
        assert sum(int(p["amount"]) for p in payload["postings"]) == 0  # type: ignore[index,union-attr,arg-type,call-overload]


async def test_full_scenario_posts_exactly_these_entries(store: EventStore) -> None:
    await setup_producer(store, pay=5_000_000)
    (claim,) = await open_return(store, a_return("ret-1", "L1"))
    assert (claim.status, claim.units, claim.amount) == ("pending", 120, 60_000)
    assert claim.status_reason == "awaiting the load from the collection service"

    await chain(store, load="L1", trip="T1", batch="B1", receipt="R1")

    claim = await claim_of(store, claim.claim_id)
    assert (claim.status, claim.confirmed_amount) == ("credited", 60_000)
    assert await postings(store) == {
        "epr-mkt-bia-sg-2025-05": {("producer:bia-sg:receivable", 5_000_000),
                                   ("producer:bia-sg:deposits", -5_000_000)},
        "epr-dep-bia-sg-pay-1": {("epr:escrow", 5_000_000),
                                 ("producer:bia-sg:receivable", -5_000_000)},
        f"epr-ref-{claim.claim_id}": {("producer:bia-sg:deposits", 60_000),
                                      ("household:gen-a:credit", -60_000),
                                      ("cash:epr_refunds", 60_000),
                                      ("epr:escrow", -60_000)},
    }
    await assert_every_entry_balanced(store)
    async with store.db.session() as session:
        assert await queries.producer_balances(session) == {
            "bia-sg": {"owed": 5_000_000, "paid": 5_000_000, "refunded": 60_000,
                       "unredeemed": 4_940_000}}
        scheme = await queries.scheme_balances(session)
    assert scheme["escrow"] == 4_940_000
    assert scheme["producers"]["bia-sg"]["ledger"] == {  # type: ignore[index]
        "receivable": 0, "unredeemed": 4_940_000}


async def test_claim_waits_for_the_escrow_and_is_paid_by_the_next_deposit(
    store: EventStore,
) -> None:
    await setup_producer(store)  # reported, nothing paid: the escrow is empty
    (claim,) = await open_return(store, a_return("ret-1", "L1"))
    await chain(store, load="L1", trip="T1", batch="B1", receipt="R1")
    claim = await claim_of(store, claim.claim_id)
    assert claim.status == "confirmed"
    assert claim.status_reason == "confirmed; waiting for deposits in the escrow to credit it"
    async with store.db.session() as session:
        assert (await queries.scheme_balances(session))["escrow"] == 0
    assert f"epr-ref-{claim.claim_id}" not in await postings(store)

    # A deposit smaller than the claim changes nothing: the escrow never goes negative.
    _row, credited = await run(store, lambda uow: handlers.record_deposit(
        uow, handlers.DepositPayment(payment_id="p-small", producer_id="bia-sg",
                                     amount=50_000, reference="VCB-1", paid_at=START),
        actor=CASHIER))
    assert credited == 0
    assert (await claim_of(store, claim.claim_id)).status == "confirmed"
    _row, credited = await run(store, lambda uow: handlers.record_deposit(
        uow, handlers.DepositPayment(payment_id="p-rest", producer_id="bia-sg",
                                     amount=4_950_000, reference="VCB-2", paid_at=START),
        actor=CASHIER))
    assert credited == 1
    assert (await claim_of(store, claim.claim_id)).status == "credited"
    async with store.db.session() as session:
        assert (await queries.scheme_balances(session))["escrow"] == 4_940_000
    await assert_every_entry_balanced(store)


async def test_refused_batch_rejects_the_claim_and_posts_nothing(store: EventStore) -> None:
    await setup_producer(store, pay=5_000_000)
    (claim,) = await open_return(store, a_return("ret-1", "L9"))
    await chain(store, load="L9", trip="T9", batch="B9", receipt="R9",
                status=AcceptanceStatus.REFUSED)
    claim = await claim_of(store, claim.claim_id)
    assert (claim.status, claim.reason_code) == ("rejected", "material_refused")
    assert claim.status_reason == "batch B9 was refused by the plant: mixed with food waste"
    assert not any(e.startswith("epr-ref-") for e in await postings(store))


async def test_landfilled_batch_rejects_the_claim(store: EventStore) -> None:
    await setup_producer(store, pay=5_000_000)
    (claim,) = await open_return(store, a_return("ret-1", "L8"))
    await chain(store, load="L8", trip="T8", batch="B8", receipt="R8",
                methods={TreatmentMethod.SANITARY_LANDFILL: 100_000})
    claim = await claim_of(store, claim.claim_id)
    assert (claim.status, claim.reason_code) == ("rejected", "not_recycled")


async def test_partially_recycled_batch_confirms_only_the_recycled_units(
    store: EventStore,
) -> None:
    await setup_producer(store, pay=5_000_000)
    (claim,) = await open_return(store, a_return("ret-1", "L7"))
    # The plant says 2,000 g of PET came out of the batch: 80 of the 120 bottles.
    await chain(store, load="L7", trip="T7", batch="B7", receipt="R7",
                outputs=(TreatmentOutput(kind="PET", grams=2_000),))
    claim = await claim_of(store, claim.claim_id)
    assert (claim.status, claim.confirmed_units, claim.rejected_units) == ("credited", 80, 40)
    assert claim.confirmed_amount == 40_000
    assert (await postings(store))[f"epr-ref-{claim.claim_id}"] >= {
        ("household:gen-a:credit", -40_000)}


async def test_the_same_units_cannot_be_claimed_twice(store: EventStore) -> None:
    await setup_producer(store, pay=5_000_000)
    (first,) = await open_return(store, a_return("ret-1", "L1"))
    # The device retries the same return: the same claim comes back, nothing new.
    (again,) = await open_return(store, a_return("ret-1", "L1"))
    assert again.claim_id == first.claim_id
    # The same key for another return is refused outright.
    with pytest.raises(Problem) as reused:
        await open_return(store, a_return("ret-1", "L1", units=121))
    assert (reused.value.status, reused.value.field) == (409, "idempotency_key")
    # A new key for the same SKU at the same load: recorded, and rejected as a duplicate.
    (second,) = await open_return(store, a_return("ret-2", "L1"))
    assert (second.status, second.reason_code) == ("rejected", "duplicate_claim")
    assert first.claim_id in second.status_reason

    await chain(store, load="L1", trip="T1", batch="B1", receipt="R1")
    assert (await claim_of(store, first.claim_id)).status == "credited"
    assert (await claim_of(store, second.claim_id)).status == "rejected"
    refunds = [e for e in await postings(store) if e.startswith("epr-ref-")]
    assert refunds == [f"epr-ref-{first.claim_id}"]


async def test_claims_beyond_the_units_on_the_provinces_market_are_flagged(
    store: EventStore,
) -> None:
    await setup_producer(store, units=150, pay=75_000)
    (within,) = await open_return(store, a_return("ret-1", "L1", units=120))
    (beyond,) = await open_return(store, a_return("ret-2", "L2", units=40,
                                                  generator="gen-b"))
    assert not within.flagged_over_market
    assert beyond.flagged_over_market  # 160 claimed > 150 placed on the market in 79
    async with store.db.session() as session:
        flagged = (await session.exec(
            select(EprClaim.claim_id).where(EprClaim.flagged_over_market))).all()
    assert flagged == [beyond.claim_id]


async def test_weight_of_a_material_is_turned_into_units(store: EventStore) -> None:
    await setup_producer(store, pay=5_000_000)
    ret = handlers.PackagingReturn(
        idempotency_key="ret-w", load_id="L1", generator_id="gen-a", province="79",
        lines=(handlers.ReturnLine(material=Material.PET, grams=3_010),))
    (claim,) = await open_return(store, ret)
    assert (claim.sku, claim.units, claim.amount) == ("PET-500", 120, 60_000)


async def test_compliance_flags_shortfall_and_overdue_payment(store: EventStore) -> None:
    await setup_producer(store, pay=1_000_000)
    (_claim,) = await open_return(store, a_return("ret-1", "L1"))
    await chain(store, load="L1", trip="T1", batch="B1", receipt="R1")
    async with store.db.session() as session:
        report = await queries.compliance(session, "bia-sg", 2025,
                                          (START + timedelta(days=330)).date())
    (pet,) = report["materials"]  # type: ignore[misc]
    assert pet == {"material": "pet", "placed_grams": 250_000, "recycled_grams": 3_000,
                   "rate_bp": 120, "mandatory_bp": 2_200, "mandatory_rate_assumed": False,
                   "met": False, "shortfall_grams": 52_000}
    assert report["flags"] == ["payment_overdue", "below_mandatory_rate:pet"]
