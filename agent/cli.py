"""``chipwarden`` command line: thin typer commands over the same functions the server uses.

Exit codes: 0 ran; 2 usage/config/policy error; 3 findings at or above ``--fail-on``;
4 the audit ran but some source failed or records were quarantined (partial; wins over 3);
143 (128 + SIGTERM) the audit was stopped by SIGTERM after committing the batch in progress
and saved as partial with an ``interrupted`` scope error (wins over 3 and 4; a second SIGTERM
kills at once).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.assembly import build_classifier, build_engine, build_plugins
from agent.config import AppConfig, load_config
from agent.contracts import AuditWindow, CollectContext
from agent.enrich import GeoEnricher
from agent.errors import ChipwardenError, UsageError
from agent.logging import LogFormat, configure_logging
from agent.models import Severity
from agent.output import (
    OutputFormat,
    instance_to_dict,
    intel_to_dict,
    render_findings,
    render_records,
)
from agent.pipeline import AuditResult, ContextProvider, collect_inventory, run_audit
from agent.review.hooks import build_audit_hooks
from agent.sharding import resolve_shard
from agent.store import SqlStore, open_store
from agent.window import build_window
from agent.yamlio import YamlDocument

__all__ = ["app", "main", "run"]

EXIT_OK, EXIT_USAGE, EXIT_FINDINGS, EXIT_PARTIAL = 0, 2, 3, 4
EXIT_INTERRUPTED = 128 + signal.SIGTERM

app = typer.Typer(
    name="chipwarden",
    help="Audit remote access to cloud GPUs against export-control jurisdictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Validate and inspect policy packs.", no_args_is_help=True)
findings_app = typer.Typer(help="Read stored findings.", no_args_is_help=True)
ip_app = typer.Typer(help="IP intelligence.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(findings_app, name="findings")
app.add_typer(ip_app, name="ip")

err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root() -> None:
    """Audit remote access to cloud GPUs against export-control jurisdictions."""
    configure_logging(fmt="console", level="warning")


def _now() -> datetime:
    return datetime.now(UTC)


def sample_config_path() -> Path:
    """The bundled sample config (CloudTrail files, an sshd log and a static inventory)."""
    return Path(str(resources.files("agent") / "sample" / "config.yaml"))


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file.", exists=False, dir_okay=False),
]
SampleOpt = Annotated[
    bool, typer.Option("--sample", help="Use the bundled sample data (no cloud credentials).")
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (sqlite:///path.db or postgresql://...). Overrides the config's 'store'.",
        envvar="CHIPWARDEN_STORE",
    ),
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format", "-f", help="Output format (default: table on a terminal, jsonl otherwise)."
    ),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write results to this file.")
]


def _load(
    config: Path | None, sample: bool, store: str | None
) -> tuple[AppConfig, YamlDocument | None]:
    if config and sample:
        raise UsageError("use either --config or --sample, not both")
    path = sample_config_path() if sample else config
    if path is not None and not path.exists():
        raise UsageError(f"{path}: config file not found")
    cfg, doc = load_config(path, overrides={"store": store})
    if sample and store is None:
        # The sample's data lives in site-packages; its store belongs in the current folder.
        cfg = cfg.model_copy(update={"store": "sqlite:///chipwarden.db"})
    return cfg, doc


def _format(fmt: OutputFormat | None, output: Path | None) -> OutputFormat:
    if fmt is not None:
        return fmt
    return OutputFormat.TABLE if output is None and sys.stdout.isatty() else OutputFormat.JSONL


def _open_out(stack: ExitStack, output: Path | None) -> TextIO:
    if output is None:
        return sys.stdout
    return stack.enter_context(output.open("w", encoding="utf-8", newline=""))


def _setup_logging(log_format: str, log_level: str) -> None:
    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure_logging(fmt=fmt, level=log_level)


LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="Log format on stderr: console or json.")
]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")]


@app.command()
def audit(
    config: ConfigOpt = None,
    sample: SampleOpt = False,
    store: StoreOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option("--fail-on", help="Exit 3 when an open finding is at or above this."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Start of the window: a duration (24h, 7d) or an ISO time. "
            "Files are read whole unless given; live sources resume from their "
            "checkpoint (or the last 24h).",
        ),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the window.")] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on a terminal.")
    ] = True,
    log_format: LogFormatOpt = "console",
    log_level: LogLevelOpt = "warning",
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Read only shard I of N (e.g. 0/4) of the work units (account x region x "
            "source x day); run N of them at once against one PostgreSQL store.",
            envvar="CHIPWARDEN_SHARD",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="Number of shards; this one's index comes from $JOB_COMPLETION_INDEX "
            "(a Kubernetes Indexed Job).",
        ),
    ] = None,
) -> None:
    """Collect sessions, evaluate policies, store findings and print the flagged sessions."""
    _setup_logging(log_format, log_level)
    part = resolve_shard(shard=shard, shards=shards, environ=os.environ)
    cfg, doc = _load(config, sample, store)
    plugins = build_plugins(cfg, doc=doc, clock=_now)
    engine = build_engine(cfg, clock=_now)
    classifier = build_classifier(cfg)
    window = build_window(since=since, until=until, clock=_now)
    out_fmt = _format(fmt, output)
    with ExitStack() as stack:
        stop_requested = stack.enter_context(_sigterm_drain())
        enricher = stack.enter_context(GeoEnricher.from_config(cfg.geo, base_dir=cfg.base_dir))
        db = stack.enter_context(open_store(cfg.store))
        hooks = build_audit_hooks(config=cfg, doc=doc, store=db, clock=_now)
        bar = _progress(stack) if progress and err.is_terminal else None
        result = run_audit(
            plugins=plugins,
            store=db,
            engine=engine,
            enricher=enricher,
            classifier=classifier,
            window=window,
            clock=_now,
            progress=bar,
            should_stop=stop_requested,
            context_providers=_detection_context(cfg, db),
            finding_hook=hooks.finding_hook,
            after_run=hooks.after_run,
            shard=part,
            run_id=f"{uuid.uuid4().hex[:12]}-{part.index}of{part.count}" if part.active else None,
        )
        out = _open_out(stack, output)
        render_findings(result.findings, out_fmt, out, title="chipwarden: flagged sessions")
    _summary(result)
    raise typer.Exit(_exit_code(result, fail_on))


def _progress(stack: ExitStack):  # type: ignore[no-untyped-def]
    from rich.progress import Progress, SpinnerColumn, TextColumn

    bar = stack.enter_context(
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True)
    )
    task = bar.add_task("reading sources", total=None)

    def update(unit: str, n: int) -> None:
        bar.update(task, description=f"read {unit} ({n} records)")

    return update


def _summary(result: AuditResult) -> None:
    run, c = result.run, result.run.counts
    err.print(
        f"run {run.id}: {c.sessions} sessions from {len(run.sources)} sources, "
        f"{c.findings} findings ({c.new_findings} new), {c.ignored} records ignored, "
        f"{c.quarantined} quarantined; status [bold]{run.status.value}[/]"
    )
    for e in run.scope_errors:
        err.print(f"[red]scope error[/] {e.source} {e.scope}: {e.message}")
        if e.remediation:
            err.print(f"  hint: {e.remediation}")
    for q in run.quarantined[:20]:
        err.print(f"[yellow]quarantined[/] {q.locator}:{q.position or ''} {q.reason}")
    if c.quarantined > 20:
        err.print(f"  ... and {c.quarantined - 20} more quarantined records")


@contextmanager
def _sigterm_drain() -> Iterator[Callable[[], bool]]:
    """While open, SIGTERM only asks the audit to stop after its current batch is committed;
    a second SIGTERM terminates at once. Yields the "stop requested?" check."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set  # signal handlers can only be installed from the main thread
        return

    def on_sigterm(_signum: int, _frame: object) -> None:
        requested.set()  # nothing else here: the handler may run between any two bytecodes
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_code(result: AuditResult, fail_on: Severity | None) -> int:
    if any(e.code == "interrupted" for e in result.run.scope_errors):
        return EXIT_INTERRUPTED
    if result.partial:
        return EXIT_PARTIAL
    if fail_on is not None and any(
        f.severity >= fail_on and f.status.value == "open" for f in result.findings
    ):
        return EXIT_FINDINGS
    return EXIT_OK


@app.command()
def inventory(
    config: ConfigOpt = None,
    sample: SampleOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    gpu_only: Annotated[bool, typer.Option("--gpu-only/--all", help="Only GPU instances.")] = True,
    log_format: LogFormatOpt = "console",
    log_level: LogLevelOpt = "warning",
) -> None:
    """List instances with accelerator model, count and export class."""
    _setup_logging(log_format, log_level)
    cfg, doc = _load(config, sample, None)
    plugins = build_plugins(cfg, doc=doc, clock=_now)
    classifier = build_classifier(cfg)
    ctx = CollectContext(window=AuditWindow(since=None, until=None), clock=_now)
    index = collect_inventory(plugins, ctx)
    rows = []
    for inst in index:
        if gpu_only and not inst.has_accelerators:
            continue
        classes = {a.model: classifier.classify(a.model) for a in inst.accelerators}
        rows.append(instance_to_dict(inst, classes))
    table = Table(title="GPU inventory", header_style="bold")
    for col in ("Provider", "Account", "Region", "Instance", "Type", "Accelerators"):
        table.add_column(col)
    for r in rows:
        accs = (
            ", ".join(
                f"{a['count']:g}x {a['model']} [{a['export_class']}]" for a in r["accelerators"]
            )
            or "none"
        )
        table.add_row(
            *map(
                escape,
                (
                    r["provider"],
                    r["account"],
                    r["region"] or "-",
                    r["instance_id"],
                    r["instance_type"] or "-",
                    accs,
                ),
            ),
        )
    with ExitStack() as stack:
        render_records(rows, _format(fmt, output), _open_out(stack, output), table=table)
    for e in ctx.scope_errors:
        err.print(f"[red]scope error[/] {e.source} {e.scope}: {e.message}")
    raise typer.Exit(EXIT_PARTIAL if ctx.scope_errors or ctx.quarantined_total else EXIT_OK)


@ip_app.command("lookup")
def ip_lookup(
    ips: Annotated[list[str], typer.Argument(help="IP addresses (or any source value).")],
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Evaluate list membership at this ISO date.")
    ] = None,
) -> None:
    """Enrich IPs and show which jurisdiction lists their location is on."""
    cfg, _ = _load(config, False, None)
    engine = build_engine(cfg, clock=_now)
    when = datetime.fromisoformat(at).replace(tzinfo=UTC) if at else _now()
    with GeoEnricher.from_config(cfg.geo, base_dir=cfg.base_dir) as enricher:
        intel = enricher.lookup(ips)
    rows = []
    for ip in intel:
        rec = intel_to_dict(ip)
        rec["lists"] = list(engine.lists_for(ip, when))  # type: ignore[attr-defined]
        rows.append(rec)
    table = Table(title="IP intelligence", header_style="bold")
    for col in ("Address", "Kind", "Country", "Subdivision", "ASN", "Lists", "Source / reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = (
            r["address"],
            r["kind"],
            r["country"] or "-",
            r["subdivision"] or "-",
            f"AS{r['asn']} {r['asn_org'] or ''}" if r["asn"] else "-",
            ", ".join(r["lists"]) or "-",
            r["unknown_reason"] or "; ".join(r["source"]),
        )
        table.add_row(*map(escape, cells))
    render_records(rows, _format(fmt, None), sys.stdout, table=table)


@policy_app.command("validate")
def policy_validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Policy pack files or folders (default: the config's packs)."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate policy packs; every problem is printed as file:line: key: message."""
    cfg, _ = _load(config, False, None)
    if files:
        from agent import registry

        engine_cls = registry.policy_engines.load(cfg.policy_engine)
        paths: list[Path] = []
        for f in files:
            paths.extend(sorted(f.glob("*.y*ml")) if f.is_dir() else [f])
        problems = engine_cls.validate_files(paths)
        if problems:
            for p in problems:
                err.print(p, markup=False, highlight=False)
            raise typer.Exit(EXIT_USAGE)
        refs = [str(p) for p in paths]
    else:
        refs = cfg.policies
    engine = build_engine(cfg, clock=_now, refs=refs)
    policies = engine.describe()
    typer.echo(f"OK: {len(policies)} policies valid (bundle revision {engine.revision})")


@findings_app.command("list")
def findings_list(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    status: Annotated[str | None, typer.Option("--status", help="open, resolved, ...")] = None,
    severity: Annotated[
        Severity | None, typer.Option("--severity", help="Minimum severity.")
    ] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Policy id.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 1000,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
) -> None:
    """Read stored findings back (most severe and most recent first)."""
    cfg, _ = _load(config, False, store)
    with ExitStack() as stack:
        db = stack.enter_context(open_store(cfg.store))
        found = db.list_findings(
            status=status, min_severity=severity, policy_id=policy, limit=limit
        )
        render_findings(
            found,
            _format(fmt, output),
            _open_out(stack, output),
            title=f"stored findings ({len(found)})",
        )


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv``; returns the exit code (ChipwardenError -> its code + hint)."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except ChipwardenError as exc:
        sys.stderr.write(f"error ({exc.code}): {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"hint: {exc.hint}\n")
        return exc.exit_code
    return EXIT_OK


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


def _register_service_commands() -> None:
    from agent.cli_service import register_commands

    register_commands(app)


_register_service_commands()


def _register_policy_commands() -> None:
    from agent.cli_policy import register_commands

    register_commands(policy_app)


_register_policy_commands()


def _register_watch_command() -> None:
    from agent.cli_watch import register_commands as register_watch

    register_watch(app)


_register_watch_command()


def _detection_context(cfg: AppConfig, db: SqlStore) -> list[ContextProvider]:
    """Ownership and principal-history context for ``audit`` (agent/cli_detection.py)."""
    from agent.cli_detection import build_context_providers

    return build_context_providers(cfg, store=db)


def _register_detection_commands() -> None:
    from agent.cli_detection import register_commands as register_detection

    register_detection(app, policy_app)


_register_detection_commands()
