"""The four services' apps as the integration tests build them: the real app of a service on
a database of its own, with test settings, and its API routes (through included routers)."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

SERVICES = ("collection", "transfer", "treatment", "billing")
SECRET = "role-matrix-secret-of-sufficient-length-000"


def service_app(service: str, database_url: str, kafka: str, prefix: str,
                **overrides: Any) -> FastAPI:
    """The service's app with its own settings class; consumers and relay off unless asked."""
    module = importlib.import_module(f"wastetrail_{service}.app")
    settings_module = importlib.import_module(f"wastetrail_{service}.settings")
    settings_cls = next(
        getattr(settings_module, name) for name in dir(settings_module)
        if name.endswith("Settings") and name != "ServiceSettings"
    )
    options: dict[str, Any] = {"run_consumers": False, "run_relay": False, **overrides}
    settings = settings_cls(service=service, database_url=database_url, topic_prefix=prefix,
                            kafka_bootstrap_servers=kafka, jwt_secret=SECRET, **options)
    app: FastAPI = module.create_app(settings)
    return app


def api_routes(routes: list[Any]) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every API route, through included routers (FastAPI ≥ 0.13x
    keeps included routers as branches instead of copying their routes)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((route.path, route))
        elif hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    found.extend(api_routes([candidate]))
                    continue
                effective = candidate.starlette_route or candidate.original_route
                if isinstance(effective, APIRoute):
                    found.append((candidate.path or effective.path, effective))
    return found
