"""``chipwarden watch``: the continuous mode, registered on the main CLI app.

Exit codes: 0 stopped by SIGTERM/SIGINT (the batch in progress committed, offsets saved);
2 usage/config error; with ``--once``, 4 when a source failed or records were quarantined.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from agent.config import load_config
from agent.errors import UsageError
from agent.follow import MAX_CHUNK_BYTES
from agent.logging import configure_logging
from agent.models import AuditRun, RunStatus
from agent.watch import WatchOptions, review_hooks, run_watch, stop_on_signals

__all__ = ["register_commands", "watch"]

EXIT_OK, EXIT_PARTIAL = 0, 4


def _now() -> datetime:
    return datetime.now(UTC)


def watch(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="YAML config file.", dir_okay=False)
    ],
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL; overrides the config.", envvar="CHIPWARDEN_STORE"),
    ] = None,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", min=1.0, help="Seconds between polls of cloud sources."),
    ] = 60.0,
    follow_interval: Annotated[
        float,
        typer.Option(
            "--follow-interval", min=0.05, help="Seconds between looks at idle followed files."
        ),
    ] = 0.5,
    from_end: Annotated[
        bool,
        typer.Option(
            "--from-end",
            help="Files seen for the first time are followed from their end, not read whole "
            "(saved offsets always win).",
        ),
    ] = False,
    batch_bytes: Annotated[
        int,
        typer.Option(
            "--batch-bytes",
            min=4096,
            help="Most bytes of a followed file read, evaluated and committed as one batch.",
        ),
    ] = MAX_CHUNK_BYTES,
    once: Annotated[
        bool,
        typer.Option("--once", help="Read what is new once, then exit (for cron and tests)."),
    ] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log format on stderr: console or json.")
    ] = "console",
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning, error.")
    ] = "info",
) -> None:
    """Follow log files like tail -F and poll cloud sources; store and notify findings as
    sessions appear. SIGTERM/SIGINT finish the batch in progress, save offsets and exit 0."""
    configure_logging(fmt="json" if log_format == "json" else "console", level=log_level)
    if not config.exists():
        raise UsageError(f"{config}: config file not found")
    cfg, doc = load_config(config, overrides={"store": store})
    options = WatchOptions(
        follow_interval=follow_interval,
        poll_interval=poll_interval,
        list_interval=min(5.0, poll_interval),
        from_end=from_end,
        max_chunk_bytes=batch_bytes,
        until_idle=once,
    )
    with stop_on_signals(threading.Event()) as stop:
        run = run_watch(
            cfg,
            doc=doc,
            stop=stop,
            clock=_now,
            options=options,
            hooks=review_hooks(cfg, doc, clock=_now),
        )
    _summary(run)
    partial = run.status is RunStatus.PARTIAL
    raise typer.Exit(EXIT_PARTIAL if once and partial else EXIT_OK)


def _summary(run: AuditRun) -> None:
    c = run.counts
    sys.stderr.write(
        f"watch {run.id}: {c.read} records read, {c.sessions} sessions (with updates), "
        f"{c.findings} findings ({c.new_findings} new), {c.quarantined} quarantined, "
        f"{len(run.scope_errors)} scope errors; status {run.status.value}\n"
    )
    for e in run.scope_errors:
        sys.stderr.write(f"scope error {e.source} {e.scope}: {e.message}\n")


def register_commands(app: typer.Typer) -> None:
    """Add ``watch`` to ``app``."""
    app.command("watch")(watch)
