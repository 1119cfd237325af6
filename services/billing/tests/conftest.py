"""Fixtures of the billing service's tests (the harness is in ``billing_support``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wastetrail_runtime.clock import FixedClock

sys.path.insert(0, str(Path(__file__).parent))

from billing_support import T0, Billing, Events, billing_settings, running_billing


@pytest.fixture
def billing_factory(
    database_url: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Billing]]:
    """Start a billing app with setting overrides: ``async with billing_factory(...) as b``."""

    def factory(clock: FixedClock | None = None, **overrides: Any
                ) -> contextlib.AbstractAsyncContextManager[Billing]:
        prefix = overrides.pop("topic_prefix", topic_prefix)
        settings = billing_settings(database_url, kafka_bootstrap, prefix, tmp_path,
                                    **overrides)
        return running_billing(settings, clock or FixedClock(T0))

    return factory


@pytest.fixture
async def billing(billing_factory: Callable[..., Any]) -> AsyncIterator[Billing]:
    """A running billing app (no Kafka consumers: events are fed through ``feed``)."""
    async with billing_factory() as harness:
        yield harness


@pytest.fixture
def ev() -> type[Events]:
    """Event builders."""
    return Events
