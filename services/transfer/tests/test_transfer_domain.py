"""Pure rules of the transfer station: weighing, reconciliation, shares, batches, alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wastetrail_contracts.apportion import category_shares as apportion
from wastetrail_contracts.enums import Category
from wastetrail_transfer.domain.alarms import (
    AlarmDelays,
    batch_receipt_deadline,
    held_grams,
    overdue,
    released,
    station_hold_deadline,
    trip_weigh_deadline,
)
from wastetrail_transfer.domain.batch import Batch, BatchStatus, Plant, TripShare
from wastetrail_transfer.domain.errors import Conflict, Invalid
from wastetrail_transfer.domain.reconciliation import Scans, Tolerance, reconcile
from wastetrail_transfer.domain.weighing import choose_tare, net_weight

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


# --- weighing ---------------------------------------------------------------------------

def test_net_is_gross_minus_tare() -> None:
    assert net_weight(9_150_000, 8_000_000) == 1_150_000


def test_tare_above_gross_is_refused_naming_tare() -> None:
    with pytest.raises(Invalid) as err:
        net_weight(5_000_000, 5_000_001)
    assert err.value.field == "tare_grams"


def test_weighed_tare_wins_over_registered() -> None:
    tare = choose_tare(7_900_000, 8_000_000, "V1")
    assert (tare.grams, tare.source) == (7_900_000, "weighed")


def test_registered_tare_when_vehicle_does_not_weigh_out() -> None:
    tare = choose_tare(None, 8_000_000, "V1")
    assert (tare.grams, tare.source) == (8_000_000, "registered")


def test_no_tare_at_all_is_a_conflict() -> None:
    with pytest.raises(Conflict) as err:
        choose_tare(None, None, "V1")
    assert err.value.field == "tare_grams"


# --- reconciliation ---------------------------------------------------------------------

def complete(count: int, grams: int) -> Scans:
    return Scans(count, grams, closed_load_count=count, closed_scanned_grams=grams)


def test_discrepancy_with_exact_numbers() -> None:
    # scanned 1,000,000 g, net 1,150,000 g, tolerance 5 % → 50,000 g allowed, 150,000 g off.
    result = reconcile(1_150_000, complete(40, 1_000_000), Tolerance(basis_points=500))
    assert result.difference_grams == 150_000
    assert result.tolerance_grams == 50_000
    assert result.discrepancy is True


def test_within_tolerance_reconciles() -> None:
    result = reconcile(1_049_999, complete(40, 1_000_000), Tolerance(basis_points=500))
    assert (result.difference_grams, result.discrepancy) == (49_999, False)


def test_exactly_at_tolerance_is_not_a_discrepancy() -> None:
    assert reconcile(950_000, complete(3, 1_000_000), Tolerance(basis_points=500)).discrepancy \
        is False
    assert reconcile(949_999, complete(3, 1_000_000), Tolerance(basis_points=500)).discrepancy \
        is True


def test_lighter_on_the_bridge_gives_negative_difference() -> None:
    result = reconcile(800_000, complete(10, 1_000_000), Tolerance(grams=20_000))
    assert (result.difference_grams, result.tolerance_grams, result.discrepancy) == (
        -200_000, 20_000, True)


def test_absolute_floor_wins_for_small_trips() -> None:
    # 5 % of 100 kg is 5 kg, below the 20 kg floor: the floor applies.
    result = reconcile(115_000, complete(4, 100_000),
                       Tolerance(grams=20_000, basis_points=500))
    assert (result.tolerance_grams, result.discrepancy) == (20_000, False)


def test_percent_is_floored_to_whole_grams() -> None:
    assert Tolerance(basis_points=250).for_scanned(1_001) == 25  # 25.025 g → 25 g


def test_reconcile_refuses_incomplete_scans() -> None:
    with pytest.raises(ValueError):
        reconcile(1, Scans(1, 10, closed_load_count=2, closed_scanned_grams=20), Tolerance())


@pytest.mark.parametrize(
    ("scans", "ready"),
    [
        (Scans(2, 300), False),  # no close yet
        (Scans(2, 300, closed_load_count=3, closed_scanned_grams=450), False),  # a load missing
        (Scans(3, 450, closed_load_count=3, closed_scanned_grams=450), True),
        (Scans(0, 0, closed_load_count=0, closed_scanned_grams=0), True),  # an empty trip
    ],
)
def test_scans_complete_only_when_close_and_loads_agree(scans: Scans, ready: bool) -> None:
    assert scans.complete() is ready


# --- shares -----------------------------------------------------------------------------

def test_single_category_trip_takes_the_whole_net() -> None:
    assert apportion(1_150_000, {Category.FOOD: 1_000_000}) == {Category.FOOD: 1_150_000}


def test_mixed_trip_is_split_in_proportion_and_adds_up() -> None:
    shares = apportion(1_000_001, {Category.FOOD: 2, Category.OTHER: 1})
    # 666,667.33 and 333,333.67: the one gram left goes to the larger remainder.
    assert shares == {Category.FOOD: 666_667, Category.OTHER: 333_334}


def test_trip_without_scans_has_no_shares() -> None:
    assert apportion(500_000, {}) == {}


@given(
    net=st.integers(min_value=0, max_value=100_000_000),
    scanned=st.dictionaries(st.sampled_from(list(Category)),
                            st.integers(min_value=1, max_value=100_000_000), min_size=1),
)
def test_shares_always_sum_to_the_net(net: int, scanned: dict[Category, int]) -> None:
    shares = apportion(net, scanned)
    assert sum(shares.values()) == net
    assert set(shares) == set(scanned)


# --- batches ----------------------------------------------------------------------------

def food_batch() -> Batch:
    return Batch(batch_id="B1", station_id="S1", category=Category.FOOD)


def test_whole_trip_allocation_takes_what_is_left() -> None:
    batch = food_batch()
    share = TripShare("T1", Category.FOOD, 1_000_000, allocated_grams=250_000)
    batch.allocate("T1", {Category.FOOD: share}, None)
    assert batch.allocations == {"T1": 750_000}
    assert share.remaining_grams == 0


def test_running_total_across_batches_refuses_over_allocation() -> None:
    share = TripShare("T1", Category.FOOD, 1_000_000)
    first, second = food_batch(), Batch("B2", "S1", Category.FOOD)
    first.allocate("T1", {Category.FOOD: share}, 700_000)
    with pytest.raises(Invalid) as err:
        second.allocate("T1", {Category.FOOD: share}, 300_001)
    assert err.value.code == "over-allocation"
    assert err.value.field == "grams"
    assert err.value.extra["remaining_grams"] == 300_000
    assert "300000 g" in err.value.detail and "300001 g requested" in err.value.detail
    second.allocate("T1", {Category.FOOD: share}, 300_000)  # exactly the rest fits
    assert share.allocated_grams == share.grams == 1_000_000


def test_fully_allocated_trip_cannot_be_added_whole() -> None:
    share = TripShare("T1", Category.FOOD, 1_000, allocated_grams=1_000)
    with pytest.raises(Invalid) as err:
        food_batch().allocate("T1", {Category.FOOD: share}, None)
    assert (err.value.code, err.value.field) == ("over-allocation", "trip_id")


def test_mixed_categories_refused() -> None:
    recyclable = TripShare("T2", Category.RECYCLABLE, 400_000)
    with pytest.raises(Invalid) as err:
        food_batch().allocate("T2", {Category.RECYCLABLE: recyclable}, None)
    assert (err.value.code, err.value.field) == ("mixed-categories", "trip_id")
    assert "recyclable" in err.value.detail


def test_mixed_trip_gives_only_its_batch_category_share() -> None:
    shares = {Category.FOOD: TripShare("T3", Category.FOOD, 600),
              Category.OTHER: TripShare("T3", Category.OTHER, 400)}
    batch = food_batch()
    batch.allocate("T3", shares, None)
    assert batch.allocations == {"T3": 600}
    assert shares[Category.OTHER].allocated_grams == 0


def test_same_trip_twice_in_one_batch_adds_up() -> None:
    share = TripShare("T1", Category.FOOD, 1_000)
    batch = food_batch()
    batch.allocate("T1", {Category.FOOD: share}, 300)
    batch.allocate("T1", {Category.FOOD: share}, 200)
    assert batch.allocations == {"T1": 500}


def test_release_gives_grams_back_to_the_trip() -> None:
    share = TripShare("T1", Category.FOOD, 1_000)
    batch = food_batch()
    batch.allocate("T1", {Category.FOOD: share}, 300)
    assert batch.release("T1", share) == 300
    assert (share.allocated_grams, batch.allocations) == (0, {})


def test_seal_emits_consolidation_and_freezes_the_batch() -> None:
    batch = food_batch()
    batch.allocate("T2", {Category.FOOD: TripShare("T2", Category.FOOD, 200)}, None)
    batch.allocate("T1", {Category.FOOD: TripShare("T1", Category.FOOD, 500)}, 100)
    event = batch.seal("SEAL-9")
    assert [(a.trip_id, a.grams) for a in event.allocations] == [("T1", 100), ("T2", 200)]
    assert (event.total_grams, event.seal_number, batch.status) == (300, "SEAL-9",
                                                                   BatchStatus.SEALED)
    with pytest.raises(Conflict):
        batch.allocate("T9", {Category.FOOD: TripShare("T9", Category.FOOD, 5)}, None)


def test_empty_batch_cannot_be_sealed() -> None:
    with pytest.raises(Conflict) as err:
        food_batch().seal("S")
    assert err.value.field == "allocations"


def sealed_food_batch() -> Batch:
    batch = food_batch()
    batch.allocate("T1", {Category.FOOD: TripShare("T1", Category.FOOD, 900)}, None)
    batch.seal("SEAL-1")
    return batch


def test_dispatch_to_a_plant_that_does_not_accept_the_category_is_refused() -> None:
    plant = Plant("P-MRF", frozenset({Category.RECYCLABLE}))
    with pytest.raises(Invalid) as err:
        sealed_food_batch().dispatch(plant, "P-MRF", "TRUCK", None, T0)
    assert (err.value.code, err.value.field) == ("plant-does-not-accept", "plant_id")


def test_dispatch_to_an_unknown_plant_is_refused() -> None:
    with pytest.raises(Invalid) as err:
        sealed_food_batch().dispatch(None, "P-X", "TRUCK", None, T0)
    assert err.value.field == "plant_id"


def test_dispatch_defaults_to_the_allocated_total() -> None:
    batch = sealed_food_batch()
    event = batch.dispatch(Plant("P-C", frozenset({Category.FOOD})), "P-C", "TRUCK", None, T0)
    assert (event.dispatched_grams, event.seal_number, batch.status) == (
        900, "SEAL-1", BatchStatus.DISPATCHED)


def test_an_open_batch_cannot_be_dispatched() -> None:
    with pytest.raises(Conflict):
        food_batch().dispatch(Plant("P", frozenset({Category.FOOD})), "P", "V", None, T0)


# --- alarms -----------------------------------------------------------------------------

DELAYS = AlarmDelays(timedelta(minutes=60), timedelta(minutes=600), timedelta(minutes=90),
                     timedelta(hours=48))


def test_closed_trip_counts_from_its_close() -> None:
    deadline = trip_weigh_deadline(T0, T0 + timedelta(hours=3), DELAYS)
    assert deadline == T0 + timedelta(hours=4)
    assert not overdue(deadline, T0 + timedelta(hours=3, minutes=59))
    assert overdue(deadline, T0 + timedelta(hours=4))


def test_unclosed_trip_counts_from_its_start_with_the_longer_delay() -> None:
    assert trip_weigh_deadline(T0, None, DELAYS) == T0 + timedelta(minutes=600)
    assert trip_weigh_deadline(None, None, DELAYS) is None


def test_batch_deadline() -> None:
    assert batch_receipt_deadline(T0, DELAYS) == T0 + timedelta(minutes=90)


def test_waste_held_at_a_station_counts_from_the_weigh_in() -> None:
    deadline = station_hold_deadline(T0, DELAYS)
    assert deadline == T0 + timedelta(hours=48)
    assert not overdue(deadline, T0 + timedelta(hours=47, minutes=59))


def test_held_grams_are_the_net_less_what_left_in_dispatched_batches() -> None:
    assert held_grams(1_000_000, 9_000_000, 600_000) == 400_000
    assert held_grams(None, 9_000_000, 0) == 9_000_000  # not weighed out: the gross bounds it
    assert held_grams(1_000_000, None, 1_000_000) == 0
    assert released(1_000_000, 1_000_000)
    assert not released(1_000_000, 999_999)
    assert not released(None, 5_000_000)  # the net is not known until the weigh-out


# --- settings ---------------------------------------------------------------------------

def test_settings_turn_percent_into_basis_points() -> None:
    from decimal import Decimal

    from wastetrail_transfer.settings import TransferSettings

    settings = TransferSettings(reconcile_tolerance_grams=20_000,
                                reconcile_tolerance_percent=Decimal("2.5"))
    tolerance = settings.tolerance()
    assert (tolerance.grams, tolerance.basis_points) == (20_000, 250)
    assert tolerance.for_scanned(2_000_000) == 50_000  # 2.5 % beats the 20 kg floor
    assert TransferSettings(reconcile_tolerance_percent=None,
                            reconcile_tolerance_grams=None).tolerance().for_scanned(10**6) == 0
    with pytest.raises(ValueError):
        TransferSettings(reconcile_tolerance_percent=Decimal("2.555"))
