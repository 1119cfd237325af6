"""Alembic environment of the billing service (billing and EPR tables, one history)."""

from wastetrail_billing.adapters.tables import meta
from wastetrail_billing.epr_link import epr_module
from wastetrail_runtime.migrations import run_env

# The EPR scheme's tables share billing's metadata; import them when the package exists.
epr_module("tables")

run_env(meta.metadata)
