"""Fixtures of the process-level fault tests: one scenario = its own topic prefix, its own
databases, its own service processes (collection and billing)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from wastetrail_runtime.topics import ensure_topics

sys.path.insert(0, str(Path(__file__).parent))

from fault_harness import ServiceProcess


@dataclass
class Scenario:
    """What one fault scenario runs against."""

    bootstrap: str
    prefix: str
    logs: Path
    make_database: Callable[[str], str]
    collection_db: str
    billing_db: str

    def service(self, name: str, *, label: str = "", bootstrap: str | None = None,
                database_url: str | None = None, **env: str) -> ServiceProcess:
        default_db = self.collection_db if name == "collection" else self.billing_db
        return ServiceProcess(name, bootstrap=bootstrap or self.bootstrap, prefix=self.prefix,
                              database_url=database_url or default_db, logs=self.logs,
                              label=label or name, env=env)


@pytest.fixture
def scenario(kafka_bootstrap: str, topic_prefix: str, make_database: Callable[[str], str],
             tmp_path: Path) -> Scenario:
    prefix = f"{topic_prefix}f{uuid.uuid4().hex[:6]}."
    asyncio.run(ensure_topics(kafka_bootstrap, prefix=prefix))
    logs = tmp_path / "logs"
    logs.mkdir()
    return Scenario(kafka_bootstrap, prefix, logs, make_database,
                   make_database("fcoll"), make_database("fbill"))
