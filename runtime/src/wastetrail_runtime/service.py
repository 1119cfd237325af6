"""Build a service's FastAPI app: database, migrations, relay, checkpoints, consumers,
auth, problem details, logging with correlation ids, metrics and health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI, Request, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from wastetrail_contracts.topics import DLQ_RETENTION_MS, dead_letter_topic

from wastetrail_runtime.checkpoints import Checkpointer
from wastetrail_runtime.clock import Clock, SystemClock
from wastetrail_runtime.consumer import Consumer, ConsumerRunner, Record, retry_topic
from wastetrail_runtime.db import Database
from wastetrail_runtime.forwarded import ForwardedPrefix
from wastetrail_runtime.guard import RequestGuard
from wastetrail_runtime.integrity import HeadWitness
from wastetrail_runtime.lag import lag_monitor
from wastetrail_runtime.logging import configure_logging, correlation_id_var, get_logger
from wastetrail_runtime.metrics import Metrics
from wastetrail_runtime.migrations import upgrade_to_head
from wastetrail_runtime.problems import install_problem_handlers
from wastetrail_runtime.relay import OutboxRelay, make_producer
from wastetrail_runtime.settings import ServiceSettings
from wastetrail_runtime.signing import service_signing_key
from wastetrail_runtime.store import EventStore, ServiceMetadata
from wastetrail_runtime.topics import TopicLayout, catalog_topics, ensure_topics
from wastetrail_runtime.transient import Backoff

log = get_logger(__name__)


@dataclass
class ServiceSpec:
    """What makes one service: its name, tables, migrations, HTTP routers and consumers."""

    name: str
    meta: ServiceMetadata
    migrations: Path
    routers: Sequence[APIRouter] = ()
    consumers: Callable[[ServiceRuntime], Sequence[Consumer]] | None = None
    background: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = ()
    title: str = ""
    description: str = ""
    create_all: bool = False  # tests only: skip Alembic and create the tables directly
    # Paths that stream an upload larger than ``max_body_bytes`` (a CSV import), with the
    # limit their own setting gives them; the request guard applies it before parsing.
    large_bodies: Mapping[str, Callable[[ServiceSettings], int]] = field(default_factory=dict)
    # The service's queries need PostgreSQL (e.g. billing's month-end run: table locks,
    # COPY, unnest): refuse SQLite at start-up instead of failing at the first such query.
    requires_postgres: bool = False


@dataclass
class ServiceRuntime:
    """Everything a running service shares; reachable as ``request.app.state.runtime``."""

    settings: ServiceSettings
    db: Database
    store: EventStore
    clock: Clock
    metrics: Metrics
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    relay_task: asyncio.Task[None] | None = None
    checkpointer: Checkpointer | None = None
    # Heads of the other services' chains the consumers verified; checkpoints sign them.
    witness: HeadWitness = field(default_factory=HeadWitness)
    signing_key: tuple[Ed25519PrivateKey, str] | None = None  # and its key id
    runners: list[ConsumerRunner] = field(default_factory=list)
    subscribers: list[Any] = field(default_factory=list)
    broker: KafkaBroker | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    kafka_ready: bool = False


async def _start_producer(bootstrap: str, attempts: int = 60, **options: Any
                          ) -> AIOKafkaProducer:
    for attempt in range(attempts):
        producer = make_producer(bootstrap, **options)
        try:
            await producer.start()
            return producer
        except Exception as exc:
            await producer.stop()
            log.warning("kafka.unavailable", attempt=attempt, error=str(exc))
            await asyncio.sleep(min(0.5 * (attempt + 1), 5))
    raise RuntimeError(f"Kafka at {bootstrap} did not answer")


def _subscribe(broker: KafkaBroker, runner: ConsumerRunner, prefix: str) -> Any:
    topics = runner.consumer.topics(prefix)

    async def on_batch(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        batch = raw if isinstance(raw, tuple | list) else (raw,)
        records = [
            Record(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key,
                   value=r.value, headers=tuple((k, bytes(v)) for k, v in (r.headers or ())))
            for r in batch
        ]
        await runner.process_batch(records)

    subscriber = broker.subscriber(
        # The prefix keeps consumer groups of separate deployments (and test runs) apart.
        *topics, group_id=f"{prefix}{runner.consumer.name}", auto_offset_reset="earliest",
        # AckPolicy.ACK would commit the batch's offsets even when the handler raises. The
        # runner returns only once every record is applied or dead-lettered; if anything
        # escapes it, NACK rewinds each partition to the batch's first record instead.
        ack_policy=AckPolicy.NACK_ON_ERROR, batch=True, max_records=500,
        batch_timeout_ms=20,
    )
    subscriber(on_batch)
    return subscriber


def build_service(
    spec: ServiceSpec, settings: ServiceSettings, *, clock: Clock | None = None
) -> FastAPI:
    """The service's ASGI app; start-up migrates, starts the relay and the consumers."""
    settings.service = settings.service or spec.name
    configure_logging(spec.name, settings.log_level)
    if spec.requires_postgres and not settings.resolved_database_url().startswith("postgresql"):
        raise ValueError(
            f"{spec.name} needs PostgreSQL: set WASTETRAIL_DATABASE_URL to a "
            f"postgresql+asyncpg:// URL (SQLite is the default only for the other services)")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url())
        if spec.create_all:
            async with db.engine.begin() as conn:
                await conn.run_sync(spec.meta.metadata.create_all)
        else:
            await upgrade_to_head(spec.migrations, db.url)
        the_clock = clock or SystemClock()
        metrics = Metrics(spec.name)
        store = EventStore(db, spec.meta, spec.name, topic_prefix=settings.topic_prefix,
                           clock=the_clock, metrics=metrics)
        rt = ServiceRuntime(settings=settings, db=db, store=store, clock=the_clock,
                            metrics=metrics)
        app.state.runtime = rt
        app.state.jwt_secret = settings.resolved_jwt_secret()
        if settings.run_relay:
            # Before serving: a service whose key went missing must not start at all.
            rt.signing_key = await service_signing_key(
                store, settings.keys_dir / f"{spec.name}.key", rotate=settings.rotate_key,
                public_dir=settings.public_keys_dir)
        rt.tasks.append(asyncio.create_task(_connect_kafka(spec, rt)))
        for job in spec.background:
            rt.tasks.append(asyncio.create_task(job(rt)))
        try:
            yield
        finally:
            for task in rt.tasks:
                task.cancel()
            for task in rt.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if rt.broker is not None:
                with contextlib.suppress(Exception):
                    await rt.broker.stop()
            if rt.producer is not None:
                with contextlib.suppress(Exception):
                    await rt.producer.stop()
            await db.dispose()

    app = FastAPI(title=spec.title or f"WasteTrail {spec.name}", description=spec.description,
                  lifespan=lifespan, version="0.1.0")
    app.state.settings = settings
    install_problem_handlers(app)
    _install_middleware(app, spec.name)
    app.add_middleware(ForwardedPrefix)
    large = {path: limit(settings) for path, limit in spec.large_bodies.items()}
    # Added last, so it is the outermost layer: nothing is parsed or authenticated before it.
    app.add_middleware(RequestGuard,
                       limit_for=lambda path: large.get(path, settings.max_body_bytes))
    _install_health(app)
    for router in spec.routers:
        app.include_router(router)
    return app


async def _connect_kafka(spec: ServiceSpec, rt: ServiceRuntime) -> None:
    """Connect to Kafka in the background so HTTP answers while the broker is away."""
    settings = rt.settings
    options = settings.kafka_options()
    rt.producer = await _start_producer(settings.kafka_bootstrap_servers, attempts=10_000,
                                        **options)
    consumers = spec.consumers(rt) if spec.consumers and settings.run_consumers else ()
    extra = [(name, 1, DLQ_RETENTION_MS) for c in consumers
             for name in (retry_topic(c.name, settings.topic_prefix),
                          dead_letter_topic(c.name, settings.topic_prefix))]
    topics = catalog_topics(settings.topic_prefix, settings.topic_partitions) + extra
    layout = TopicLayout.from_settings(settings)
    await _until_done("ensure_topics", lambda: ensure_topics(
        settings.kafka_bootstrap_servers, topics, layout=layout, **options))
    if settings.run_relay:
        rt.relay = OutboxRelay(rt.store, rt.producer, batch_size=settings.relay_batch_size,
                               poll_seconds=settings.relay_poll_seconds, metrics=rt.metrics)
        rt.relay_task = asyncio.create_task(rt.relay.run())
        rt.tasks.append(rt.relay_task)
        assert rt.signing_key is not None  # loaded at start-up, with the relay
        rt.checkpointer = Checkpointer(rt.store, *rt.signing_key,
                                       every_events=settings.checkpoint_every_events,
                                       every_seconds=settings.checkpoint_every_seconds,
                                       witness=rt.witness)
        rt.tasks.append(asyncio.create_task(rt.checkpointer.run()))
    if consumers:
        # FastStream passes a string on as one host: give it the list (a cluster has several)
        broker = KafkaBroker(settings.kafka_bootstrap_servers.split(","), logger=None,
                             security=_security(settings))
        for consumer in consumers:
            runner = ConsumerRunner(consumer, rt.store, rt.producer,
                                    topic_prefix=settings.topic_prefix,
                                    max_attempts=settings.consumer_max_attempts,
                                    backoff_seconds=settings.consumer_backoff_seconds,
                                    max_backoff_seconds=settings.consumer_max_backoff_seconds,
                                    metrics=rt.metrics, witness=rt.witness)
            rt.runners.append(runner)
            rt.subscribers.append(_subscribe(broker, runner, settings.topic_prefix))
        rt.broker = broker  # set first, so shutdown stops it even if start is interrupted

        async def start_broker() -> None:
            try:
                await broker.start()
            except Exception:
                with contextlib.suppress(Exception):
                    await broker.stop()  # a half-started broker is started afresh
                raise

        await _until_done("broker.start", start_broker)
        rt.tasks.append(asyncio.create_task(lag_monitor(settings, consumers, rt.metrics).run()))
    rt.kafka_ready = True
    log.info("service.kafka_ready", consumers=[c.name for c in consumers])


async def _until_done(what: str, attempt: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run ``attempt`` until it succeeds, with capped backoff: Kafka may come up after us."""
    backoff = Backoff(0.5, 5.0)
    while True:
        try:
            await attempt()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("kafka.start_retry", step=what, error=f"{type(exc).__name__}: {exc}",
                        retry_in_s=backoff.delay)
            await backoff.wait()


async def readiness(rt: ServiceRuntime) -> dict[str, bool]:
    """What /readyz checks besides the database: Kafka connected and answering now, the
    relay publishing (not failing round after round), and every consumer subscribed and
    not held by a dependency."""
    checks = {"kafka": rt.kafka_ready and await _broker_answers(rt)}
    if rt.settings.run_relay:
        alive = rt.relay_task is not None and not rt.relay_task.done()
        checks["relay"] = rt.relay is not None and rt.relay.healthy and alive
    for runner, subscriber in zip(rt.runners, rt.subscribers, strict=True):
        running = bool(getattr(subscriber, "running", True))
        checks[f"consumer:{runner.consumer.name}"] = running and runner.waiting_on is None
    return checks


async def _broker_answers(rt: ServiceRuntime) -> bool:
    if rt.producer is None:
        return False
    try:
        # A metadata round trip over the producer's connections (one request).
        async with asyncio.timeout(1.0):
            await rt.producer.client.fetch_all_metadata()
    except Exception:
        return False
    return True


def _security(settings: ServiceSettings) -> BaseSecurity | None:
    """FastStream's form of the service's SASL principal."""
    if not settings.kafka_username:
        return None
    kind = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return kind(settings.kafka_username, settings.kafka_password)


def _install_middleware(app: FastAPI, service: str) -> None:
    @app.middleware("http")
    async def correlation(request: Request, call_next: Any) -> Response:
        correlation_id = request.headers.get("x-correlation-id") or uuid.uuid4().hex
        token = correlation_id_var.set(correlation_id)
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        finally:
            correlation_id_var.reset(token)
            structlog.contextvars.unbind_contextvars("correlation_id")
        response.headers["x-correlation-id"] = correlation_id
        rt: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
        if rt is not None:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            rt.metrics.http_latency.labels(service, request.method, path,
                                           str(response.status_code)).observe(
                time.perf_counter() - started)
        return response


def _install_health(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        rt: ServiceRuntime = request.app.state.runtime
        checks = {"database": False, **await readiness(rt)}
        try:
            async with rt.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:  # noqa: S110 — reported below
            pass
        ok = all(checks.values())
        import json

        return Response(json.dumps({"ready": ok, "checks": checks}),
                        status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        rt: ServiceRuntime = request.app.state.runtime
        if rt.relay is not None:
            with contextlib.suppress(Exception):
                rt.metrics.outbox_pending.set(await rt.relay.pending())
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def runtime_of(request: Request) -> ServiceRuntime:
    """The service runtime behind a request (for routers)."""
    rt: ServiceRuntime = request.app.state.runtime
    return rt
