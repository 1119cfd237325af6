"""Splitting integer grams into proportional integer parts that sum exactly.

The rounding rule used everywhere in this service (largest remainder, Hamilton's method):
each part gets ``floor(total * w / W)``; the grams still missing (always fewer than the
number of parts) go one each to the parts with the largest remainders
``total * w mod W``; equal remainders go to the earlier part, so the result depends only
on the order the caller gives. Everything is integer arithmetic: no float ever touches
a weight.
"""

from __future__ import annotations

from collections.abc import Sequence


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
