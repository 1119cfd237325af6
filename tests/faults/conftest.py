"""Fixtures of the process-level fault tests: one scenario = its own topic prefix, its own
databases, its own service processes (collection and billing)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from wastetrail_runtime.topics import ensure_topics

sys.path.insert(0, str(Path(__file__).parent))

from fault_harness import Scenario


@pytest.fixture
def scenario(kafka_bootstrap: str, topic_prefix: str, make_database: Callable[[str], str],
             tmp_path: Path) -> Scenario:
    prefix = f"{topic_prefix}f{uuid.uuid4().hex[:6]}."
    asyncio.run(ensure_topics(kafka_bootstrap, prefix=prefix))
    logs = tmp_path / "logs"
    logs.mkdir()
    return Scenario(kafka_bootstrap, prefix, logs, make_database,
                   make_database("fcoll"), make_database("fbill"))
