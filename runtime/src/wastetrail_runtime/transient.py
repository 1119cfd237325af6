"""Which failures are the world's (wait and retry) and which are the event's (dead-letter).

A consumer must not dead-letter an event because PostgreSQL restarted or Kafka moved a
partition leader: those failures say nothing about the event, and applying it later, in
order, is the only correct outcome. The classification is by exception type only (never
by message text), walking the chain of causes SQLAlchemy and asyncpg build:

* SQLAlchemy ``OperationalError``, ``InterfaceError``, ``DisconnectionError``, pool
  ``TimeoutError``, and any DBAPI error SQLAlchemy marked ``connection_invalidated``;
* asyncpg connection errors, serialization failures (40001) and deadlocks (40P01) — the
  whole ``TransactionRollbackError`` class —, operator intervention (admin shutdown,
  "cannot connect now") and insufficient resources (too many connections);
* socket errors (``OSError``: refused, reset, unreachable) and timeouts;
* aiokafka errors that Kafka itself declares ``retriable`` (and connection errors).
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import errors as kafka_errors
from sqlalchemy import exc as sa_exc

_DATABASE_TYPES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the connection pool had no connection to give in time
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.ConnectionDoesNotExistError,
)
_NETWORK_TYPES: tuple[type[BaseException], ...] = (OSError, TimeoutError, asyncio.TimeoutError)
_KAFKA_TYPES: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NoBrokersAvailable,
)


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen) or len(seen) > 20:
            continue
        seen.append(item)
        orig = getattr(item, "orig", None)  # SQLAlchemy's DBAPIError keeps the driver's
        todo += [item.__cause__, item.__context__,
                 orig if isinstance(orig, BaseException) else None]
    return seen


def transient_kind(exc: BaseException) -> str | None:
    """``"database"``, ``"kafka"`` or ``"network"`` when ``exc`` (or one of its causes) is a
    failure of a dependency that will pass by waiting; ``None`` when it is the event's."""
    for item in _causes(exc):
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return "database"
        if isinstance(item, _DATABASE_TYPES):
            return "database"
        if isinstance(item, _KAFKA_TYPES):
            return "kafka"
        if isinstance(item, kafka_errors.KafkaError) and item.retriable:
            return "kafka"
    for item in _causes(exc):
        if isinstance(item, _NETWORK_TYPES):
            return "network"
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a dependency's failure (wait and retry), not the event's."""
    return transient_kind(exc) is not None


class Backoff:
    """Exponential backoff with a cap: ``first``, 2×, 4× … up to ``cap`` seconds."""

    def __init__(self, first: float = 0.05, cap: float = 5.0) -> None:
        self.first = max(first, 0.001)
        self.cap = cap
        self.delay = self.first

    def reset(self) -> None:
        """Back to the first delay (the dependency answered)."""
        self.delay = self.first

    async def wait(self) -> float:
        """Sleep the current delay, double the next one (up to the cap); returns the slept."""
        slept = self.delay
        await asyncio.sleep(slept)
        self.delay = min(self.delay * 2, self.cap)
        return slept
