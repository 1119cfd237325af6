"""Fixtures of the collection tests: the real app on a fresh PostgreSQL database and a
Kafka topic of its own."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collection_support import Service, running_service


@pytest.fixture
async def make_service(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start the app (migrations, relay) on a fresh database and a topic of its own."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Service:
            return await stack.enter_async_context(running_service(
                database_url, kafka_bootstrap, topic_prefix, tmp_path, **overrides))

        yield start


@pytest.fixture
async def service(make_service: Callable[..., Any]) -> Service:
    """The app with default settings."""
    started: Service = await make_service()
    return started
