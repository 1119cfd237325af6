"""Sorting compliance: how often a generator's waste had to be refused."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Compliance:
    """Loads collected and refusals recorded for a generator or a commune over a period."""

    loads: int
    refusals: int

    @property
    def visits(self) -> int:
        """Every time a collector took or refused this waste."""
        return self.loads + self.refusals

    @property
    def refusal_rate(self) -> float | None:
        """refusals / (loads + refusals); None when the collector never came by."""
        if self.visits == 0:
            return None
        return self.refusals / self.visits

    @property
    def compliance_rate(self) -> float | None:
        """The share of visits whose waste was sorted well enough to take: 1 - refusal rate."""
        rate = self.refusal_rate
        return None if rate is None else 1.0 - rate
