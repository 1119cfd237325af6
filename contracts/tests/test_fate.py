"""The fate of a load by category, worked by hand, and its exact sums as properties."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from wastetrail_contracts.apportion import apportion
from wastetrail_contracts.enums import Category as C
from wastetrail_contracts.enums import TreatmentMethod as M
from wastetrail_contracts.fate import (
    BatchFacts,
    FateNode,
    LoadFacts,
    ReceiptFacts,
    RedirectFacts,
    TripFacts,
    grams_of,
    leaves,
    load_fate,
    treated_by_method,
    trip_fates,
)

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _sums_exactly(node: FateNode) -> None:
    """Every node's children add up to the node."""
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


def mixed_trip() -> TripFacts:
    """The worked example of the fate module's docstring."""
    # Food batch B1: trip T gave 5 700 g, trip U 4 300 g; plant P composted all 10 000 g.
    composted = ReceiptFacts("RP", "P", received_grams=10_000, accepted_grams=10_000,
                             refused_grams=0, received_at=T0,
                             treated=((M.COMPOSTING, 10_000),))
    # Recyclable batch B2: T's 1 900 g alone; plant Q refused 400 g (redirected to R,
    # which weighed 400 g and landfilled it) and recycled 1 500 g.
    at_r = ReceiptFacts("RR", "R", received_grams=400, accepted_grams=400, refused_grams=0,
                        received_at=T0, treated=((M.SANITARY_LANDFILL, 400),))
    at_q = ReceiptFacts("RQ", "Q", received_grams=1_900, accepted_grams=1_500,
                        refused_grams=400, received_at=T0, treated=((M.RECYCLING, 1_500),),
                        redirects=(RedirectFacts("X", 400, "plant", "R", T0, receipt=at_r),))
    return TripFacts(
        trip_id="T",
        loads=(LoadFacts("F1", C.FOOD, 4_000), LoadFacts("F2", C.FOOD, 2_000),
               LoadFacts("R1", C.RECYCLABLE, 2_000)),
        weighed_net_grams=7_600, weighed_site_id="ST",
        batches=(
            BatchFacts("B1", "ST", C.FOOD, {"T": 5_700, "U": 4_300}, plant_id="P",
                       dispatched_at=T0, receipt=composted),
            BatchFacts("B2", "ST", C.RECYCLABLE, {"T": 1_900}, plant_id="Q",
                       dispatched_at=T0, receipt=at_q),
        ),
    )


def test_mixed_trip_worked_by_hand() -> None:
    fates = trip_fates(mixed_trip())
    # 7 600 g net over food 6 000 / recyclable 2 000 scanned → food 5 700, recyclable 1 900.
    # F1 is 4 000 / 6 000 of T's food: 5 700 × 2/3 = 3 800 g, all of it composted in B1
    # (B1's 10 000 g composted, T's allocation 5 700 of 10 000 → 5 700 → F1 3 800, F2 1 900).
    assert treated_by_method(fates["F1"]) == {M.COMPOSTING: 3_800}
    assert treated_by_method(fates["F2"]) == {M.COMPOSTING: 1_900}
    # R1 went only through the recyclable batch: 1 500 recycled at Q, and the 400 g Q
    # refused was weighed and landfilled at R. Never composted.
    assert treated_by_method(fates["R1"]) == {M.RECYCLING: 1_500, M.SANITARY_LANDFILL: 400}
    assert [b.ref for b in fates["R1"].children] == ["B2"]
    assert [b.ref for b in fates["F1"].children] == ["B1"]
    assert grams_of(fates["R1"], "refused") == 400
    assert _find(fates["R1"], "redirected", "X").site_id == "R"
    for tree in fates.values():
        _sums_exactly(tree)


def test_food_on_a_mixed_trip_whose_food_was_composted_is_all_composted() -> None:
    fates = trip_fates(mixed_trip())
    for food in ("F1", "F2"):
        tree = fates[food]
        treated = treated_by_method(tree)
        assert set(treated) == {M.COMPOSTING}
        assert treated[M.COMPOSTING] == tree.grams  # 100 % composted
        assert sum(leaf.grams for leaf in leaves(tree)) == tree.grams


def test_rounding_leftover_goes_to_largest_remainder() -> None:
    # 1 000 g weighed for three 1 g food loads, still at the station: 333.33 each; the
    # leftover gram goes to the first (equal remainders: the earlier load id).
    trip = TripFacts("T", tuple(LoadFacts(x, C.FOOD, 1) for x in "abc"),
                     weighed_net_grams=1_000)
    assert [trip_fates(trip)[x].grams for x in "abc"] == [334, 333, 333]


def test_unweighed_trip_keeps_the_scanned_grams_on_the_road() -> None:
    trip = TripFacts("T", (LoadFacts("L", C.OTHER, 10_000), LoadFacts("M", C.FOOD, 15_000)))
    fate = load_fate("L", trip)
    assert fate.grams == 10_000
    assert [(c.kind, c.grams) for c in fate.children] == [("not_weighed", 10_000)]


def test_weighed_but_partly_consolidated_trip_leaves_rest_at_station() -> None:
    # Net 9 000 g, one category: 6 000 g in batch B (not dispatched), 3 000 g still here.
    trip = TripFacts("T", (LoadFacts("L", C.OTHER, 10_000),), weighed_net_grams=9_000,
                     weighed_site_id="ST",
                     batches=(BatchFacts("B", "ST", C.OTHER, {"T": 6_000}),))
    fate = load_fate("L", trip)
    assert fate.grams == 9_000
    assert {(c.kind, c.grams) for c in fate.children} == {("batch", 6_000), ("at_station", 3_000)}
    assert _find(fate, "awaiting_dispatch").grams == 6_000


def test_direct_haul_shares_the_receipt_over_every_load() -> None:
    receipt = ReceiptFacts(
        "R", "P", received_grams=8_000, accepted_grams=6_000, refused_grams=2_000,
        received_at=T0, treated=((M.RECYCLING, 6_000),),
        redirects=(RedirectFacts("X", 1_500, "station", "ST-9", T0),),
    )
    trip = TripFacts("T", (LoadFacts("L", C.RECYCLABLE, 2_500),
                           LoadFacts("K", C.RECYCLABLE, 7_500)), direct_receipt=receipt)
    fate = load_fate("L", trip)
    # L is 2 500 / 10 000 of the trip: recycled 6 000 / 4 = 1 500, returned 1 500 / 4 = 375,
    # held (2 000 − 1 500) / 4 = 125.
    assert fate.grams == 2_000
    assert _find(fate, "treated", "recycling").grams == 1_500
    assert _find(fate, "returned_to_station").grams == 375
    assert _find(fate, "returned_to_station").site_id == "ST-9"
    assert _find(fate, "held_at_plant").grams == 125


def test_received_but_untreated_waits_and_in_transit_batches_show() -> None:
    waiting = ReceiptFacts("R", "P", 5_000, 5_000, 0, T0, treated=((M.COMPOSTING, 2_000),))
    trip = TripFacts("T", (LoadFacts("L", C.FOOD, 5_000), LoadFacts("K", C.OTHER, 5_000)),
                     weighed_net_grams=10_000, weighed_site_id="ST",
                     batches=(BatchFacts("B1", "ST", C.FOOD, {"T": 5_000}, plant_id="P",
                                         receipt=waiting),
                              BatchFacts("B2", "ST", C.OTHER, {"T": 5_000}, plant_id="Q")))
    fates = trip_fates(trip)
    assert grams_of(fates["L"], "awaiting_treatment") == 3_000
    assert treated_by_method(fates["L"]) == {M.COMPOSTING: 2_000}
    assert [(n.kind, n.grams) for n in leaves(fates["K"])] == [("in_transit", 5_000)]


grams = st.integers(min_value=1, max_value=10**8)
categories = st.sampled_from([C.FOOD, C.RECYCLABLE, C.OTHER])


@st.composite
def trips(draw: st.DrawFn) -> TripFacts:
    loads = tuple(LoadFacts(f"L{i}", draw(categories), draw(grams))
                  for i in range(draw(st.integers(1, 8))))
    batches = []
    for i in range(draw(st.integers(0, 4))):
        others = {f"U{j}": draw(grams) for j in range(draw(st.integers(0, 2)))}
        received = draw(grams)
        refused = received * draw(st.integers(0, 100)) // 100
        accepted = received - refused
        treated = accepted * draw(st.integers(0, 100)) // 100
        redirected = refused * draw(st.integers(0, 100)) // 100
        onward = ReceiptFacts(f"R{i}b", "P2", max(redirected, 1), max(redirected, 1), 0, T0,
                              treated=((M.SANITARY_LANDFILL, max(redirected, 1) // 2),))
        receipt = ReceiptFacts(
            f"R{i}", "P", received, accepted, refused, T0,
            treated=((M.COMPOSTING, treated // 3), (M.RECYCLING, treated - treated // 3)),
            redirects=((RedirectFacts(f"X{i}", redirected, "plant", "P2", T0, receipt=onward),)
                       if redirected else ()))
        batches.append(BatchFacts(f"B{i}", "S", draw(categories),
                                  {"T": draw(grams), **others}, plant_id="P",
                                  receipt=receipt if draw(st.booleans()) else None))
    return TripFacts("T", loads, weighed_net_grams=draw(st.integers(0, 10**8)),
                     batches=tuple(batches))


@given(trips())
def test_trees_add_up(trip: TripFacts) -> None:
    for tree in trip_fates(trip).values():
        _sums_exactly(tree)
        assert sum(leaf.grams for leaf in leaves(tree)) == tree.grams


@given(trips())
def test_a_trip_category_gets_exactly_its_share_of_each_batch_treatment(trip: TripFacts) -> None:
    """Over the loads of a (trip, category), treated grams by method equal, exactly, the
    (trip, category)'s share of its batches' treatment records: each batch's grams of a
    method split over the batch's allocations by largest remainder."""
    fates = trip_fates(trip)
    for category in {x.category for x in trip.loads}:
        expected: dict[M, int] = {}
        for b in trip.batches:
            if b.category != category or b.receipt is None:
                continue
            trips_ = sorted(b.allocations)
            weights = [b.allocations[t] for t in trips_]
            methods = list(b.receipt.treated)
            for x in b.receipt.redirects:
                if x.receipt is not None:
                    methods += list(x.receipt.treated)
            for method, g in methods:
                mine = apportion(g, weights)[trips_.index("T")]
                expected[method] = expected.get(method, 0) + mine
        got: dict[M, int] = {}
        for load in trip.loads:
            if load.category == category:
                for method, g in treated_by_method(fates[load.load_id]).items():
                    got[method] = got.get(method, 0) + g
        assert got == {m: g for m, g in expected.items() if g > 0}
        # And nothing of this category went through a batch of another one.
        for load in trip.loads:
            if load.category == category:
                for child in fates[load.load_id].children:
                    if child.kind == "batch":
                        batch = next(b for b in trip.batches if b.batch_id == child.ref)
                        assert batch.category == category
