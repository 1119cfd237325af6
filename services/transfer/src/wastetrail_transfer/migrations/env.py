"""Alembic environment of the transfer service (the runtime helper does the work)."""

from wastetrail_runtime.migrations import run_env
from wastetrail_transfer.adapters.tables import meta

run_env(meta.metadata)
