"""Test fixtures for real infrastructure, shared by every test directory.

``kafka_bootstrap`` and ``database_url`` use, in order: ``KAFKA_BOOTSTRAP_SERVERS`` /
``DATABASE_URL`` when set; testcontainers when a Docker engine answers; otherwise the
project's own local processes (deploy/local), started here if they are not running.
Each test run gets its own topic prefix and its own databases, so runs cannot interfere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from wastetrail_contracts.topics import kafka_client_options

RUN_ID = uuid.uuid4().hex[:8]


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A reachable Kafka bootstrap address (a real broker). With WASTETRAIL_KAFKA_SASL=1 the
    tests (and the services they start) authenticate as the broker's super user: they make
    topics under their own prefix; the ACLs themselves are tested in test_broker_access."""
    from wastetrail.devstack.infra import principal_env

    os.environ.update(principal_env("admin"))
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from wastetrail.devstack.infra import ensure_kafka

    yield ensure_kafka()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A libpq URL of a PostgreSQL server where the tests may create databases."""
    env = os.environ.get("DATABASE_URL")
    if env:
        yield env.replace("+asyncpg", "").replace("+psycopg", "")
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
        return
    from wastetrail.devstack.infra import ensure_postgres

    yield ensure_postgres()


@pytest.fixture(scope="session")
def topic_prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A topic prefix unique to this test run; its topics are deleted at the end of the run
    (a broker kept across runs otherwise collects tens of thousands of partitions, and
    starts and answers ever more slowly)."""
    prefix = f"test{RUN_ID}."
    yield prefix
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, **kafka_client_options())
    except Exception:  # the broker is gone: nothing to tidy
        return
    try:
        mine = [t for t in admin.list_topics() if t.startswith(f"test{RUN_ID}")]
        if mine:
            admin.delete_topics(mine)
    except Exception:  # noqa: S110 — leftover topics are harmless
        pass
    finally:
        admin.close()


@pytest.fixture(scope="session")
def make_database(postgres_admin_url: str) -> Iterator[Callable[[str], str]]:
    """Create a fresh PostgreSQL database for this run; returns an asyncpg SQLAlchemy URL."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    created: list[str] = []
    base = postgres_admin_url.rsplit("/", 1)[0]

    async def _create(name: str) -> None:
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def _drop(name: str) -> None:
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def factory(label: str) -> str:
        name = f"t{RUN_ID}_{label}_{uuid.uuid4().hex[:6]}".lower()
        asyncio.run(_create(name))
        created.append(name)
        return f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"

    yield factory
    if os.environ.get("WASTETRAIL_KEEP_TEST_DBS"):
        return
    for name in created:
        try:
            asyncio.run(_drop(name))
        except Exception:  # noqa: S110 — a leftover database is harmless
            pass


@pytest.fixture
def database_url(make_database: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database for one test."""
    label = "".join(c for c in request.node.name.lower() if c.isalnum())[:20] or "db"
    return make_database(label)
