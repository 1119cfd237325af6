"""What a reader may see: a collector's device sees its own collector's vehicles, devices
and trips, and the households of the communes its collector serves; auditors and admins
see everything."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession
from wastetrail_contracts.enums import Role
from wastetrail_runtime.auth import Principal
from wastetrail_runtime.problems import Problem

from wastetrail_collection.adapters.repository import served_communes
from wastetrail_collection.handlers.common import device_of


@dataclass(frozen=True)
class Scope:
    """A collector's view (``collector_id`` set), or everything (``collector_id`` None)."""

    collector_id: str | None = None
    communes: frozenset[str] = frozenset()

    def collector(self, asked: str | None) -> str | None:
        """The collector to filter on: the one asked for, which must be the caller's own."""
        if self.collector_id is None:
            return asked
        if asked not in (None, self.collector_id):
            raise _forbidden(f"this device's collector is {self.collector_id!r}",
                             "collector_id")
        return self.collector_id

    def require_collector(self, owner: str | None, field: str) -> None:
        """403 unless the object belongs to the caller's collector (or the caller sees all)."""
        if self.collector_id is not None and owner != self.collector_id:
            raise _forbidden(f"this belongs to another collector than {self.collector_id!r}",
                             field)

    def require_commune(self, commune: str, field: str) -> None:
        """403 unless the caller's collector serves the commune (or the caller sees all)."""
        if self.collector_id is not None and commune not in self.communes:
            raise _forbidden(f"collector {self.collector_id!r} does not serve commune "
                             f"{commune!r}", field)


def _forbidden(detail: str, field: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail, field=field)


async def scope_of(session: AsyncSession, principal: Principal) -> Scope:
    """The reader's scope: a collector token sees through its registered device."""
    if principal.role is not Role.COLLECTOR:
        return Scope()
    device = await device_of(session, principal)
    return Scope(device.collector_id, await served_communes(session, device.collector_id))
