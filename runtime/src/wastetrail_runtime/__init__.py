"""The one shared runtime of every WasteTrail service."""

import warnings

# The runtime runs SQLAlchemy Core statements (inserts, updates, locks) on SQLModel's
# session on purpose; SQLModel's advice to use exec() applies to ORM selects only.
warnings.filterwarnings("ignore", message=r"(?s).*session\.exec\(\)", category=DeprecationWarning)

from wastetrail_runtime.auth import Principal, issue_token, require  # noqa: E402
from wastetrail_runtime.clock import Clock, FixedClock, SystemClock  # noqa: E402
from wastetrail_runtime.consumer import Consumer  # noqa: E402
from wastetrail_runtime.problems import Problem  # noqa: E402
from wastetrail_runtime.service import ServiceRuntime, ServiceSpec, build_service, runtime_of  # noqa: E402
from wastetrail_runtime.settings import ServiceSettings  # noqa: E402
from wastetrail_runtime.store import ConcurrencyConflict, ServiceMetadata, UnitOfWork  # noqa: E402

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
