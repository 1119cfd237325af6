"""Small helpers shared by the billing handlers."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from wastetrail_contracts import Actor, Event
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.envelope import uuid7
from wastetrail_runtime.problems import unprocessable

# Billing's own automatic actions (projections, invoicing runs started by a timer, IPN).
BILLING_SYSTEM = Actor(kind=ActorKind.SYSTEM, id="billing", role=Role.SYSTEM)
VNPAY_IPN = Actor(kind=ActorKind.SYSTEM, id="vnpay-ipn", role=Role.SYSTEM)


def new_id(prefix: str) -> str:
    """A fresh, time-ordered id like ``PAY-0192…`` (VNPay-safe characters only)."""
    return f"{prefix}-{uuid7().replace('-', '')}"


def account_of_generator(generator_id: str) -> str:
    """A generator's billing account id: the generator id itself (one account each).

    Using the same id lets every consumer (and the EPR scheme) attribute a load or a
    deposit claim to its account without waiting for the account to be projected.
    """
    return generator_id


E = TypeVar("E", bound=Event)


def build_event(cls: type[E], **fields: object) -> E:
    """Build an event payload; a field the contract refuses is a 422 naming that field."""
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if not where and ":" in message:
            # Model validators name the field at the start of their message.
            where = message.split(":", 1)[0]
        raise unprocessable("invalid-" + cls.event_type.rsplit(".", 1)[-1].replace("_", "-"),
                            f"{where}: {message}" if where else message, where) from exc
