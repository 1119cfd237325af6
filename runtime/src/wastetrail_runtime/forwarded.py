"""Services behind the one-origin proxy: honour the path prefix it strips.

The proxy serves ``/api/<service>/...`` and forwards ``/...`` with the header
``X-Forwarded-Prefix: /api/<service>``. Setting the ASGI ``root_path`` from it makes the
links a service writes about itself (the OpenAPI document the docs page loads, its
``servers``) point through the proxy. Only a prefix of that exact shape is taken, so the
header can never point a page elsewhere; without the header nothing changes.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = re.compile(rb"^/api/[a-z][a-z0-9-]{0,39}$")


class ForwardedPrefix:
    """ASGI middleware: ``X-Forwarded-Prefix`` → ``root_path``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-forwarded-prefix" and PREFIX.match(value):
                    scope = {**scope, "root_path": value.decode("ascii")}
                    break
        await self.app(scope, receive, send)
