"""The service's database: an async SQLAlchemy engine (asyncpg or aiosqlite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


class Database:
    """One engine and session factory per service process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_postgres = url.startswith("postgresql")
        kwargs: dict[str, Any] = {}
        if self.is_postgres:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if not self.is_postgres:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    def session(self) -> AsyncSession:
        """A new session (the caller owns its transaction)."""
        return self.sessions()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the relay read while a request writes; busy_timeout instead of "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
