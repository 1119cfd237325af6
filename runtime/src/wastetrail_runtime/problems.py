"""RFC 9457 problem details: every error a caller can act on, never a bare 500."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wastetrail_runtime.logging import get_logger
from wastetrail_runtime.store import ConcurrencyConflict

PROBLEM_BASE = "https://wastetrail.org/problems/"
log = get_logger(__name__)


class Problem(Exception):
    """An error with a stable type, a human detail and, where known, the offending field."""

    def __init__(
        self,
        status: int,
        type_: str,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type_ = type_
        self.title = title
        self.detail = detail
        self.field = field
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type_,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field:
            doc["field"] = self.field
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


def not_found(what: str, ident: str, field: str | None = None) -> Problem:
    """A 404 for an unknown id."""
    return Problem(404, "not-found", f"{what} not found", f"no {what} with id {ident!r}",
                   field=field)


def unprocessable(type_: str, detail: str, field: str) -> Problem:
    """A 422 for input that is well-formed but breaks a rule."""
    return Problem(422, type_, "Invalid input", detail, field=field)


def conflict(type_: str, detail: str, field: str | None = None) -> Problem:
    """A 409 for a state conflict."""
    return Problem(409, type_, "Conflict", detail, field=field)


_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field(loc: Sequence[int | str]) -> str:
    """The field as the caller named it: ``lines.0.units``, ``offset`` (no "body."/"query.")."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


def _response(problem: Problem, request: Request) -> JSONResponse:
    return JSONResponse(problem.body(str(request.url.path)), status_code=problem.status,
                        media_type="application/problem+json")


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to problem details."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return _response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(err["loc"]), "message": err["msg"]} for err in exc.errors()]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        problem = Problem(422, "validation", "Invalid input",
                          f"{first['field']}: {first['message']}", field=first["field"],
                          extra={"errors": errors})
        return _response(problem, request)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(request: Request, exc: ConcurrencyConflict) -> JSONResponse:
        problem = Problem(409, "concurrency-conflict", "Concurrent modification", str(exc),
                          extra={"stream_id": exc.stream_id, "expected_version": exc.expected,
                                 "actual_version": exc.actual})
        return _response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                  405: "Method not allowed"}
        type_ = {401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        problem = Problem(exc.status_code, type_, titles.get(exc.status_code, "Error"),
                          str(exc.detail))
        response = _response(problem, request)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled", path=request.url.path)
        problem = Problem(500, "internal", "Internal error",
                          "an unexpected error occurred; it has been logged")
        return _response(problem, request)
