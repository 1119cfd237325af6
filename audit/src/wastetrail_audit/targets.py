"""A province's targets for the indicator report: data (a TOML file), not code.

Files ship under ``audit/targets/<province>.toml``. Percentages are read as exact
decimals. Every target names its source; one the plans do not state is marked
``assumed = true`` and shown as such in the report.

Known target keys (``[targets.<key>]``): ``collected_treated_urban``,
``collected_treated_rural`` (``min_percent``), ``direct_landfill_share``
(``max_percent``), and optionally ``collection_coverage``, ``refusal_rate``,
``cost_recovery``, ``fee_collection``. ``[epr_rates.<material>]`` holds the mandatory
recycling rate per packaging material.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TARGETS_DIR = Path(__file__).resolve().parents[2] / "targets"


class TargetsError(ValueError):
    """A targets file that cannot be used."""


class Target(BaseModel):
    """A bound on one indicator, in percent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_percent: Decimal | None = Field(default=None, ge=0, le=100)
    max_percent: Decimal | None = Field(default=None, ge=0, le=1000)
    source: str = ""
    assumed: bool = False

    @model_validator(mode="after")
    def _one_bound(self) -> Target:
        if (self.min_percent is None) == (self.max_percent is None):
            raise ValueError("give exactly one of min_percent and max_percent")
        return self

    @property
    def kind(self) -> str:
        """``min`` or ``max``."""
        return "min" if self.min_percent is not None else "max"

    @property
    def percent(self) -> Decimal:
        """The bound."""
        value = self.min_percent if self.min_percent is not None else self.max_percent
        assert value is not None
        return value

    def met_by(self, percent: Decimal) -> bool:
        """Whether a value (in percent) meets the target."""
        return percent >= self.percent if self.kind == "min" else percent <= self.percent


class Generation(BaseModel):
    """How generated waste is estimated: persons × grams per person per day × days."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    urban_grams_per_person_day: int = Field(gt=0, le=10_000)
    rural_grams_per_person_day: int = Field(gt=0, le=10_000)
    source: str = ""
    assumed: bool = False


class Targets(BaseModel):
    """One province's targets file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    province: str = Field(min_length=1)
    name: str = ""
    source: str = ""
    communes: list[str] | None = None
    generation: Generation
    targets: dict[str, Target] = Field(default_factory=dict)
    epr_rates: dict[str, Target] = Field(default_factory=dict)


def load_targets(path: Path) -> Targets:
    """Read and check a targets file."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle, parse_float=Decimal)
        return Targets.model_validate(data)
    except OSError as exc:
        raise TargetsError(f"{path}: cannot read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"{path}: not TOML ({exc})") from exc
    except ValidationError as exc:
        raise TargetsError(f"{path}: {exc}") from exc


def default_targets_file(province: str) -> Path:
    """``audit/targets/<province>.toml`` next to this package's source tree."""
    return TARGETS_DIR / f"{province}.toml"
