"""``wastetrail audit ...``: the auditors' command line (typer app named ``app``).

Every command reads the log itself — from Kafka (``--bootstrap``, ``--topic-prefix``) or
from an export (``--source DIR``, manifest verified first) — verifies it and projects it
into SQLite before answering. ``--projection FILE`` reuses the projection of an earlier
``replay`` instead. Exit status: 0 all good, 1 a failure or difference was found, 2 the
log or a service could not be read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from wastetrail_contracts.base import Event
from wastetrail_contracts.keys import load_or_create_signing_key, load_public_key

from wastetrail_audit.balances import BALANCE_EVENTS, BalanceLedger, compare
from wastetrail_audit.billing_view import BillingViewError, fetch_billing_view
from wastetrail_audit.export import export_log
from wastetrail_audit.heads import DEFAULT_MAX_UNSIGNED
from wastetrail_audit.indicators import compute
from wastetrail_audit.invoices import INVOICE_EVENTS, InvoiceRecomputation
from wastetrail_audit.keys import (
    DEFAULT_TRUST,
    KeyFileError,
    KeyRing,
    fingerprint,
    load_public_keys,
    load_trust,
    pin_key,
    unpinned_key_files,
)
from wastetrail_audit.projection import iter_models
from wastetrail_audit.records import Failure, PartitionRef
from wastetrail_audit.render import write_report
from wastetrail_audit.replay import Progress, ReplayOptions, ReplaySummary, replay
from wastetrail_audit.source import ExportLog, KafkaLog, LogSource, SourceError
from wastetrail_audit.targets import TargetsError, default_targets_file, load_targets
from wastetrail_audit.trace import render_text, trace_load

app = typer.Typer(
    name="audit",
    help="Replay the event log, verify its integrity, trace loads, check balances, report.",
    no_args_is_help=True,
    add_completion=False,
)

Bootstrap = Annotated[
    str,
    typer.Option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."),
]
TopicPrefix = Annotated[
    str,
    typer.Option("--topic-prefix", envvar="WASTETRAIL_TOPIC_PREFIX",
                 help="Prefix of the event topics (deployments and tests use one)."),
]
SourceDir = Annotated[
    Path | None,
    typer.Option("--source", help="Read an export directory instead of Kafka.",
                 file_okay=False),
]
KeysDir = Annotated[
    Path | None,
    typer.Option("--keys-dir", help="Directory of the services' public keys (PEM). With "
                 "--trust, each must be pinned there; alone, its keys are trusted unpinned."),
]
TrustFile = Annotated[
    Path | None,
    typer.Option("--trust", dir_okay=False, envvar="WASTETRAIL_AUDIT_TRUST",
                 help="The auditor's trust file of pinned keys (default "
                 ".local/audit/trust.json; see `audit trust pin`)."),
]
WorkDir = Annotated[
    Path | None,
    typer.Option("--work-dir", help="Where the projection and part files go "
                 "(replay: .local/audit; other commands: a temporary directory)."),
]
Workers = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Partitions verified at once (default: CPU count)."),
]
ProjectionFile = Annotated[
    Path | None,
    typer.Option("--projection", exists=True, dir_okay=False,
                 help="Use the projection of an earlier replay instead of reading the log."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress line.")]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_EXPORT_KEY = Path(".local/audit/export.key")


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _source(bootstrap: str, topic_prefix: str, source: Path | None) -> LogSource:
    if source is not None:
        return ExportLog(source)
    return KafkaLog(bootstrap, topic_prefix)


class _Console:
    """Progress on stderr (one rewritten line on a terminal), failures on stdout."""

    def __init__(self, quiet: bool, print_failures: bool) -> None:
        self.quiet = quiet
        self.print_failures = print_failures
        self.tty = sys.stderr.isatty()
        self._line_open = False

    def progress(self, p: Progress) -> None:
        if self.quiet:
            return
        if not self.tty:
            _err(p.line())
            return
        sys.stderr.write("\r" + p.line() + "\x1b[K")
        self._line_open = p.partitions_done < p.partitions
        if not self._line_open:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def failure(self, failure: Failure) -> None:
        if not self.print_failures:
            return
        if self._line_open:
            sys.stderr.write("\r\x1b[K")  # the failure must not land on the progress line
            sys.stderr.flush()
        typer.echo(failure.line())


def _keys(trust: Path | None, keys_dir: Path | None) -> KeyRing:
    """The pinned keys of the trust file; with --keys-dir alone, that directory's keys."""
    try:
        if trust is None and keys_dir is not None:
            _err(f"warning: trusting every *.pub of {keys_dir} unpinned (no --trust file)")
            return load_public_keys(keys_dir)
        path = trust or DEFAULT_TRUST
        if not path.exists():
            _err(f"error: no trust file {path}: pin the services' keys first "
                 "(`wastetrail audit trust pin --keys-dir DIR`), or pass --keys-dir")
            raise typer.Exit(2)
        ring = load_trust(path)
        problems = unpinned_key_files(keys_dir, ring) if keys_dir is not None else []
    except KeyFileError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc
    if problems:
        for problem in problems:
            _err(f"error: {problem}")
        raise typer.Exit(1)
    return ring


def _run_replay(
    source: LogSource,
    keys: tuple[Path | None, Path | None],
    work_dir: Path,
    workers: int | None,
    console: _Console,
    from_checkpoint: Path | None = None,
    save_checkpoint: Path | None = None,
    heads: Path | None = None,
    max_unsigned: int = DEFAULT_MAX_UNSIGNED,
) -> ReplaySummary:
    options = ReplayOptions(
        source=source, keys=_keys(*keys), work_dir=work_dir, workers=workers,
        from_checkpoint=from_checkpoint, save_checkpoint=save_checkpoint,
        on_progress=console.progress, on_failure=console.failure,
        heads=heads, max_unsigned=max_unsigned,
    )
    try:
        summary = replay(options)
    except SourceError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc
    for warning in summary.warnings:
        _err(f"warning: {warning}")
    return summary


@contextmanager
def _projection(
    projection: Path | None,
    source: LogSource,
    keys_dir: tuple[Path | None, Path | None],
    work_dir: Path | None,
    workers: int | None,
    quiet: bool,
) -> Iterator[tuple[Path, ReplaySummary | None]]:
    """A projection to query: the given file, or a fresh replay of the log."""
    if projection is not None:
        yield projection, None
        return
    with tempfile.TemporaryDirectory(prefix="wastetrail-audit-") as tmp:
        summary = _run_replay(source, keys_dir, work_dir or Path(tmp), workers,
                              _Console(quiet, print_failures=False))
        if not summary.ok:
            _err(
                f"warning: the log has {summary.failure_count} integrity failure(s); "
                "run `wastetrail audit replay` for the list. First ones:"
            )
            for failure in summary.failures[:5]:
                _err("  " + failure.line())
        yield summary.projection, summary


@app.command("replay")
def replay_command(
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    topic_prefix: TopicPrefix = "",
    source: SourceDir = None,
    keys_dir: KeysDir = None,
    trust: TrustFile = None,
    work_dir: WorkDir = None,
    workers: Workers = None,
    heads: Annotated[
        Path | None,
        typer.Option("--heads", dir_okay=False,
                     help="The auditor's heads file: this replay must extend the heads it "
                     "holds; it is created or updated when the replay passes."),
    ] = None,
    max_unsigned: Annotated[
        int,
        typer.Option("--max-unsigned", min=0,
                     help="Most events a chain may hold after its last signed checkpoint."),
    ] = DEFAULT_MAX_UNSIGNED,
    from_checkpoint: Annotated[
        Path | None,
        typer.Option("--from-checkpoint", exists=True, dir_okay=False,
                     help="Continue from a checkpoint file saved by an earlier replay."),
    ] = None,
    save_checkpoint: Annotated[
        Path | None,
        typer.Option("--save-checkpoint", dir_okay=False,
                     help="Where to save the checkpoint (default <work-dir>/checkpoint.json)."),
    ] = None,
    as_json: JsonFlag = False,
    quiet: Quiet = False,
) -> None:
    """Verify every event: envelope, payload schema, hash chain, signed checkpoints."""

    summary = _run_replay(
        _source(bootstrap, topic_prefix, source), (trust, keys_dir),
        work_dir or Path(".local/audit"), workers, _Console(quiet, print_failures=not as_json),
        from_checkpoint, save_checkpoint, heads, max_unsigned,
    )
    trust_file = trust or (DEFAULT_TRUST if keys_dir is None else None)
    if summary.ok and trust_file is not None:
        _pin_rotations(trust_file, summary)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        data = summary.to_json()
        typer.echo(
            f"{'OK' if summary.ok else 'FAILED'}: {summary.records:,} records, "
            f"{summary.events:,} events, {len(summary.chains)} chains, "
            f"{data['checkpoints_verified']} checkpoints verified, "
            f"{summary.failure_count} failure(s), {data['events_per_second']:,} events/s"
        )
        if data["duplicates"]:
            typer.echo(f"note: {data['duplicates']} exact redelivered cop(ies) of verified "
                       "events were counted once (the relay publishes at least once)")
        if data["unsigned_events"]:
            typer.echo(f"note: {data['unsigned_events']} event(s) after the last checkpoint "
                       "of their chain are not covered by a signature yet")
        typer.echo(f"projection: {summary.projection}")
    raise typer.Exit(0 if summary.ok else 1)


def _pin_rotations(trust: Path, summary: ReplaySummary) -> None:
    """Trust the new keys of rotations the replay verified (signed by a pinned old key)."""
    for rotation in summary.rotations:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(rotation.new_public_key))
        if pin_key(trust, rotation.service, key, valid_from=rotation.rotated_at):
            _err(f"pinned {rotation.service}'s new key {rotation.new_key_id} (rotated from "
                 f"{rotation.old_key_id} at {rotation.rotated_at}) in {trust}")


@app.command("trace")
def trace_command(
    load_id: Annotated[str, typer.Argument(help="The load to trace.")],
    as_json: JsonFlag = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    topic_prefix: TopicPrefix = "",
    source: SourceDir = None,
    keys_dir: KeysDir = None,
    trust: TrustFile = None,
    work_dir: WorkDir = None,
    workers: Workers = None,
    projection: ProjectionFile = None,
    quiet: Quiet = False,
) -> None:
    """The load's custody path from the log alone: scan → trip → station → plant → treatment."""
    with _projection(projection, _source(bootstrap, topic_prefix, source), (trust, keys_dir),
                     work_dir,
                     workers, quiet) as (path, summary):
        conn = sqlite3.connect(path)
        try:
            result = trace_load(conn, load_id)
        finally:
            conn.close()
    if as_json:
        data = dict(result.data)
        if summary is not None:
            data["log_integrity"] = {"ok": summary.ok, "failures": summary.failure_count}
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        typer.echo(render_text(result, summary.failures if summary else None))
    raise typer.Exit(0 if result.found else 1)


@app.command("verify-balances")
def verify_balances_command(
    billing_url: Annotated[
        str, typer.Option("--billing-url", envvar="WASTETRAIL_BILLING_URL",
                          help="Base URL of the billing service.")
    ],
    token: Annotated[
        str, typer.Option("--token", envvar="WASTETRAIL_AUDIT_TOKEN",
                          help="Bearer token of an auditor.")
    ],
    as_json: JsonFlag = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    topic_prefix: TopicPrefix = "",
    source: SourceDir = None,
    keys_dir: KeysDir = None,
    trust: TrustFile = None,
    work_dir: WorkDir = None,
    workers: Workers = None,
    projection: ProjectionFile = None,
    quiet: Quiet = False,
) -> None:
    """Recompute every account's and producer's balances from events; compare with billing."""
    # The billing view is fetched first: billing's outbox lags its database, so reading the
    # log afterwards gives the log the best chance to hold everything billing counted.
    try:
        billing = fetch_billing_view(billing_url, token)
    except BillingViewError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc
    with _projection(projection, _source(bootstrap, topic_prefix, source), (trust, keys_dir),
                     work_dir,
                     workers, quiet) as (path, summary):
        ledger = BalanceLedger()
        _feed(path, BALANCE_EVENTS, ledger.apply)
    ours = ledger.balances()
    differences = compare(ours, billing)
    if as_json:
        typer.echo(json.dumps({
            "ok": not differences,
            "accounts": len(ours.accounts), "producers": len(ours.producers),
            "differences": [asdict(d) for d in differences],
            "log": ours.to_json(),
            "log_integrity": None if summary is None else {
                "ok": summary.ok, "failures": summary.failure_count},
        }, indent=2, ensure_ascii=False))
    else:
        for difference in differences:
            typer.echo("DIFF " + difference.line())
        typer.echo(
            f"{'OK' if not differences else 'DIFFERENT'}: {len(ours.accounts)} accounts and "
            f"{len(ours.producers)} producers recomputed from the log; "
            f"{len(differences)} difference(s) with {billing_url}"
        )
    raise typer.Exit(1 if differences else 0)


def _feed(path: Path, models: Iterable[type[Event]], apply: Callable[[Event], None]) -> None:
    """Every event of these types in the projection, in log order, to ``apply``."""
    conn = sqlite3.connect(path)
    try:
        for model in models:
            for event in iter_models(conn, model):
                apply(event)
    finally:
        conn.close()


@app.command("verify-invoices")
def verify_invoices_command(
    as_json: JsonFlag = False,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    topic_prefix: TopicPrefix = "",
    source: SourceDir = None,
    keys_dir: KeysDir = None,
    trust: TrustFile = None,
    work_dir: WorkDir = None,
    workers: Workers = None,
    projection: ProjectionFile = None,
    quiet: Quiet = False,
) -> None:
    """Recompute every invoiced account-month's fees from the log (loads, tariff) and
    compare them with what its invoices billed."""
    with _projection(projection, _source(bootstrap, topic_prefix, source), (trust, keys_dir),
                     work_dir,
                     workers, quiet) as (path, summary):
        recomputation = InvoiceRecomputation()
        _feed(path, INVOICE_EVENTS, recomputation.apply)
    check = recomputation.check()
    if as_json:
        typer.echo(json.dumps({
            **check.to_json(),
            "log_integrity": None if summary is None else {
                "ok": summary.ok, "failures": summary.failure_count},
        }, indent=2, ensure_ascii=False))
    else:
        for difference in check.differences:
            typer.echo("DIFF " + difference.line())
        typer.echo(
            f"{'OK' if not check.differences else 'DIFFERENT'}: {check.months} account-months "
            f"({check.invoices} invoices, {check.loads} loads) recomputed from the log; "
            f"{len(check.differences)} difference(s)"
        )
    raise typer.Exit(1 if check.differences else 0)


@app.command("report")
def report_command(
    year: Annotated[int, typer.Option("--year", min=2000, max=2100, help="Calendar year.")],
    province: Annotated[str, typer.Option("--province", help="Province code, e.g. son-la.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Output directory.")],
    targets: Annotated[
        Path | None,
        typer.Option("--targets", exists=True, dir_okay=False,
                     help="Targets TOML (default audit/targets/<province>.toml)."),
    ] = None,
    estimate_over: Annotated[
        str,
        typer.Option("--estimate-over", help="Estimate generation over the calendar 'year' "
                     "or over the days 'covered' by the year's collections."),
    ] = "year",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    topic_prefix: TopicPrefix = "",
    source: SourceDir = None,
    keys_dir: KeysDir = None,
    trust: TrustFile = None,
    work_dir: WorkDir = None,
    workers: Workers = None,
    projection: ProjectionFile = None,
    quiet: Quiet = False,
) -> None:
    """The annual indicator report per commune and province: HTML, CSV, XLSX and JSON."""
    if estimate_over not in ("year", "covered"):
        _err(f"error: --estimate-over is 'year' or 'covered', not {estimate_over!r}")
        raise typer.Exit(2)
    targets_file = targets or default_targets_file(province)
    try:
        plan_ = load_targets(targets_file)
    except TargetsError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc
    if plan_.province != province:
        _err(f"error: {targets_file} holds the targets of {plan_.province!r}, not {province!r}")
        raise typer.Exit(2)
    with _projection(projection, _source(bootstrap, topic_prefix, source), (trust, keys_dir),
                     work_dir,
                     workers, quiet) as (path, summary):
        conn = sqlite3.connect(path)
        try:
            numbers = compute(conn, plan_, year, estimate_over=estimate_over)
        finally:
            conn.close()
    if summary is None:
        integrity: dict[str, object] = {
            "ok": None, "failures": None, "events": None, "checkpoints_verified": None,
            "source": f"projection {projection} (not re-verified by this run)",
        }
    else:
        data = summary.to_json()
        integrity = {"ok": summary.ok, "failures": summary.failure_count,
                     "events": summary.events,
                     "checkpoints_verified": data["checkpoints_verified"],
                     "source": summary.source}
    paths = write_report(out, numbers, integrity)
    total = numbers.total
    typer.echo(
        f"report {province} {year}: {len(numbers.communes)} communes, collected "
        f"{total.collected_grams / 1_000_000:,.3f} t, treated "
        f"{total.treated_grams / 1_000_000:,.3f} t"
    )
    for name, file in paths.items():
        typer.echo(f"  {name}: {file}")


@app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="An empty directory.")],
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    topic_prefix: TopicPrefix = "",
    signing_key: Annotated[
        Path,
        typer.Option("--signing-key", dir_okay=False,
                     help="The auditor's Ed25519 export key (created on first use, its .pub "
                     "beside it: pin that with `audit trust pin --key FILE --owner audit`)."),
    ] = DEFAULT_EXPORT_KEY,
    quiet: Quiet = False,
) -> None:
    """Write the log to files (one JSONL per topic-partition) with a signed SHA-256 manifest."""

    def on_partition(ref: PartitionRef, count: int) -> None:
        if not quiet:
            _err(f"export: {ref.label} {count} records")

    try:
        key, _key_id = load_or_create_signing_key(signing_key)
        result = export_log(KafkaLog(bootstrap, topic_prefix), out, on_partition, key)
    except SourceError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc
    for warning in result.warnings:
        _err(f"warning: {warning}")
    typer.echo(
        f"exported {result.records:,} records in {result.files} files to {result.directory}; "
        f"manifest SHA-256 {result.manifest_sha256}"
    )


trust_app = typer.Typer(name="trust", help="The auditor's trust file of pinned keys.",
                        no_args_is_help=True)
app.add_typer(trust_app)


@trust_app.command("pin")
def trust_pin_command(
    keys_dir: Annotated[
        Path | None, typer.Option("--keys-dir", file_okay=False,
                                  help="Pin every <owner>.pub of this directory.")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", dir_okay=False, help="Pin one public key file.")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Owner of --key (default: its file name).")
    ] = None,
    trust: TrustFile = None,
) -> None:
    """Pin keys in the trust file after checking their fingerprints (printed) out of band."""
    path = trust or DEFAULT_TRUST
    files = sorted(keys_dir.glob("*.pub")) if keys_dir is not None else []
    files += [key] if key is not None else []
    if not files:
        _err("error: nothing to pin (--keys-dir DIR or --key FILE)")
        raise typer.Exit(2)
    try:
        for file in files:
            public = load_public_key(file)
            name = owner if (owner and file == key) else file.stem
            added = pin_key(path, name, public)
            typer.echo(f"{'pinned' if added else 'already pinned'} {name} "
                       f"{fingerprint(public)} in {path}")
    except KeyFileError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc


def main() -> None:  # pragma: no cover - console entry
    """Run the app (``python -m wastetrail_audit.cli``)."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
