"""The EPR scheme's pure rules: is a claim payable, escrow queue, entries, rates, deadlines."""

from __future__ import annotations

from datetime import date
from importlib import resources

from hypothesis import given
from hypothesis import strategies as st
from wastetrail_billing.domain.ledger import UnbalancedEntry
from wastetrail_billing.epr import domain
from wastetrail_billing.epr.domain import (
    BatchLeg,
    ClaimFacts,
    Confirm,
    LoadFacts,
    Pending,
    PriorClaim,
    ReceiptFacts,
    Reject,
    decide_claim,
)
from wastetrail_contracts.enums import AcceptanceStatus, ClaimRejection, Material

LOAD = LoadFacts(load_id="L1", trip_id="T1", generator_id="gen-a", category="recyclable",
                 measure="scale", grams=5_000)


def receipt(status: AcceptanceStatus = AcceptanceStatus.ACCEPTED, *, received: int = 100_000,
            refused: int = 0, treated: int | None = None, recycled: int | None = None,
            methods: dict[str, int] | None = None,
            materials: dict[Material, int] | None = None) -> ReceiptFacts:
    accepted = received - refused
    treated = accepted if treated is None else treated
    recycled = treated if recycled is None else recycled
    return ReceiptFacts(
        receipt_id="R1", status=status, received_grams=received, accepted_grams=accepted,
        refusal_reason="contaminated with food waste" if refused else "",
        treated_grams=treated, recycled_grams=recycled,
        material_grams=materials or {},
        methods=methods if methods is not None else ({"recycling": recycled} if treated else {}),
        treatment_ids=("TR1",) if treated else (),
    )


def claim(*batches: BatchLeg, units: int = 120, load: LoadFacts | None = LOAD,
          earlier_on_load: tuple[PriorClaim, ...] = (),
          confirmed_on_trip: tuple[PriorClaim, ...] = ()) -> ClaimFacts:
    return ClaimFacts(claim_id="C1", generator_id="gen-a", material=Material.PET, units=units,
                      unit_grams=25, deposit_per_unit=500, load=load, batches=batches,
                      earlier_on_load=earlier_on_load, confirmed_on_trip=confirmed_on_trip)


def leg(*receipts: ReceiptFacts, trip_grams: int = 100_000, total: int = 100_000,
        batch_id: str = "B1") -> BatchLeg:
    return BatchLeg(batch_id=batch_id, trip_grams=trip_grams, total_grams=total,
                    receipts=receipts)


# ---------------------------------------------------------------- is this claim payable?


def test_claim_waits_for_each_link_of_the_chain_in_turn() -> None:
    assert decide_claim(claim(load=None)) == Pending(
        "awaiting the load from the collection service")
    assert decide_claim(claim()) == Pending("awaiting consolidation of trip T1 into a batch")
    assert decide_claim(claim(leg())) == Pending("awaiting the plant's receipt of batch B1")
    half = receipt(treated=40_000)
    assert decide_claim(claim(leg(half))) == Pending(
        "awaiting treatment of receipt R1 (40000 of 100000 g treated)")


def test_recycled_batch_pays_the_whole_claim() -> None:
    decision = decide_claim(claim(leg(receipt())))
    assert decision == Confirm(units=120, amount=60_000, rejected_units=0, reason="",
                               batch_ids=("B1",), receipt_id="R1", treatment_id="TR1")


def test_refused_batch_rejects_the_claim_with_the_plants_reason() -> None:
    refused = receipt(AcceptanceStatus.REFUSED, refused=100_000, treated=0)
    decision = decide_claim(claim(leg(refused)))
    assert isinstance(decision, Reject)
    assert decision.code is ClaimRejection.MATERIAL_REFUSED
    assert decision.reason == "batch B1 was refused by the plant: contaminated with food waste"


def test_landfilled_batch_rejects_the_claim_naming_the_treatment() -> None:
    landfilled = receipt(recycled=0, methods={"sanitary_landfill": 100_000})
    decision = decide_claim(claim(leg(landfilled)))
    assert decision == Reject(ClaimRejection.NOT_RECYCLED,
                              "nothing of this trip's pet was recycled "
                              "(sanitary_landfill 100 %)")


def test_partial_recycling_confirms_only_the_units_the_recycled_mass_covers() -> None:
    # The trip is 10 % of a batch of which 20,000 g were recycled → 2,000 g for this trip:
    # 80 bottles of 25 g. The other 40 of the 120 claimed are rejected.
    partial = receipt(recycled=20_000, methods={"recycling": 20_000,
                                                "sanitary_landfill": 80_000})
    decision = decide_claim(claim(leg(partial, trip_grams=10_000, total=100_000)))
    assert isinstance(decision, Confirm)
    assert (decision.units, decision.amount, decision.rejected_units) == (80, 40_000, 40)
    assert "40 units were not recycled" in decision.reason


def test_earlier_claims_of_the_trip_use_up_its_recycled_mass() -> None:
    small = receipt(recycled=3_500, methods={"recycling": 3_500, "incineration": 96_500})
    taken = (PriorClaim(Material.PET, 3_000),)
    decision = decide_claim(claim(leg(small), confirmed_on_trip=taken))
    assert isinstance(decision, Confirm)
    assert decision.units == 20  # 500 g left of 3,500 g
    nothing_left = (PriorClaim(Material.PET, 3_500),)
    assert decide_claim(claim(leg(small), confirmed_on_trip=nothing_left)) == Reject(
        ClaimRejection.NOT_RECYCLED, "the 3500 g recycled from this trip are taken by "
                                     "earlier claims")


def test_named_material_outputs_count_only_for_that_material() -> None:
    # The plant recycled plenty, but its outputs say no PET came out.
    aluminium_only = receipt(materials={Material.ALUMINIUM: 50_000})
    decision = decide_claim(claim(leg(aluminium_only)))
    assert isinstance(decision, Reject)
    assert decision.code is ClaimRejection.NOT_RECYCLED
    pet_out = receipt(materials={Material.PET: 1_000})
    partial = decide_claim(claim(leg(pet_out)))
    assert isinstance(partial, Confirm)
    assert partial.units == 40  # 1,000 g of PET out of 3,000 g claimed


def test_trip_split_over_two_batches_sums_its_shares() -> None:
    # Half the trip went to a recycled batch, half to a refused one.
    recycled = leg(receipt(received=6_000), trip_grams=3_000, total=6_000, batch_id="B1")
    refused = leg(receipt(AcceptanceStatus.REFUSED, received=3_000, refused=3_000,
                          treated=0), trip_grams=3_000, total=3_000, batch_id="B2")
    decision = decide_claim(claim(recycled, refused))
    assert isinstance(decision, Confirm)
    assert decision.units == 120  # 3,000 g of this trip recycled = 120 × 25 g
    assert decision.batch_ids == ("B1", "B2")


def test_claim_at_another_generators_load_is_rejected() -> None:
    someone_else = LoadFacts(load_id="L1", trip_id="T1", generator_id="gen-z",
                             category="recyclable", measure="scale", grams=5_000)
    decision = decide_claim(claim(leg(receipt()), load=someone_else))
    assert isinstance(decision, Reject)
    assert decision.reason == "load L1 was collected from another generator"


def test_packaging_cannot_outweigh_the_weighed_load() -> None:
    light = LoadFacts(load_id="L1", trip_id="T1", generator_id="gen-a",
                      category="recyclable", measure="scale", grams=2_000)
    decision = decide_claim(claim(leg(receipt()), load=light))
    assert isinstance(decision, Reject)
    assert "weighs 3000 g, more than the 2000 g the load weighed" in decision.reason
    earlier = (PriorClaim(Material.PET, 2_500),)
    assert isinstance(decide_claim(claim(leg(receipt()), earlier_on_load=earlier)), Reject)
    # A bag's weight is only an estimate: no cap.
    bag = LoadFacts(load_id="L1", trip_id="T1", generator_id="gen-a", category="recyclable",
                    measure="bag", grams=2_000)
    assert isinstance(decide_claim(claim(leg(receipt()), load=bag)), Confirm)


@given(
    units=st.integers(1, 10_000),
    trip_grams=st.integers(1, 1_000_000),
    extra=st.integers(0, 1_000_000),
    recycled_share=st.integers(0, 100),
    used=st.integers(0, 500_000),
)
def test_never_confirms_more_packaging_than_was_recycled(
    units: int, trip_grams: int, extra: int, recycled_share: int, used: int
) -> None:
    total = trip_grams + extra
    recycled = total * recycled_share // 100
    bag_load = LoadFacts(load_id="L1", trip_id="T1", generator_id="gen-a",
                         category="recyclable", measure="bag", grams=1)
    facts = claim(leg(receipt(received=total, recycled=recycled), trip_grams=trip_grams,
                      total=total), units=units, load=bag_load,
                  confirmed_on_trip=(PriorClaim(Material.PET, used),))
    decision = decide_claim(facts)
    available = max(0, recycled * trip_grams // total - used)
    if isinstance(decision, Confirm):
        assert 0 < decision.units <= units
        assert decision.units * 25 <= available
        assert decision.units + decision.rejected_units == units
        assert decision.amount == decision.units * 500
    else:
        assert isinstance(decision, Reject)
        assert available < 25


# ---------------------------------------------------------------- the escrow queue


def test_escrow_pays_first_confirmed_first_and_never_goes_negative() -> None:
    queue = [("c1", 60_000), ("c2", 30_000), ("c3", 10_000)]
    assert domain.plan_credits(0, queue) == ()
    assert domain.plan_credits(60_000, queue) == ("c1",)
    # c2 does not fit: c3 waits behind it rather than jumping the queue.
    assert domain.plan_credits(80_000, queue) == ("c1",)
    assert domain.plan_credits(100_000, queue) == ("c1", "c2", "c3")


# ---------------------------------------------------------------- packaging and returns


def test_packaging_version_in_force_on_a_day() -> None:
    v1 = domain.PackagingVersion("PET-500", "p", Material.PET, 25, 500, date(2025, 1, 1))
    v2 = domain.PackagingVersion("PET-500", "p", Material.PET, 24, 700, date(2025, 7, 1))
    assert domain.packaging_on([v2, v1], date(2024, 12, 31)) is None
    assert domain.packaging_on([v2, v1], date(2025, 6, 30)) == v1
    assert domain.packaging_on([v2, v1], date(2025, 7, 1)) == v2


def test_returned_weight_of_a_material_is_split_by_market_share() -> None:
    shares = [domain.MarketShare("B-can", 15, 300_000), domain.MarketShare("A-can", 15, 100_000)]
    # 1,000 g: A gets 250 g → 16 cans (10 g left over), B gets 750 g → 50 cans.
    assert domain.allocate_weight(1_000, shares) == (("A-can", 16), ("B-can", 50))
    assert domain.allocate_weight(10, shares) == ()  # less than a can each
    assert domain.units_in_weight(3_010, 25) == 120


def test_over_market_flag() -> None:
    assert not domain.over_market(10_000, 10_000)
    assert domain.over_market(10_001, 10_000)


# ---------------------------------------------------------------- ledger entries


def test_entries_balance_and_use_the_scheme_accounts() -> None:
    market = domain.market_entry("epr-mkt-r1", "r1", "bia", 5_000_000)
    assert {(p.account, p.amount) for p in market.postings} == {
        ("producer:bia:receivable", 5_000_000), ("producer:bia:deposits", -5_000_000)}
    paid = domain.deposit_entry("epr-dep-d1", "d1", "bia", 5_000_000)
    assert {(p.account, p.amount) for p in paid.postings} == {
        ("epr:escrow", 5_000_000), ("producer:bia:receivable", -5_000_000)}
    refund = domain.refund_entry("epr-ref-c1", "c1", "bia", "gen-a", 60_000)
    assert {(p.account, p.amount) for p in refund.postings} == {
        ("producer:bia:deposits", 60_000), ("household:gen-a:credit", -60_000),
        ("cash:epr_refunds", 60_000), ("epr:escrow", -60_000)}
    for entry in (market, paid, refund):
        assert sum(p.amount for p in entry.postings) == 0


def test_a_zero_refund_cannot_be_posted() -> None:
    try:
        domain.refund_entry("epr-ref-c1", "c1", "bia", "gen-a", 0)
    except UnbalancedEntry:
        return
    raise AssertionError("a 0 đ refund entry was accepted")


# ---------------------------------------------------------------- rates and deadlines


def test_mandatory_rates_come_from_the_data_file_with_assumptions_marked() -> None:
    text = resources.files("wastetrail_billing.epr").joinpath("rates.toml").read_text("utf-8")
    rates = domain.parse_rates(text)
    assert {m: (r.percent, r.assumed) for m, r in rates.items()} == {
        Material.PET: (22, False), Material.PAPER_CARTON: (20, False),
        Material.GLASS: (15, False), Material.ALUMINIUM: (22, True),
        Material.OTHER_PLASTIC: (10, True)}


def test_recycling_rate_against_the_mandatory_rate() -> None:
    rates = {Material.PET: domain.MandatoryRate(Material.PET, 22, False, "")}
    (line,) = domain.recycling_rates({Material.PET: 250_000}, {Material.PET: 3_000}, rates)
    assert (line.rate_bp, line.mandatory_bp, line.met) == (120, 2_200, False)
    assert line.shortfall_grams == 55_000 - 3_000
    (done,) = domain.recycling_rates({Material.PET: 100}, {Material.PET: 22}, rates)
    assert done.met and done.shortfall_grams == 0


def test_report_and_payment_deadlines_of_a_year() -> None:
    report, payment = domain.deadlines(2025, date(2026, 3, 1), [], 5_000_000, [])
    assert (report.due, report.status) == (date(2026, 3, 31), "open")
    assert (payment.due, payment.status) == (date(2026, 4, 20), "open")
    report, payment = domain.deadlines(2025, date(2026, 4, 21), [], 5_000_000,
                                       [(date(2026, 4, 10), 2_000_000)])
    assert report.status == "overdue"
    assert (payment.status, payment.detail) == ("overdue", "3000000 đ outstanding, 1 days late")
    report, payment = domain.deadlines(2025, date(2026, 5, 1), [date(2025, 6, 1)], 5_000_000,
                                       [(date(2026, 4, 20), 5_000_000)])
    assert (report.status, payment.status) == ("met", "met")
    report, payment = domain.deadlines(2025, date(2026, 5, 1), [date(2026, 4, 2)], 5_000_000,
                                       [(date(2026, 4, 25), 5_000_000)])
    assert (report.status, payment.status) == ("late", "late")
