"""Bearer tokens (HS256 JWT) carrying a role and a subject, and the FastAPI guard."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi import Request
from wastetrail_contracts.enums import ActorKind, Role
from wastetrail_contracts.envelope import Actor

from wastetrail_runtime.problems import Problem

ISSUER = "wastetrail"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a subject (operator, household account, producer...) and a role.

    ``account_id`` binds household and producer tokens to their own account;
    ``device_id`` identifies a collector's device; ``site_id`` a station or plant.
    """

    subject: str
    role: Role
    account_id: str | None = None
    device_id: str | None = None
    site_id: str | None = None

    def actor(self) -> Actor:
        """The actor recorded on events this principal causes."""
        kind = ActorKind.DEVICE if self.device_id else ActorKind.OPERATOR
        return Actor(kind=kind, id=self.device_id or self.subject, role=self.role)

    def require_account(self, account_id: str) -> None:
        """Households and producers may only see their own account."""
        if self.role in (Role.HOUSEHOLD, Role.PRODUCER) and self.account_id != account_id:
            raise Problem(403, "forbidden", "Forbidden",
                          "this token may only access its own account", field="account_id")


def issue_token(
    secret: str,
    subject: str,
    role: Role,
    *,
    account_id: str | None = None,
    device_id: str | None = None,
    site_id: str | None = None,
    ttl: timedelta = timedelta(days=30),
    now: datetime | None = None,
) -> str:
    """A signed bearer token."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER, "sub": subject, "role": role.value,
        "iat": int(issued.timestamp()), "exp": int((issued + ttl).timestamp()),
    }
    for name, value in (("account_id", account_id), ("device_id", device_id),
                        ("site_id", site_id)):
        if value:
            claims[name] = value
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_token(secret: str, token: str) -> Principal:
    """Verify a token; raises Problem(401) when it is not valid."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                            options={"require": ["exp", "sub", "iss"]})
        role = Role(claims["role"])
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise Problem(401, "unauthorized", "Unauthorized", f"invalid token: {exc}") from exc
    return Principal(subject=str(claims["sub"]), role=role,
                     account_id=claims.get("account_id"), device_id=claims.get("device_id"),
                     site_id=claims.get("site_id"))


def principal_from_request(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer`` (or the ``wt_token`` cookie of the web page)."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.cookies.get("wt_token", "")
    if not token:
        raise Problem(401, "unauthorized", "Unauthorized", "a bearer token is required",
                      extra={})
    secret: str = request.app.state.jwt_secret
    return decode_token(secret, token)


def require(*roles: Role) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency admitting only the given roles (admin always passes)."""
    allowed = set(roles) | {Role.ADMIN}

    async def dependency(request: Request) -> Principal:
        principal = principal_from_request(request)
        if principal.role not in allowed:
            raise Problem(403, "forbidden", "Forbidden",
                          f"role {principal.role.value!r} may not call this endpoint")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    return dependency
