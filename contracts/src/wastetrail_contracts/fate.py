"""Where did load L go? Its fate, derived from the trip and the batches of its category.

This is the one rule, used by the treatment service's fate API and by the audit's trace
(each builds the facts below from its own source: its tables, or the log).

The chain of custody weighs whole trips, containers and receipts, never a single
household bag after it is scanned; a load's fate is therefore its share, by weight, of
what was measured downstream **of its own category**:

1. **Load → its trip's category share.** The station weighs the whole vehicle; the net is
   apportioned over the trip's categories by their scanned grams (``category_shares``, the
   transfer service's rule). Loads of category C share the trip's C-share by their
   scanned grams. While nobody has weighed the trip, the C-share is the scanned grams.
2. **Category share → batches of that category.** A batch holds one category; the trip's
   C-share goes only into C-batches (the allocations the transfer service declared).
   What was weighed but not allocated is still at the station.
3. **Batch → receipt → treatment.** Every quantity measured downstream of a batch (grams
   treated per method, accepted but awaiting treatment, refused and held, returned to a
   station, redirected and then received and treated elsewhere, in transit) is shared
   among the batch's trips by their allocation grams, then among the trip's loads of the
   category by their scanned grams.
4. **Direct haul.** A trip received at a plant without a station carries every load in
   the one weighing; the receipt's quantities are shared among all the trip's loads.

Rounding (one rule everywhere, ``apportion``): each measured quantity (a *leaf*) is split
with the largest-remainder method, first over the batch's allocations (sorted by trip id),
then over the loads of the (trip, category) (sorted by load id). So, exactly: over all
loads of a (trip, category), the grams of every leaf add up to that (trip, category)'s
share of the quantity; and over all trips of a batch, to the quantity itself. Inner nodes
carry the sum of their leaves, so a tree adds up by construction. Weighings that differ
(a plant measuring 998 kg of a 1,000 kg batch) show as the load's share of what was
actually measured at each hop; a load's leaves add up to its share of the measurements,
not to its scanned grams.

Worked example (a mixed trip, in grams): trip T scanned food 6,000 (loads F1 4,000 and
F2 2,000) and recyclable 2,000 (one load R1); the station weighed 7,600 net.
``category_shares(7,600, {food: 6,000, recyclable: 2,000})`` = food 5,700, recyclable
1,900. Food batch B1 took T's 5,700 plus 4,300 from another trip (10,000); plant P
composted all 10,000. Recyclable batch B2 took T's 1,900 alone; plant Q received 1,900,
refused 400 (redirected to plant R, which received 400 and landfilled it) and recycled
1,500. Then F1: composting = apportion(apportion(10,000, [5,700, 4,300])[T] = 5,700,
[4,000, 2,000])[F1] = 3,800 — F1 is 100 % composted; F2 composting 1,900. R1: recycling
1,500 and sanitary landfill 400, never composting — the food batch is not its batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wastetrail_contracts.apportion import apportion, category_shares
from wastetrail_contracts.enums import Category, TreatmentMethod

FateKind = Literal[
    "load",                 # the root: the sum of the load's shares of what was measured
    "not_weighed",          # leaf: the trip was not weighed anywhere yet (still on the road)
    "at_station",           # leaf: weighed at a station, not consolidated into a batch
    "batch",                # the load's share of one batch of its category
    "awaiting_dispatch",    # leaf: the batch was consolidated but has not left the station
    "in_transit",           # leaf: dispatched or redirected to a plant, not weighed there yet
    "receipt",              # weighed at a plant's weighbridge
    "accepted",
    "refused",
    "treated",              # leaf: ref is the treatment method
    "awaiting_treatment",   # leaf: accepted, not covered by a treatment record yet
    "held_at_plant",        # leaf: refused, not redirected yet (still in the plant's custody)
    "returned_to_station",  # leaf: refused and sent back to a station
    "redirected",           # refused and sent to another plant
]


@dataclass(frozen=True)
class RedirectFacts:
    """Refused waste a plant sent away, and the destination plant's receipt once weighed."""

    redirect_id: str
    grams: int
    destination_kind: Literal["station", "plant"]
    destination_id: str
    redirected_at: datetime
    actor: str | None = None
    receipt: ReceiptFacts | None = None


@dataclass(frozen=True)
class ReceiptFacts:
    """One weighbridge receipt with its treatment totals and redirects."""

    receipt_id: str
    plant_id: str
    received_grams: int
    accepted_grams: int
    refused_grams: int
    received_at: datetime
    actor: str | None = None
    # Grams per method summed over the receipt's treatment records, in a stable order.
    treated: tuple[tuple[TreatmentMethod, int], ...] = ()
    last_treated_at: datetime | None = None
    redirects: tuple[RedirectFacts, ...] = ()


@dataclass(frozen=True)
class BatchFacts:
    """A batch (one category) that the trip was consolidated into, with every allocation."""

    batch_id: str
    station_id: str
    category: Category
    allocations: Mapping[str, int]       # every trip of the batch → grams allocated
    plant_id: str | None = None          # where it was dispatched, once it was
    dispatched_at: datetime | None = None
    actor: str | None = None
    receipt: ReceiptFacts | None = None  # the destination plant's receipt, once weighed


@dataclass(frozen=True)
class LoadFacts:
    """One scanned load: its category and scanned grams."""

    load_id: str
    category: Category
    grams: int


@dataclass(frozen=True)
class TripFacts:
    """What is known of one trip: its loads, its station weighing, its batches or receipt."""

    trip_id: str
    loads: tuple[LoadFacts, ...]        # every known load of the trip
    weighed_net_grams: int | None = None  # the station's net (None: not weighed at a station)
    weighed_site_id: str | None = None
    weighed_at: datetime | None = None
    batches: tuple[BatchFacts, ...] = ()  # the batches this trip was allocated to
    direct_receipt: ReceiptFacts | None = None


@dataclass(frozen=True)
class FateNode:
    """One step of a load's path with the grams of the load that took it."""

    kind: FateKind
    grams: int
    ref: str | None = None       # batch, receipt, plant, station or method, by kind
    site_id: str | None = None   # the station or plant where this happened
    at: datetime | None = None
    actor: str | None = None
    children: tuple[FateNode, ...] = ()


def trip_fates(trip: TripFacts) -> dict[str, FateNode]:
    """The fate tree of every known load of ``trip`` (see the module docstring)."""
    paths: dict[str, list[tuple[_Path, int]]] = {load.load_id: [] for load in trip.loads}
    if trip.direct_receipt is not None:
        everyone = sorted(trip.loads, key=lambda x: x.load_id)
        for path, grams in _receipt_leaves(trip.direct_receipt):
            _share(paths, everyone, path, grams)
        return _trees(trip, paths)
    by_category: dict[Category, list[LoadFacts]] = {}
    for load in sorted(trip.loads, key=lambda x: x.load_id):
        by_category.setdefault(load.category, []).append(load)
    scanned = {c: sum(x.grams for x in loads) for c, loads in by_category.items()}
    weighed = trip.weighed_net_grams
    quantity = category_shares(weighed, scanned) if weighed is not None else scanned
    for category, loads in by_category.items():
        allocated = 0
        for batch in trip.batches:
            if batch.category != category or trip.trip_id not in batch.allocations:
                continue
            allocated += batch.allocations[trip.trip_id]
            trips = sorted(batch.allocations)
            mine = trips.index(trip.trip_id)
            weights = [batch.allocations[t] for t in trips]
            for path, grams in _batch_leaves(batch):
                _share(paths, loads, path, apportion(grams, weights)[mine])
        rest = quantity.get(category, 0) - allocated
        leaf = (_Step("at_station", site_id=trip.weighed_site_id, at=trip.weighed_at)
                if weighed is not None else _Step("not_weighed"))
        _share(paths, loads, (leaf,), max(rest, 0))
    return _trees(trip, paths)


def load_fate(load_id: str, trip: TripFacts) -> FateNode:
    """The fate tree of one load of ``trip``. Raises KeyError for a load not of the trip."""
    return trip_fates(trip)[load_id]


def leaves(node: FateNode) -> Iterator[FateNode]:
    """The final destinations of a fate tree (nodes without children), depth first."""
    if not node.children:
        yield node
        return
    for child in node.children:
        yield from leaves(child)


def treated_by_method(node: FateNode) -> dict[TreatmentMethod, int]:
    """Grams of the load per treatment method, summed over every plant it reached."""
    totals: dict[TreatmentMethod, int] = {}
    for leaf in leaves(node):
        if leaf.kind == "treated" and leaf.ref is not None:
            method = TreatmentMethod(leaf.ref)
            totals[method] = totals.get(method, 0) + leaf.grams
    return totals


def grams_of(node: FateNode, kind: FateKind) -> int:
    """Grams of the load in nodes of ``kind`` (outermost ones; nested ones not counted twice)."""
    if node.kind == kind:
        return node.grams
    return sum(grams_of(child, kind) for child in node.children)


# --- paths: the measured quantities downstream of a batch or receipt ------------------


@dataclass(frozen=True)
class _Step:
    kind: FateKind
    ref: str | None = None
    site_id: str | None = None
    at: datetime | None = None
    actor: str | None = None


_Path = tuple[_Step, ...]


def _batch_leaves(b: BatchFacts) -> list[tuple[_Path, int]]:
    step = _Step("batch", b.batch_id, b.station_id, b.dispatched_at, b.actor)
    if b.receipt is not None:
        return [((step, *path), grams) for path, grams in _receipt_leaves(b.receipt)]
    total = sum(b.allocations.values())
    if b.plant_id is not None:
        return [((step, _Step("in_transit", b.plant_id, b.plant_id, b.dispatched_at)), total)]
    return [((step, _Step("awaiting_dispatch", site_id=b.station_id)), total)]


def _receipt_leaves(r: ReceiptFacts) -> list[tuple[_Path, int]]:
    head = _Step("receipt", r.receipt_id, r.plant_id, r.received_at, r.actor)
    accepted = (head, _Step("accepted", site_id=r.plant_id))
    refused = (head, _Step("refused", site_id=r.plant_id))
    out: list[tuple[_Path, int]] = [
        ((*accepted, _Step("treated", m.value, r.plant_id, r.last_treated_at)), g)
        for m, g in r.treated
    ]
    treated = sum(g for _, g in r.treated)
    out.append(((*accepted, _Step("awaiting_treatment", site_id=r.plant_id)),
                max(r.accepted_grams - treated, 0)))
    for x in r.redirects:
        if x.destination_kind == "station":
            out.append(((*refused, _Step("returned_to_station", x.redirect_id, x.destination_id,
                                         x.redirected_at, x.actor)), x.grams))
            continue
        away = (*refused, _Step("redirected", x.redirect_id, x.destination_id, x.redirected_at,
                                x.actor))
        if x.receipt is None:
            out.append(((*away, _Step("in_transit", x.destination_id, x.destination_id,
                                      x.redirected_at)), x.grams))
        else:
            # What the next plant weighed is what the refused part became.
            out.extend(((*away, *path), grams) for path, grams in _receipt_leaves(x.receipt))
    redirected = sum(x.grams for x in r.redirects)
    out.append(((*refused, _Step("held_at_plant", site_id=r.plant_id)),
                max(r.refused_grams - redirected, 0)))
    return out


def _share(paths: dict[str, list[tuple[_Path, int]]], loads: Sequence[LoadFacts],
           path: _Path, grams: int) -> None:
    """Split one measured quantity over ``loads`` by their scanned grams."""
    if grams <= 0 or not loads:
        return
    for load, part in zip(loads, apportion(grams, [x.grams for x in loads]), strict=True):
        if part > 0:
            paths[load.load_id].append((path, part))


def _trees(trip: TripFacts, paths: Mapping[str, list[tuple[_Path, int]]]) -> dict[str, FateNode]:
    return {load_id: FateNode("load", sum(g for _, g in leaf_paths), ref=load_id,
                              children=_merge(leaf_paths, 0))
            for load_id, leaf_paths in paths.items()}


def _merge(leaf_paths: Sequence[tuple[_Path, int]], depth: int) -> tuple[FateNode, ...]:
    """Leaves sharing a step at ``depth`` become one node; order of first appearance kept."""
    groups: dict[_Step, list[tuple[_Path, int]]] = {}
    for path, grams in leaf_paths:
        groups.setdefault(path[depth], []).append((path, grams))
    nodes = []
    for step, members in groups.items():
        deeper = [(p, g) for p, g in members if len(p) > depth + 1]
        nodes.append(FateNode(step.kind, sum(g for _, g in members), ref=step.ref,
                              site_id=step.site_id, at=step.at, actor=step.actor,
                              children=_merge(deeper, depth + 1)))
    return tuple(nodes)


__all__ = [
    "BatchFacts", "FateKind", "FateNode", "LoadFacts", "ReceiptFacts", "RedirectFacts",
    "TripFacts", "grams_of", "leaves", "load_fate", "treated_by_method", "trip_fates",
]
