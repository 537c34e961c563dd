"""Service-side commands, registered on the main CLI: ``serve``, ``token``, ``exceptions`` and
``findings review | verify-trail | export``. Thin wrappers over the services the API uses.

Exit codes as in ``agent.cli``, plus 5: ``findings verify-trail`` found a broken chain.
"""

from __future__ import annotations

import getpass
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import UsageError
from agent.models import FindingStatus, Severity
from agent.review.models import ExceptionScope, ResolveReason, ReviewAction, Role
from agent.review.service import ReviewService
from agent.review.workflow import ReviewRequest

__all__ = ["EXIT_TRAIL_BROKEN", "register_commands"]

EXIT_TRAIL_BROKEN = 5

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (for its 'store').")
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (overrides the config).", envvar="CHIPWARDEN_STORE"),
]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Name recorded in the trail (default: cli:$USER).")
]


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # pragma: no cover - no user database in some containers
        return "cli"


@contextmanager
def _service(config: Path | None, store: str | None) -> Iterator[ReviewService]:
    """Open the configured store and a ReviewService (pepper from CHIPWARDEN_TOKEN_PEPPER)."""
    from agent.config import load_config
    from agent.server.settings import ServerSettings
    from agent.store import open_store

    if config is not None and not config.exists():
        raise UsageError(f"{config}: config file not found")
    settings = ServerSettings()
    cfg, _ = load_config(config, overrides={"store": store})
    with open_store(cfg.store) as db:
        yield ReviewService(
            db,
            clock=_now,
            pepper=settings.pepper(),
            exception_max_days=settings.exception_max_days,
        )


def _parse_when(value: str) -> datetime:
    """``30d`` / ``12h`` from now, or an ISO date/time (UTC if no offset)."""
    text = value.strip()
    units = {"d": "days", "h": "hours", "w": "weeks"}
    if text[:-1].isdigit() and text[-1:] in units:
        return _now() + timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"cannot read {value!r} as a time", hint="use 30d, 12h, 2w or an ISO date"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- serve ----------------------------------------------------------------------------


def serve(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port.")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="json or console.")] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="info, warning, ...")] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch/--no-watch",
            help="Also run the watch loop of the config (follow logs, poll clouds) in this "
            "process, for sidecar deployments.",
        ),
    ] = False,
) -> None:
    """Run the HTTP API and web console (settings from CHIPWARDEN_* env vars, see docs/api.md)."""
    import uvicorn

    from agent.logging import configure_logging
    from agent.server.app import create_app
    from agent.server.settings import ServerSettings

    overrides = {
        k: v
        for k, v in {
            "config": config,
            "store": store,
            "host": host,
            "port": port,
            "log_format": log_format,
            "log_level": log_level,
        }.items()
        if v is not None
    }
    settings = ServerSettings(**overrides)  # type: ignore[arg-type]
    configure_logging(
        fmt="json" if settings.log_format == "json" else "console", level=settings.log_level
    )
    if not settings.pepper():
        raise UsageError(
            "CHIPWARDEN_TOKEN_PEPPER is not set",
            hint="the server needs the same pepper `chipwarden token create` used",
        )
    app = create_app(settings)
    stop = threading.Event()
    watcher = _start_watch(settings, stop) if watch else None
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
        )
    finally:
        stop.set()  # uvicorn handled SIGTERM: drain the watch loop and save its offsets
        if watcher is not None:
            watcher.join(timeout=60)


def _start_watch(settings: Any, stop: threading.Event) -> threading.Thread:
    """Run ``chipwarden watch``'s loop for ``settings.config`` in a daemon thread."""
    from agent.config import load_config
    from agent.watch import review_hooks, run_watch

    if settings.config is None:
        raise UsageError("serve --watch needs a config (--config or CHIPWARDEN_CONFIG)")
    cfg, doc = load_config(Path(settings.config), overrides={"store": settings.store})

    def clock() -> datetime:
        return datetime.now(UTC)

    thread = threading.Thread(
        target=run_watch,
        args=(cfg,),
        kwargs={
            "doc": doc,
            "stop": stop,
            "clock": clock,
            "hooks": review_hooks(cfg, doc, clock=clock),
        },
        name="chipwarden-watch",
        daemon=True,
    )
    thread.start()
    return thread


# -- tokens ---------------------------------------------------------------------------

token_app = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    role: Annotated[Role, typer.Option("--role", help="viewer, reviewer or admin.")] = Role.VIEWER,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Create a token and print it ONCE on stdout (its id and role go to stderr)."""
    with _service(config, store) as svc:
        token, record = svc.tokens.create(name=name, role=role, created_by=_actor(actor))
    err.print(
        f"token {record.id} ({record.role.value}) for {record.name}; "
        "store it now, it is not shown again"
    )
    sys.stdout.write(token + "\n")


@token_app.command("list")
def token_list(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """List tokens (id, name, role, created, revoked); never the secrets."""
    with _service(config, store) as svc:
        tokens = svc.reviews.list_tokens()
    table = Table(title=f"API tokens ({len(tokens)})", header_style="bold")
    for col in ("Id", "Name", "Role", "Created (UTC)", "By", "Revoked"):
        table.add_column(col)
    for t in tokens:
        table.add_row(
            t.id,
            t.name,
            t.role.value,
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            t.created_by,
            t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "-",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from `token list`).")],
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Revoke a token (servers stop accepting it within their token cache time)."""
    with _service(config, store) as svc:
        if not svc.reviews.revoke_token(token_id, at=_now()):
            raise UsageError(f"token {token_id} does not exist or is already revoked")
    err.print(f"token {token_id} revoked")


# -- findings review / verify-trail / export -----------------------------------------


def findings_review(
    finding_id: Annotated[str, typer.Argument(help="Finding id.")],
    action: Annotated[ReviewAction, typer.Option("--action", help="acknowledge, assign, ...")],
    reason: Annotated[ResolveReason | None, typer.Option("--reason", help="With resolve.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="With assign.")] = None,
    note: Annotated[str, typer.Option("--note", help="Free text (required for comment).")] = "",
    config: ConfigOpt = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Record a review action on a finding (appended to the hash-chained trail)."""
    with _service(config, store) as svc:
        finding, entry = svc.review(
            finding_id,
            ReviewRequest(
                action=action,
                actor=_actor(actor),
                at=_now(),
                note=note,
                reason=reason,
                assignee=assignee,
            ),
        )
    out.print(f"{finding.id}: {entry.from_status} -> {finding.status.value} (trail #{entry.seq})")


def findings_verify_trail(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Recompute the review trail's hash chain; exit 5 at the first tampered entry."""
    with _service(config, store) as svc:
        report = svc.verify_trail()
    if report.ok:
        out.print(f"OK: review trail intact ({report.entries} entries, head #{report.head_seq})")
        return
    err.print(f"[red]review trail BROKEN[/] at entry {report.first_bad_seq}: {report.problem}")
    raise typer.Exit(EXIT_TRAIL_BROKEN)


def findings_export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, jsonl, ocsf or html.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this audit run.")] = None,
    status: Annotated[FindingStatus | None, typer.Option("--status")] = None,
    severity: Annotated[Severity | None, typer.Option("--severity", help="Minimum.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100_000,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """Export stored findings (HTML: a report for one run, with a world map and timeline)."""
    from agent.export import export_findings
    from agent.store.service_queries import FindingQuery

    with _service(config, store) as svc:
        query = FindingQuery(status=status, severity=severity, run_id=run_id)
        findings = svc.queries.page(query, limit=limit).items
        run = svc.store.get_run(run_id) if run_id else None
        if output is None:
            export_findings(findings, fmt, sys.stdout, run=run, generated_at=_now())
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                export_findings(findings, fmt, handle, run=run, generated_at=_now())
            err.print(f"wrote {len(findings)} findings to {output}")


# -- exceptions -----------------------------------------------------------------------

exceptions_app = typer.Typer(help="Exceptions (scoped, approved, expiring).", no_args_is_help=True)


@exceptions_app.command("add")
def exceptions_add(
    owner: Annotated[str, typer.Option("--owner")],
    approver: Annotated[str, typer.Option("--approver")],
    justification: Annotated[str, typer.Option("--justification")],
    expires: Annotated[str, typer.Option("--expires", help="30d, 2w or an ISO date (required).")],
    principal: Annotated[str | None, typer.Option("--principal")] = None,
    instance: Annotated[str | None, typer.Option("--instance")] = None,
    account: Annotated[str | None, typer.Option("--account")] = None,
    cidr: Annotated[str | None, typer.Option("--cidr")] = None,
    country: Annotated[str | None, typer.Option("--country")] = None,
    policy: Annotated[str | None, typer.Option("--policy")] = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Create an exception; open findings it matches become excepted (all trailed)."""
    from pydantic import ValidationError

    from agent.review.exceptions import ExceptionRequest

    try:
        request = ExceptionRequest(
            scope=ExceptionScope(
                principal=principal,
                instance=instance,
                account=account,
                cidr=cidr,
                country=country,
                policy=policy,
            ),
            owner=owner,
            approver=approver,
            justification=justification,
            expires_at=_parse_when(expires),
        )
    except ValidationError as exc:
        raise UsageError("; ".join(e["msg"] for e in exc.errors())) from exc
    with _service(config, store) as svc:
        outcome = svc.exceptions.create(request, actor=_actor(actor), origin="cli")
    out.print(
        f"{outcome.record.id}: expires {outcome.record.expires_at.isoformat()}, "
        f"{len(outcome.finding_ids)} finding(s) excepted"
    )


@exceptions_app.command("import")
def exceptions_import(
    path: Annotated[Path, typer.Argument(help="Reviewed YAML file with an 'exceptions:' list.")],
    config: ConfigOpt = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Create every exception in a YAML file (validated as a whole first, errors name lines)."""
    if not path.exists():
        raise UsageError(f"{path}: file not found")
    with _service(config, store) as svc:
        outcomes = svc.exceptions.import_file(path, actor=_actor(actor))
    for o in outcomes:
        out.print(f"{o.record.id}: {len(o.finding_ids)} finding(s) excepted")


@exceptions_app.command("list")
def exceptions_list(
    active: Annotated[bool, typer.Option("--active", help="Only those in force now.")] = False,
    config: ConfigOpt = None,
    store: StoreOpt = None,
) -> None:
    """List exceptions, soonest expiry first."""
    with _service(config, store) as svc:
        items = svc.exceptions.list(active_only=active)
        now = _now()
    table = Table(title=f"exceptions ({len(items)})", header_style="bold")
    for col in ("Id", "Scope", "Owner", "Approver", "Expires (UTC)", "State", "Justification"):
        table.add_column(col, overflow="fold")
    for e in items:
        scope = " ".join(f"{k}={v}" for k, v in e.scope.model_dump(exclude_none=True).items())
        table.add_row(
            e.id,
            scope,
            e.owner,
            e.approver,
            e.expires_at.strftime("%Y-%m-%d %H:%M"),
            "active" if e.active(now) else "expired",
            e.justification,
        )
    out.print(table)


@exceptions_app.command("expire")
def exceptions_expire(
    exception_id: Annotated[
        str | None, typer.Argument(help="End this one now (default: expire every due one).")
    ] = None,
    config: ConfigOpt = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Expire exceptions (one now, or all past their date) and re-flag their findings."""
    with _service(config, store) as svc:
        if exception_id:
            outcomes = [svc.exceptions.expire_now(exception_id, actor=_actor(actor))]
        else:
            outcomes = svc.exceptions.expire_due(actor=_actor(actor))
    for o in outcomes:
        out.print(f"{o.record.id}: expired, {len(o.finding_ids)} finding(s) flagged again")
    if not outcomes:
        out.print("no exception was due")


def register_commands(app: typer.Typer) -> None:
    """Add the service commands to ``app`` (the ``findings`` group must already exist)."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
    app.add_typer(exceptions_app, name="exceptions")
    findings = next((g.typer_instance for g in app.registered_groups if g.name == "findings"), None)
    if findings is None:  # pragma: no cover - agent.cli always defines it
        raise RuntimeError("the main CLI has no 'findings' group")
    findings.command("review")(findings_review)
    findings.command("verify-trail")(findings_verify_trail)
    findings.command("export")(findings_export)
