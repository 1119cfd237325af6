"""What every handler shares: turning broken rules into problems, retrying races."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.problems import Problem
from wastetrail_runtime.service import ServiceRuntime
from wastetrail_runtime.store import ConcurrencyConflict, UnitOfWork

from wastetrail_collection.adapters.repository import device_facts
from wastetrail_collection.domain.rules import DeviceFacts, Rejection
from wastetrail_collection.settings import CollectionSettings

T = TypeVar("T")

# Broken rules that are about the state of the world rather than the request's content.
CONFLICT_REASONS = frozenset({"vehicle-busy", "device-busy", "trip-exists", "tag-taken",
                              "plate-taken"})


def settings_of(rt: ServiceRuntime) -> CollectionSettings:
    """The collection settings the app was built with."""
    settings = rt.settings
    if not isinstance(settings, CollectionSettings):
        raise TypeError("the collection service must be built with CollectionSettings")
    return settings


def problem(rejection: Rejection, status: int | None = None) -> Problem:
    """A broken rule as an RFC 9457 problem naming the field to correct."""
    code = status or (409 if rejection.reason in CONFLICT_REASONS else 422)
    title = "Conflict" if code == 409 else "Invalid input"
    return Problem(code, rejection.reason, title, rejection.detail, field=rejection.field)


async def calling_device(uow: UnitOfWork, principal: Principal) -> DeviceFacts:
    """The registered, active device a collector token speaks for."""
    return await device_of(uow.session, principal)


async def device_of(session: AsyncSession, principal: Principal) -> DeviceFacts:
    """``calling_device`` for a read-only session."""
    if principal.device_id is None:
        raise Problem(403, "device-required", "Forbidden",
                      "a collector token must carry the device_id of a registered device",
                      field="device_id")
    device = await device_facts(session, principal.device_id)
    if device is None or not device.active:
        raise Problem(403, "unknown-device", "Forbidden",
                      f"device {principal.device_id!r} is not registered or not active",
                      field="device_id")
    return device


async def with_retries(attempts: int, work: Callable[[], Awaitable[T]]) -> T:
    """Run a unit of work again when a concurrent writer won a race on the same rows.

    The second run sees the winner's rows, so a retried scan becomes a "duplicate" and a
    trip stream gets the next free version, instead of the caller seeing an error.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except (ConcurrencyConflict, IntegrityError):
            if attempt == attempts:
                raise Problem(409, "write-conflict", "Conflict",
                              "another request changed the same records; retry") from None
    raise AssertionError("unreachable")
