"""A trip's net weight split by category.

A weighbridge weighs the whole vehicle; a compartment truck may carry food and other
waste at once. The net is apportioned in proportion to the scanned grams of each
category, by largest remainder so the shares add up to the net exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from wastetrail_contracts.enums import Category


def apportion(net_grams: int, scanned_by_category: Mapping[Category, int]) -> dict[Category, int]:
    """Split ``net_grams`` over the categories in proportion to their scanned grams.

    Ties in the remainders go to the category with more scanned grams, then by name, so
    the result does not depend on the mapping's order. A trip without scans has no
    categories to split into and gets an empty result.
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
