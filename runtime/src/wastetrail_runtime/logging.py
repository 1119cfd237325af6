"""structlog configured once: JSON lines with service, correlation id and event id."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

import structlog

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
causation_id_var: ContextVar[str | None] = ContextVar("causation_id", default=None)
_configured = False


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger for JSON output (idempotent)."""
    global _configured
    structlog.contextvars.bind_contextvars(service=service)
    if _configured:
        return
    _configured = True
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level)
    for noisy in ("aiokafka", "kafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
