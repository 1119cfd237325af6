"""Alembic per service database: each service's env.py calls ``run_env(metadata)``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# pg_advisory_xact_lock key serialising migrations of one database ("WTMIGRAT").
MIGRATION_LOCK_KEY = 0x57544D4947524154


def alembic_config(script_location: Path, database_url: str) -> Config:
    """An Alembic config for a service's migrations folder and database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


async def upgrade_to_head(script_location: Path, database_url: str) -> None:
    """Migrate the database to the newest revision (run from async code)."""
    cfg = alembic_config(script_location, database_url)
    # env.py runs its own event loop, so it must not run on this one.
    await asyncio.to_thread(command.upgrade, cfg, "head")


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    is_sqlite = url.startswith("sqlite")

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                          render_as_batch=is_sqlite)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=is_sqlite, compare_type=True)
        with context.begin_transaction():
            if not is_sqlite:
                # Replicas of a service start together on one database: one migrates, the
                # others wait here and then find the database at head (DDL is transactional).
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                   {"k": MIGRATION_LOCK_KEY})
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run())


def create_runtime_tables() -> None:
    """Create the runtime's tables (event store, outbox, chain heads, processed events) in
    a service's initial migration — from the runtime's own definitions, so the four services
    never carry copies of them."""
    from alembic import op

    from wastetrail_runtime.store import RuntimeTables

    metadata = MetaData()
    RuntimeTables(metadata)
    metadata.create_all(bind=op.get_bind())


def drop_runtime_tables() -> None:
    """Drop the runtime's tables (the initial migration's downgrade)."""
    from alembic import op

    from wastetrail_runtime.store import RuntimeTables

    metadata = MetaData()
    RuntimeTables(metadata)
    metadata.drop_all(bind=op.get_bind())
