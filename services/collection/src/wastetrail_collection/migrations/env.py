"""Alembic environment of the collection service."""

from wastetrail_collection.adapters.tables import meta
from wastetrail_runtime.migrations import run_env

run_env(meta.metadata)
