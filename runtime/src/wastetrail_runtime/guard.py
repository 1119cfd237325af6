"""The request guard: the checks that run before a request is parsed or authenticated.

- The body may not exceed a size limit (``max_body_bytes``, or a larger one for a path that
  streams an upload, e.g. a CSV import): a declared ``Content-Length`` above it is refused at
  once, an undeclared (chunked) body is read up to the limit and no further. 413.
- The path and the query may not hold NUL or control characters (PostgreSQL cannot store
  NUL; nothing legitimate carries the others): 422 naming the query parameter, or ``path``.

Every refusal is a problem document, like every other error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from wastetrail_runtime.inputs import storable_text
from wastetrail_runtime.problems import Problem

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


async def _answer(problem: Problem, scope: Scope, send: Send) -> None:
    body = json.dumps(problem.body(scope.get("path"))).encode()
    await send({"type": "http.response.start", "status": problem.status, "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", "Payload too large",
                   f"the request body exceeds {limit} bytes", field="body",
                   extra={"limit_bytes": limit})


def _bad_characters(scope: Scope) -> Problem | None:
    checks = [("path", str(scope.get("path", "")))]
    query = bytes(scope.get("query_string", b"")).decode("utf-8", "replace")
    checks += [(name or "query", f"{name}={value}")
               for name, value in parse_qsl(query, keep_blank_values=True)]
    for field, text in checks:
        try:
            storable_text(text)
        except ValueError as exc:
            return Problem(422, "validation", "Invalid input", f"{field}: {exc}", field=field)
    return None


class RequestGuard:
    """ASGI middleware: size and character checks ahead of everything else."""

    def __init__(self, app: Any, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _bad_characters(scope)
        if problem is not None:
            await _answer(problem, scope, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await _answer(Problem(400, "bad-request", "Bad request",
                                      "Content-Length is not a number", field="content-length"),
                              scope, send)
            elif size > limit:
                await _answer(_too_large(limit), scope, send)
            else:
                await self.app(scope, receive, send)
            return
        # No declared length (chunked): read the body here, up to the limit, then replay it.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await _answer(_too_large(limit), scope, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
