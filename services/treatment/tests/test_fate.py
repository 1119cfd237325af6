"""The fate of a load: exact integer shares along load → trip → batch → receipt → treatment."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from wastetrail_contracts.enums import TreatmentMethod as M
from wastetrail_treatment.domain.fate import (
    BatchFacts,
    FateNode,
    ReceiptFacts,
    RedirectFacts,
    TripFacts,
    leaves,
    load_fate,
    treated_by_method,
)

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _sums_exactly(node: FateNode) -> None:
    """Every node's children add up to the node (the documented rounding guarantee)."""
    if node.children:
        assert sum(c.grams for c in node.children) == node.grams, node
        for child in node.children:
            _sums_exactly(child)


def _find(node: FateNode, kind: str, ref: str | None = None) -> FateNode:
    for n in _walk(node):
        if n.kind == kind and (ref is None or n.ref == ref):
            return n
    raise AssertionError(f"no {kind} {ref} in {node}")


def _walk(node: FateNode) -> list[FateNode]:
    return [node, *(x for c in node.children for x in _walk(c))]


def three_hop_trip() -> TripFacts:
    # Plant P-B took the 5 000 g that P-A refused, re-weighed it at 4 900 g, accepted it
    # all and incinerated it.
    at_b = ReceiptFacts("R-B", "P-B", received_grams=4_900, accepted_grams=4_900,
                        refused_grams=0, received_at=T0,
                        treated=((M.INCINERATION_ENERGY_RECOVERY, 4_900),))
    # Plant P-A weighed batch B-1 at 50 000 g, refused 5 000 g (sent on to P-B), accepted
    # 45 000 g: 30 000 g composted, 12 000 g to sanitary landfill, 3 000 g not yet treated.
    at_a = ReceiptFacts(
        "R-A", "P-A", received_grams=50_000, accepted_grams=45_000, refused_grams=5_000,
        received_at=T0,
        treated=((M.COMPOSTING, 30_000), (M.SANITARY_LANDFILL, 12_000)),
        redirects=(RedirectFacts("X-1", 5_000, "plant", "P-B", T0, receipt=at_b),),
    )
    return TripFacts(
        trip_id="T-1",
        scanned_total_grams=40_000,
        load_grams={"L1": 12_000, "L2": 18_000, "L3": 10_000},
        weighed_net_grams=41_000,
        weighed_site_id="ST-1",
        batches=(
            BatchFacts("B-1", "ST-1", allocation_grams=24_600, plant_id="P-A",
                       dispatched_at=T0, receipt=at_a),
            BatchFacts("B-2", "ST-1", allocation_grams=16_400, plant_id="P-A",
                       dispatched_at=T0),  # still on the road
        ),
    )


def test_three_hop_fate_by_hand() -> None:
    fate = load_fate("L1", three_hop_trip())

    # Hop 1, load → trip: the station weighed trip T-1 at 41 000 g net against 40 000 g
    # scanned; L1 is 12 000 / 40 000 of the trip, so 41 000 × 12 000 / 40 000 = 12 300 g.
    assert fate.kind == "load"
    assert fate.grams == 12_300

    # Hop 2, trip → batch: B-1 got 24 600 g of the trip and B-2 16 400 g (all 41 000 g):
    # B-1: 12 300 × 24 600 / 41 000 = 7 380 g; B-2: 12 300 × 16 400 / 41 000 = 4 920 g.
    b1, b2 = _find(fate, "batch", "B-1"), _find(fate, "batch", "B-2")
    assert (b1.grams, b2.grams) == (7_380, 4_920)
    assert _find(b2, "in_transit").grams == 4_920  # dispatched to P-A, not weighed yet

    # Hop 3, batch → receipt at P-A: accepted 45 000 / 50 000 and refused 5 000 / 50 000
    # of L1's 7 380 g: 7 380 × 45 000 / 50 000 = 6 642 g accepted, 738 g refused.
    assert _find(b1, "accepted").grams == 6_642
    assert _find(b1, "refused").grams == 738

    # Hop 4, treatment split of the 6 642 g accepted (weights 30 000 / 12 000 / 3 000):
    #   composting        6 642 × 30 000 / 45 000 = 4 428      → 4 428
    #   sanitary landfill 6 642 × 12 000 / 45 000 = 1 771.2    → 1 771
    #   awaiting          6 642 ×  3 000 / 45 000 =   442.8    →   442 + 1 = 443
    # Floors sum to 6 641; the 1 g left goes to the largest remainder (0.8, awaiting).
    accepted = _find(b1, "accepted")
    split = {(c.kind, c.ref): c.grams for c in accepted.children}
    assert split == {("treated", "composting"): 4_428,
                     ("treated", "sanitary_landfill"): 1_771,
                     ("awaiting_treatment", None): 443}

    # The refused 738 g all went to P-B, which accepted everything and incinerated it.
    redirected = _find(b1, "redirected", "X-1")
    assert redirected.grams == 738 and redirected.site_id == "P-B"
    assert _find(redirected, "treated", "incineration_energy_recovery").grams == 738

    # Every gram of L1 is somewhere: 4 428 + 1 771 + 443 + 738 + 4 920 = 12 300.
    assert sum(leaf.grams for leaf in leaves(fate)) == 12_300
    _sums_exactly(fate)
    assert treated_by_method(fate) == {M.COMPOSTING: 4_428, M.SANITARY_LANDFILL: 1_771,
                                       M.INCINERATION_ENERGY_RECOVERY: 738}


def test_loads_of_a_trip_share_its_weight_exactly() -> None:
    trip = three_hop_trip()
    shares = [load_fate(load, trip).grams for load in ("L1", "L2", "L3")]
    # 41 000 × 12/40 = 12 300; × 18/40 = 18 450; × 10/40 = 10 250.
    assert shares == [12_300, 18_450, 10_250]
    assert sum(shares) == 41_000


def test_rounding_leftover_goes_to_largest_remainder() -> None:
    # 1 000 g weighed for three loads of 1 g each: 333.33 each; one gram left over goes to
    # the first (equal remainders: the earlier load by id wins).
    trip = TripFacts("T", 3, {"a": 1, "b": 1, "c": 1}, weighed_net_grams=1_000)
    assert [load_fate(x, trip).grams for x in "abc"] == [334, 333, 333]


def test_unweighed_trip_keeps_the_scanned_grams_on_the_road() -> None:
    trip = TripFacts("T", 30_000, {"L": 10_000, "M": 15_000})  # 5 000 g scanned but unseen
    fate = load_fate("L", trip)
    assert fate.grams == 10_000
    assert [(c.kind, c.grams) for c in fate.children] == [("not_weighed", 10_000)]


def test_weighed_but_partly_consolidated_trip_leaves_rest_at_station() -> None:
    trip = TripFacts("T", 10_000, {"L": 10_000}, weighed_net_grams=9_000,
                     weighed_site_id="ST", batches=(BatchFacts("B", "ST", 6_000),))
    fate = load_fate("L", trip)
    assert fate.grams == 9_000
    kinds = {(c.kind, c.grams) for c in fate.children}
    assert kinds == {("batch", 6_000), ("at_station", 3_000)}
    assert _find(fate, "awaiting_dispatch").grams == 6_000


def test_direct_haul_uses_the_plant_weighing_and_returned_refusals() -> None:
    receipt = ReceiptFacts(
        "R", "P", received_grams=8_000, accepted_grams=6_000, refused_grams=2_000,
        received_at=T0, treated=((M.RECYCLING, 6_000),),
        redirects=(RedirectFacts("X", 1_500, "station", "ST-9", T0),),
    )
    trip = TripFacts("T", 10_000, {"L": 2_500, "K": 7_500}, direct_receipt=receipt)
    fate = load_fate("L", trip)
    # 8 000 × 2 500 / 10 000 = 2 000 g; accepted 2 000 × 6/8 = 1 500; refused 500, of which
    # 500 × 1 500 / 2 000 = 375 returned to ST-9 and 125 still held at P.
    assert fate.grams == 2_000
    assert _find(fate, "treated", "recycling").grams == 1_500
    assert _find(fate, "returned_to_station").grams == 375
    assert _find(fate, "returned_to_station").site_id == "ST-9"
    assert _find(fate, "held_at_plant").grams == 125


grams = st.integers(min_value=1, max_value=10**8)


@given(
    loads=st.lists(grams, min_size=1, max_size=6),
    net=st.integers(min_value=0, max_value=10**8),
    allocations=st.lists(grams, max_size=3),
    received=grams,
    refused_share=st.integers(min_value=0, max_value=100),
    treated_share=st.integers(min_value=0, max_value=100),
)
def test_leaves_always_sum_exactly(
    loads: list[int], net: int, allocations: list[int], received: int, refused_share: int,
    treated_share: int,
) -> None:
    refused = received * refused_share // 100
    accepted = received - refused
    treated = accepted * treated_share // 100
    receipt = ReceiptFacts("R", "P", received, accepted, refused, T0,
                           treated=((M.COMPOSTING, treated // 2),
                                    (M.RECYCLING, treated - treated // 2)),
                           redirects=((RedirectFacts("X", refused // 3, "station", "S", T0),)
                                      if refused >= 3 else ()))
    batches = tuple(BatchFacts(f"B{i}", "S", a, receipt=receipt if i == 0 else None)
                    for i, a in enumerate(allocations))
    trip = TripFacts("T", sum(loads), {f"L{i}": g for i, g in enumerate(loads)},
                     weighed_net_grams=net, batches=batches)
    roots = [load_fate(f"L{i}", trip) for i in range(len(loads))]
    assert sum(r.grams for r in roots) == max(net, sum(allocations))
    for root in roots:
        _sums_exactly(root)
        assert sum(leaf.grams for leaf in leaves(root)) == root.grams
