"""Where did load L go? Its fate, derived from the trip and batches it travelled in.

The chain of custody only weighs whole trips, containers and receipts, never a single
household bag after it is scanned; a load's fate is therefore its proportional share,
by weight, of each hop:

1. **Load → trip.** The trip's weighed quantity (the station's net weight, or the plant's
   for direct haul; the scanned total while nobody has weighed it) is shared among the
   trip's loads by their scanned grams: load share = load grams / trip scanned total.
   If the trip was allocated to batches for more than its net weight, the allocations
   are the quantity (what left in containers is what the transfer service declared).
2. **Trip → batches.** The load's grams are split over the batches the trip was
   consolidated into, in proportion to the allocation grams; what was weighed but not
   allocated is still at the station.
3. **Batch → receipt.** Split by the receipt's accepted and refused grams.
4. **Accepted → treatment.** Split by the grams of each method over all the receipt's
   treatment records; the accepted part nobody has treated yet is awaiting treatment.
5. **Refused → custody.** Split by what was returned to a station or redirected to another
   plant (whose receipt is followed in turn, steps 3–5) and what is still held.

Rounding (one rule everywhere, ``apportion``): at every hop the parent's integer grams are
split with the largest-remainder method, so the children of every node sum exactly to the
node and the leaves sum exactly to the load's grams. Step 1 apportions the trip's
quantity over *all* its loads at once, so the loads of a trip also sum exactly to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wastetrail_contracts.enums import TreatmentMethod

from wastetrail_treatment.domain.apportion import apportion

FateKind = Literal[
    "load",                 # the root: the load's share of its trip's weighed quantity
    "not_weighed",          # leaf: the trip was not weighed anywhere yet (still on the road)
    "at_station",           # leaf: weighed at a station, not consolidated into a batch
    "batch",                # the load's share of one batch
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
    """A batch the trip was consolidated into, with this trip's allocation."""

    batch_id: str
    station_id: str
    allocation_grams: int
    plant_id: str | None = None          # where it was dispatched, once it was
    dispatched_at: datetime | None = None
    actor: str | None = None
    receipt: ReceiptFacts | None = None  # the destination plant's receipt, once weighed


@dataclass(frozen=True)
class TripFacts:
    """What is known of one trip: its loads, its weighing, its batches or direct receipt."""

    trip_id: str
    scanned_total_grams: int           # the crew's scanned total (0 if the trip is not closed)
    load_grams: Mapping[str, int]      # every known load of the trip → scanned grams
    weighed_net_grams: int | None = None
    weighed_site_id: str | None = None
    weighed_at: datetime | None = None
    batches: tuple[BatchFacts, ...] = ()
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


def load_fate(load_id: str, trip: TripFacts) -> FateNode:
    """The fate tree of one load of ``trip``; the leaves sum exactly to the root's grams.

    Raises KeyError when the load is not one of the trip's loads.
    """
    load_ids = sorted(trip.load_grams)
    index = load_ids.index(load_id) if load_id in trip.load_grams else -1
    if index < 0:
        raise KeyError(load_id)
    known = [trip.load_grams[i] for i in load_ids]
    # Loads the crew scanned but this service has not seen still hold their share.
    scanned = max(trip.scanned_total_grams, sum(known))
    unseen = scanned - sum(known)
    allocated = sum(b.allocation_grams for b in trip.batches)

    quantity: int
    branches: list[tuple[int, _Branch]]
    if trip.direct_receipt is not None:
        quantity = trip.direct_receipt.received_grams
        branches = [(quantity, _ReceiptBranch(trip.direct_receipt))]
    else:
        weighed = trip.weighed_net_grams
        quantity = max(weighed if weighed is not None else scanned, allocated)
        branches = [(b.allocation_grams, _BatchBranch(b)) for b in trip.batches]
        rest: _Branch = (_Leaf("at_station", site_id=trip.weighed_site_id, at=trip.weighed_at)
                         if weighed is not None else _Leaf("not_weighed"))
        branches.append((quantity - allocated, rest))

    share = apportion(quantity, [*known, unseen])[index]
    return FateNode("load", share, ref=load_id, children=_split(share, branches))


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


# --- the hops -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    kind: FateKind
    ref: str | None = None
    site_id: str | None = None
    at: datetime | None = None

    def node(self, grams: int) -> FateNode:
        """This branch's node, carrying ``grams`` of the load."""
        return FateNode(self.kind, grams, ref=self.ref, site_id=self.site_id, at=self.at)


@dataclass(frozen=True)
class _BatchBranch:
    batch: BatchFacts

    def node(self, grams: int) -> FateNode:
        """This branch's node, carrying ``grams`` of the load."""
        b = self.batch
        if b.receipt is not None:
            inner = _receipt_node(grams, b.receipt)
        elif b.plant_id is not None:
            inner = FateNode("in_transit", grams, ref=b.plant_id, site_id=b.plant_id,
                             at=b.dispatched_at)
        else:
            inner = FateNode("awaiting_dispatch", grams, site_id=b.station_id)
        return FateNode("batch", grams, ref=b.batch_id, site_id=b.station_id,
                        at=b.dispatched_at, actor=b.actor, children=(inner,))


@dataclass(frozen=True)
class _ReceiptBranch:
    receipt: ReceiptFacts

    def node(self, grams: int) -> FateNode:
        """This branch's node, carrying ``grams`` of the load."""
        return _receipt_node(grams, self.receipt)


@dataclass(frozen=True)
class _RedirectBranch:
    redirect: RedirectFacts

    def node(self, grams: int) -> FateNode:
        """This branch's node, carrying ``grams`` of the load."""
        r = self.redirect
        if r.destination_kind == "station":
            return FateNode("returned_to_station", grams, ref=r.redirect_id,
                            site_id=r.destination_id, at=r.redirected_at, actor=r.actor)
        inner = (_receipt_node(grams, r.receipt) if r.receipt is not None
                 else FateNode("in_transit", grams, ref=r.destination_id,
                               site_id=r.destination_id, at=r.redirected_at))
        return FateNode("redirected", grams, ref=r.redirect_id, site_id=r.destination_id,
                        at=r.redirected_at, actor=r.actor, children=(inner,))


_Branch = _Leaf | _BatchBranch | _ReceiptBranch | _RedirectBranch


def _split(grams: int, branches: Sequence[tuple[int, _Branch]]) -> tuple[FateNode, ...]:
    """Apportion ``grams`` over weighted branches; zero-gram branches are left out."""
    parts = apportion(grams, [weight for weight, _ in branches])
    return tuple(branch.node(part) for part, (_, branch) in zip(parts, branches, strict=True)
                 if part > 0)


def _receipt_node(grams: int, r: ReceiptFacts) -> FateNode:
    treated = sum(g for _, g in r.treated)
    accepted_branches: list[tuple[int, _Branch]] = [
        (g, _Leaf("treated", ref=method.value, site_id=r.plant_id, at=r.last_treated_at))
        for method, g in r.treated
    ]
    accepted_branches.append((r.accepted_grams - treated,
                              _Leaf("awaiting_treatment", site_id=r.plant_id)))
    redirected = sum(x.grams for x in r.redirects)
    refused_branches: list[tuple[int, _Branch]] = [(x.grams, _RedirectBranch(x))
                                                   for x in r.redirects]
    refused_branches.append((r.refused_grams - redirected,
                             _Leaf("held_at_plant", site_id=r.plant_id)))

    accepted, refused = apportion(grams, [r.accepted_grams, r.refused_grams])
    children = []
    if accepted > 0:
        children.append(FateNode("accepted", accepted, site_id=r.plant_id,
                                 children=_split(accepted, accepted_branches)))
    if refused > 0:
        children.append(FateNode("refused", refused, site_id=r.plant_id,
                                 children=_split(refused, refused_branches)))
    return FateNode("receipt", grams, ref=r.receipt_id, site_id=r.plant_id, at=r.received_at,
                    actor=r.actor, children=tuple(children))
