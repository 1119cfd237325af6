"""Splitting integer grams into proportional integer parts that sum exactly.

The rounding rule used everywhere in the custody chain (largest remainder, Hamilton's method):
each part gets ``floor(total * w / W)``; the grams still missing (always fewer than the
number of parts) go one each to the parts with the largest remainders
``total * w mod W``; equal remainders go to the earlier part, so the result depends only
on the order the caller gives. Everything is integer arithmetic: no float ever touches
a weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wastetrail_contracts.enums import Category


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights``, summing to ``total``.

    A zero weight always gets 0. Raises ValueError for a negative total or weight, or when
    a positive total must be split over weights that are all zero.
    """
    if total < 0:
        raise ValueError("total must not be negative")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    whole = sum(weights)
    if whole == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError("cannot split a positive total over zero weights")
    parts = [total * w // whole for w in weights]
    missing = total - sum(parts)
    # Largest remainder first; on a tie the earlier index wins (sort is stable).
    order = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % whole))
    for i in order[:missing]:
        parts[i] += 1
    return parts


def category_shares(net_grams: int, scanned_by_category: Mapping[Category, int]
                    ) -> dict[Category, int]:
    """Split a trip's weighed net over its categories in proportion to their scanned grams.

    A weighbridge weighs the whole vehicle; a compartment truck may carry food and other
    waste at once, so the station's net is apportioned over the categories scanned, by
    largest remainder so the shares add up to the net exactly. Ties in the remainders go
    to the category with more scanned grams, then by name, so the result does not depend
    on the mapping's order. A trip without scans has no categories and gets ``{}``.
    This is the transfer service's allocation rule; the fate of a load and the audit's
    trace use it too, so a load travels with its category's share.
    """
    scanned = {c: g for c, g in scanned_by_category.items() if g > 0}
    total = sum(scanned.values())
    if total == 0:
        return {}
    floors = {c: net_grams * g // total for c, g in scanned.items()}
    left = net_grams - sum(floors.values())
    by_remainder = sorted(
        scanned, key=lambda c: (-(net_grams * scanned[c] % total), -scanned[c], c.value)
    )
    for category in by_remainder[:left]:
        floors[category] += 1
    return floors
