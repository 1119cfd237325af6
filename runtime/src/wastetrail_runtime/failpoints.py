"""Fail points: named places where the fault tests kill a real process with SIGKILL.

``WASTETRAIL_FAILPOINT=name`` (optionally ``name:N``, the N-th time it is reached, default
the first) makes :func:`failpoint` kill the process there, as ``kill -9`` would, so a test
can stop a relay between publishing and marking, or a consumer between its database
commit and its offset commit — windows too narrow to hit with an outside signal. Unset
(production), a fail point costs one truth test.

``WASTETRAIL_FAILPOINT_RAISE=name:N`` instead raises :class:`InjectedFault` (a Kafka
connection error) the first N times ``name`` is reached: a dependency failing for a while.
"""

from __future__ import annotations

import os
import signal

from aiokafka.errors import KafkaConnectionError

_hits: dict[str, int] = {}


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in spec.split(","):
        point, _, count = item.strip().partition(":")
        if point:
            points[point] = int(count or 1)
    return points


# Read once: a fail point is armed for the life of the process.
_KILL_AT = _parse(os.environ.get("WASTETRAIL_FAILPOINT", ""))
_FAIL_TIMES = _parse(os.environ.get("WASTETRAIL_FAILPOINT_RAISE", ""))


class InjectedFault(KafkaConnectionError):  # type: ignore[misc]
    """A failure injected by a fail point (looks like a broker connection error)."""


def failpoint(name: str) -> None:
    """Kill or fail here when the environment asks for it (tests); otherwise nothing."""
    if not _KILL_AT and not _FAIL_TIMES:
        return
    kill_at = _KILL_AT.get(name)
    fail_times = _FAIL_TIMES.get(name)
    _hits[name] = _hits.get(name, 0) + 1
    if kill_at is not None and _hits[name] >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    if fail_times is not None and _hits[name] <= fail_times:
        raise InjectedFault(f"fail point {name} (injected failure {_hits[name]}/{fail_times})")
