"""A weighed trip against the sum of its scanned loads.

The tolerance is configuration (weighbridges are OIML R76 class III, a few divisions;
on-truck scales and bag estimates are coarser): an absolute floor in grams and/or a
percentage of the scanned total. When both are set the larger one applies, so a small
trip is not flagged for a weighbridge division and a large one is judged in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

BASIS_POINTS = 10_000  # 100 % in hundredths of a percent


@dataclass(frozen=True)
class Tolerance:
    """Allowed |net − scanned|: ``grams`` absolute and/or ``basis_points`` of the scanned total."""

    grams: int | None = None
    basis_points: int | None = None

    def __post_init__(self) -> None:
        if self.grams is not None and self.grams < 0:
            raise ValueError("tolerance grams must not be negative")
        if self.basis_points is not None and not 0 <= self.basis_points <= BASIS_POINTS:
            raise ValueError("tolerance percent must be between 0 and 100")

    def for_scanned(self, scanned_grams: int) -> int:
        """The tolerance in grams for a trip that scanned ``scanned_grams`` (rounded down)."""
        absolute = self.grams or 0
        # Integer arithmetic: grams × basis points / 10,000, floored — never a float gram.
        relative = scanned_grams * (self.basis_points or 0) // BASIS_POINTS
        return max(absolute, relative)


@dataclass(frozen=True)
class Scans:
    """What the collection side reported for a trip: the loads seen so far and the close."""

    load_count: int
    scanned_grams: int
    closed_load_count: int | None = None
    closed_scanned_grams: int | None = None

    def complete(self) -> bool:
        """True once the trip was closed and every load it declared has arrived.

        Loads travel on a different stream than the close, so they may arrive later; the
        close's count and total say when the picture is whole.
        """
        return (
            self.closed_load_count is not None
            and self.load_count == self.closed_load_count
            and self.scanned_grams == self.closed_scanned_grams
        )


@dataclass(frozen=True)
class Reconciliation:
    """The comparison's numbers; ``difference`` is net − scanned (positive: more on the bridge)."""

    net_grams: int
    scanned_grams: int
    load_count: int
    difference_grams: int
    tolerance_grams: int
    discrepancy: bool


def reconcile(net_grams: int, scans: Scans, tolerance: Tolerance) -> Reconciliation:
    """Compare a trip's net weight with its complete scans."""
    if not scans.complete():
        raise ValueError("scans are not complete yet")
    difference = net_grams - scans.scanned_grams
    allowed = tolerance.for_scanned(scans.scanned_grams)
    return Reconciliation(
        net_grams=net_grams,
        scanned_grams=scans.scanned_grams,
        load_count=scans.load_count,
        difference_grams=difference,
        tolerance_grams=allowed,
        discrepancy=abs(difference) > allowed,
    )
