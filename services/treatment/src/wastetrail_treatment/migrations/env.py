"""Alembic environment of the treatment service's database."""

from wastetrail_runtime.migrations import run_env
from wastetrail_treatment.adapters.tables import meta

run_env(meta.metadata)
