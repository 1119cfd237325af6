"""The one shared runtime of every WasteTrail service."""

from wastetrail_runtime.auth import Principal, issue_token, require
from wastetrail_runtime.clock import Clock, FixedClock, SystemClock
from wastetrail_runtime.consumer import Consumer
from wastetrail_runtime.problems import Problem
from wastetrail_runtime.service import ServiceRuntime, ServiceSpec, build_service, runtime_of
from wastetrail_runtime.settings import ServiceSettings
from wastetrail_runtime.store import ConcurrencyConflict, ServiceMetadata, UnitOfWork

__all__ = [
    "Clock",
    "ConcurrencyConflict",
    "Consumer",
    "FixedClock",
    "Principal",
    "Problem",
    "ServiceMetadata",
    "ServiceRuntime",
    "ServiceSettings",
    "ServiceSpec",
    "SystemClock",
    "UnitOfWork",
    "build_service",
    "issue_token",
    "require",
    "runtime_of",
]
