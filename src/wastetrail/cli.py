"""The ``wastetrail`` command: local stack, services, tokens, dead letters, audit, simulation."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from typing import Annotated

import typer

from wastetrail.devstack import infra, processes, proxy

app = typer.Typer(help="WasteTrail: trace household waste from household to treatment.",
                  no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: inspect and re-drive poison events.",
                      no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the HTTP APIs.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(token_app, name="token")

# The principal a command uses on the local SASL broker, unless WASTETRAIL_KAFKA_USERNAME
# names one: auditors read only, the dead-letter tool is the operator, the stack's own
# commands (up, demo, simulate) reset and create topics as the broker's super user.
PRINCIPALS = {"audit": "audit", "dlq": "operator", "serve": ""}


@app.callback()
def _principal(ctx: typer.Context) -> None:
    if os.environ.get("WASTETRAIL_KAFKA_USERNAME"):
        return
    who = PRINCIPALS.get(ctx.invoked_subcommand or "", "admin")
    if who:
        os.environ.update(infra.principal_env(who))


try:
    from wastetrail_audit.cli import app as audit_app

    app.add_typer(audit_app, name="audit", help="Auditors: replay, trace, balances, report.")
except ImportError:  # pragma: no cover — the audit package is part of the workspace
    pass


@app.command()
def up(
    services: Annotated[bool, typer.Option(help="Also start the four services")] = True,
) -> None:
    """Start Kafka, PostgreSQL, the topics, the VNPay sandbox and the services (idempotent)."""
    from wastetrail_runtime.topics import ensure_topics

    infra.ensure_kafka()
    infra.ensure_postgres()
    created = asyncio.run(ensure_topics(infra.KAFKA_BOOTSTRAP))
    if created:
        typer.echo(f"created {len(created)} topics")
    if not services:
        return
    processes.start_sandbox()
    for service in processes.SERVICES:
        processes.start_service(service)
    failed = [s for s in processes.SERVICES if not processes.wait_ready(s)]
    if failed:
        typer.echo(f"not ready: {', '.join(failed)} — see .local/logs/", err=True)
        raise typer.Exit(1)
    proxy.start()
    if not proxy.wait_ready():
        typer.echo("proxy not answering — see .local/logs/proxy.log", err=True)
        raise typer.Exit(1)
    typer.echo(f"one origin  http://127.0.0.1:{proxy.PROXY_PORT}/api/<service>/ "
               "(collection, transfer, treatment, billing)")
    for service in processes.SERVICES:
        typer.echo(f"{service:<11} http://127.0.0.1:{processes.PORTS[service]}/docs")
    typer.echo(f"vnpay sandbox http://127.0.0.1:{processes.SANDBOX_PORT}/")


@app.command()
def down() -> None:
    """Stop the services, the sandbox, Kafka and PostgreSQL; leaves no process behind."""
    for name in ("proxy", *processes.SERVICES, "vnpay-sandbox"):
        if processes.stop(name):
            typer.echo(f"{name} stopped")
    infra.stop_kafka()
    infra.stop_postgres()


@app.command()
def status() -> None:
    """What runs."""
    typer.echo(f"kafka      {'up' if infra.kafka_answers() else 'down'} {infra.KAFKA_BOOTSTRAP}")
    pg = "up" if infra.postgres_answers() else "down"
    typer.echo(f"postgres   {pg} 127.0.0.1:{infra.PG_PORT}")
    for name in (*processes.SERVICES, "vnpay-sandbox", "proxy"):
        pid = processes.running(name)
        typer.echo(f"{name:<10} {'up (pid ' + str(pid) + ')' if pid else 'down'}")


@app.command()
def serve(service: Annotated[str, typer.Argument(help="collection|transfer|treatment|billing")]
          ) -> None:
    """Run one service in the foreground (uvicorn)."""
    import uvicorn

    if service not in processes.SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}")
    module = importlib.import_module(f"wastetrail_{service}.app")
    application = module.create_app()
    settings = application.state.settings if hasattr(application.state, "settings") else None
    port = settings.resolved_http_port() if settings else processes.PORTS[service]
    host = settings.http_host if settings else "127.0.0.1"
    _tune_gc()
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the import-time heap.

    A service allocates many short-lived objects per event (pydantic models, SQLAlchemy
    rows); every full collection re-scanned the ~hundreds of thousands of objects that
    imports created and that live as long as the process. Freezing them removes that
    cost; the higher first threshold makes young collections rarer but no bigger than a
    consumer batch's garbage.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


@token_app.command("issue")
def token_issue(
    subject: Annotated[str, typer.Argument(help="operator, account or device name")],
    role: Annotated[str, typer.Option(help="collector|station_operator|plant_operator|"
                                      "household|producer|cashier|auditor|admin")],
    account_id: Annotated[str | None, typer.Option(help="own account (household, producer)")]
    = None,
    device_id: Annotated[str | None, typer.Option(help="collector's device")] = None,
    site_id: Annotated[str | None, typer.Option(help="station or plant id")] = None,
    days: Annotated[int, typer.Option(help="validity")] = 30,
) -> None:
    """Issue a signed bearer token (uses the local secret, or WASTETRAIL_JWT_SECRET)."""
    from datetime import timedelta

    from wastetrail_contracts.enums import Role
    from wastetrail_runtime.auth import issue_token
    from wastetrail_runtime.settings import ServiceSettings

    try:
        the_role = Role(role)
    except ValueError as exc:
        raise typer.BadParameter(f"unknown role {role!r}") from exc
    secret = ServiceSettings().resolved_jwt_secret()
    typer.echo(issue_token(secret, subject, the_role, account_id=account_id,
                           device_id=device_id, site_id=site_id, ttl=timedelta(days=days)))


@dlq_app.command("list")
def dlq_list(
    consumer: Annotated[str | None, typer.Option(help="one consumer, e.g. transfer.collection")]
    = None,
    bootstrap: Annotated[str, typer.Option(help="Kafka")] = infra.KAFKA_BOOTSTRAP,
    topic_prefix: Annotated[str, typer.Option(help="topic prefix")] = "",
) -> None:
    """List dead letters with their reasons."""
    from wastetrail.dlq import list_dead_letters

    for letter in list_dead_letters(bootstrap, topic_prefix, consumer):
        typer.echo(json.dumps(letter.summary(), ensure_ascii=False))


@dlq_app.command("show")
def dlq_show(
    consumer: Annotated[str, typer.Argument()],
    offset: Annotated[int, typer.Argument()],
    bootstrap: Annotated[str, typer.Option()] = infra.KAFKA_BOOTSTRAP,
    topic_prefix: Annotated[str, typer.Option()] = "",
) -> None:
    """Show one dead letter in full."""
    from wastetrail.dlq import list_dead_letters

    for letter in list_dead_letters(bootstrap, topic_prefix, consumer):
        if letter.offset == offset:
            typer.echo(json.dumps(letter.full(), ensure_ascii=False, indent=2))
            return
    typer.echo(f"no dead letter at offset {offset}", err=True)
    raise typer.Exit(1)


@dlq_app.command("replay")
def dlq_replay(
    consumer: Annotated[str, typer.Argument()],
    offset: Annotated[int | None, typer.Option(help="only this one")] = None,
    bootstrap: Annotated[str, typer.Option()] = infra.KAFKA_BOOTSTRAP,
    topic_prefix: Annotated[str, typer.Option()] = "",
) -> None:
    """Re-drive dead letters to the consumer (through its retry topic); applied at most once."""
    from wastetrail.dlq import replay_dead_letters

    count = replay_dead_letters(bootstrap, topic_prefix, consumer, offset)
    typer.echo(f"re-driven {count} dead letter(s) to {consumer}")


@app.command()
def simulate(
    seed: Annotated[int, typer.Option()] = 42,
    households: Annotated[int, typer.Option()] = 300,
    days: Annotated[int, typer.Option()] = 30,
    out: Annotated[str, typer.Option()] = "out/demo",
) -> None:
    """Run a simulated province through the real HTTP APIs."""
    from wastetrail_runtime.settings import ServiceSettings

    from wastetrail.simulate import run_simulation

    result = asyncio.run(run_simulation(seed=seed, households=households, days=days, out=out,
                                        kafka_bootstrap=ServiceSettings().kafka_bootstrap_servers))
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    typer.echo(json.dumps(public, ensure_ascii=False, indent=2))


@app.command()
def demo() -> None:
    """Bring everything up, simulate a province for a month, audit it, print the summary."""
    from wastetrail.demo import run_demo

    sys.exit(run_demo())


if __name__ == "__main__":
    app()
