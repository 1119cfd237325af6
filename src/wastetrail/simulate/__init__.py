"""Province simulator: drives the real HTTP APIs of the services like their users would."""

from wastetrail.simulate.province import (
    Endpoints,
    Province,
    build_province,
    run_simulation,
    simulate,
)

__all__ = ["Endpoints", "Province", "build_province", "run_simulation", "simulate"]
