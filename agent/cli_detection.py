"""Detection commands: ``policy test DIR`` (like ``opa test``), ``replay --since 90d --policy
FILE`` (what a candidate pack would change, writing nothing) and ``data update --from DIR``;
plus :func:`build_context_providers`, the ownership and history context of an audit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agent import registry
from agent.assembly import build_classifier, build_engine, build_plugins
from agent.config import AppConfig
from agent.contracts import AuditWindow, CollectContext, PolicyEngine
from agent.data_update import update_reputation_data
from agent.enrich import GeoEnricher
from agent.enrich.reputation import default_user_data_dir
from agent.errors import ConfigError, UsageError
from agent.history import HistoryContext, HistorySettings, HistoryStore
from agent.history.geo import load_working_hours
from agent.inventory_index import InventoryIndex
from agent.models import Decision, EvaluationInput
from agent.output import OutputFormat, render_records
from agent.ownership import OwnershipContext, Screener, load_csl, load_ownership
from agent.pipeline import ContextProvider, Evaluator, collect_inventory
from agent.registry import Registry
from agent.store import SqlStore, open_store
from agent.window import build_window

__all__ = ["build_context_providers", "policy_testers", "register_commands", "replay_changes"]

policy_testers = Registry("policy_testers")
"""Engine name -> ``run_cases(engine, path)`` (entry points ``chipwarden.policy_testers``)."""

EXIT_TEST_FAILED = 1
_REPLAY_PAGE = 500

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file.", dir_okay=False)
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (overrides the config).", envvar="CHIPWARDEN_STORE"),
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option("--format", "-f", help="Output format (default: table on a terminal)."),
]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")]


def build_context_providers(
    cfg: AppConfig, *, store: SqlStore | None, record: bool = True
) -> list[ContextProvider]:
    """Ownership (+ screening) and principal history for an audit; ``record=False`` reads
    history without writing it (replay)."""
    providers: list[ContextProvider] = []
    if cfg.screening is not None and not cfg.ownership:
        raise ConfigError(
            "screening needs ownership files (the owner names come from them)",
            location=f"{cfg.origin}: screening",
            hint="add 'ownership: [{path: owners.csv}]' or remove 'screening'",
        )
    if cfg.ownership:
        index = load_ownership([o.path for o in cfg.ownership])
        screener = None
        if cfg.screening is not None:
            entries = load_csl(cfg.screening.path)
            screener = Screener(entries, threshold=cfg.screening.threshold)
        providers.append(OwnershipContext(index=index, screener=screener))
    if cfg.history.enabled and store is not None:
        h = cfg.history
        settings = HistorySettings(
            keep=h.keep,
            max_speed_kmh=h.max_speed_kmh,
            min_sessions=h.min_sessions,
            hours_share=h.hours_share,
            zones=load_working_hours(),
        )
        history = HistoryStore(store.engine, keep=h.keep)
        providers.append(HistoryContext(store=history, settings=settings, record=record))
    return providers


# --- replay ---------------------------------------------------------------------------------


def _key(d: Decision) -> str:
    return d.policy_id


def replay_changes(
    items: Sequence[EvaluationInput], *, baseline: PolicyEngine, candidate: PolicyEngine
) -> Iterator[dict[str, Any]]:
    """One record per decision that is new, removed or changes severity under ``candidate``.

    Only packs the candidate defines are compared, so other configured packs never show up
    as "removed".
    """
    packs = {d["pack"] for d in candidate.describe()}
    for item in items:
        old = {_key(d): d for d in baseline.evaluate(item) if d.pack in packs}
        new = {_key(d): d for d in candidate.evaluate(item)}
        s = item.session
        base = {
            "session_id": s.session_id,
            "started_at": s.started_at.isoformat(),
            "provider": s.provider,
            "account": s.account,
            "principal": s.principal,
            "source_ip": s.source_ip,
            "country": item.intel.country,
        }
        for pid in sorted(set(old) | set(new)):
            before, after = old.get(pid), new.get(pid)
            if before and after and before.severity == after.severity:
                continue
            change = "new" if before is None else "removed" if after is None else "severity"
            shown = after or before
            assert shown is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
            yield {
                "change": change,
                "policy_id": pid,
                "old_severity": before.severity.value if before else None,
                "new_severity": after.severity.value if after else None,
                **base,
                "reasons": list(shown.reasons[:3]),
            }


def _replay_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for col in ("Change", "Policy", "Severity", "Started", "Principal", "Source", "Reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        sev = f"{r['old_severity'] or '-'} -> {r['new_severity'] or '-'}"
        src = f"{r['source_ip'] or '-'} ({r['country'] or '?'})"
        cells = (
            r["change"],
            r["policy_id"],
            sev,
            r["started_at"],
            r["principal"] or "-",
            src,
            (r["reasons"] or [""])[0],
        )
        table.add_row(*map(escape, map(str, cells)))
    return table


def register_commands(app: typer.Typer, policy_app: typer.Typer) -> None:
    """Add ``policy test``, ``replay`` and ``data update`` to the CLI."""
    from agent import cli  # the main module's helpers (loaded by now)

    data_app = typer.Typer(help="Reputation data (Tor, cloud ranges, ASN lists).")
    app.add_typer(data_app, name="data")

    @policy_app.command("test")
    def policy_test(
        folder: Annotated[
            str, typer.Argument(help="Folder of packs and <pack>.cases.yaml, or 'builtin'.")
        ],
        config: ConfigOpt = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show passes.")] = False,
        require_coverage: Annotated[
            bool,
            typer.Option(
                "--require-coverage/--no-require-coverage",
                help="Fail when a policy has no case.",
            ),
        ] = True,
    ) -> None:
        """Run every policy case in FOLDER (exit 1 on a failure or an uncovered policy)."""
        cfg, _ = cli._load(config, False, None)
        engine_cls = registry.policy_engines.load(cfg.policy_engine)
        run_cases = policy_testers.load(cfg.policy_engine)
        if folder == "builtin":
            package = engine_cls.__module__.rpartition(".")[0]
            root = Path(str(resources.files(package) / "packs"))
        else:
            root = Path(folder).expanduser()
        if not root.is_dir():
            raise UsageError(f"{root}: not a folder", hint="give a folder of packs and cases")
        engine = build_engine(cfg, clock=cli._now, refs=[str(root)])
        case_files = sorted(root.glob("*.cases.y*ml"))
        if not case_files:
            raise UsageError(f"{root}: no *.cases.yaml files", hint="see policies/packs/README.md")
        passed = failed = 0
        covered: dict[str, set[str]] = {}
        for path in case_files:
            for result in run_cases(engine, path):
                case = result.case
                if case.covers:
                    covered.setdefault(case.covers, set()).add(case.kind or "pass")
                if result.passed:
                    passed += 1
                    if verbose:
                        typer.echo(str(result))
                else:
                    failed += 1
                    typer.echo(str(result))
        uncovered = [row["id"] for row in engine.describe() if row["id"] not in covered]
        for row in engine.describe():
            missing = {"pass", "fail", "indeterminate"} - covered.get(row["id"], set())
            if row["id"] in covered and missing:
                cli.err.print(f"note: {row['id']} has no {', '.join(sorted(missing))} case")
        for pid in uncovered:
            cli.err.print(f"[red]uncovered[/] {pid}: no case covers it")
        total = len(engine.describe())
        typer.echo(
            f"{passed} passed, {failed} failed; {total - len(uncovered)}/{total} policies "
            f"covered (bundle revision {engine.revision})"
        )
        bad = failed or (require_coverage and uncovered)
        raise typer.Exit(EXIT_TEST_FAILED if bad else cli.EXIT_OK)

    @app.command("replay")
    def replay(
        policy: Annotated[
            list[str], typer.Option("--policy", "-p", help="Candidate pack file/folder.")
        ],
        since: Annotated[str, typer.Option("--since", help="e.g. 90d or an ISO time.")] = "90d",
        until: Annotated[str | None, typer.Option("--until", help="End of the window.")] = None,
        config: ConfigOpt = None,
        store: StoreOpt = None,
        fmt: FormatOpt = None,
        output: OutputOpt = None,
        inventory: Annotated[
            bool,
            typer.Option("--inventory/--no-inventory", help="Collect the configured inventory."),
        ] = True,
    ) -> None:
        """Re-evaluate stored sessions under a candidate pack and print what would change
        against the configured packs (new, removed, severity changed). Writes nothing."""
        cfg, doc = cli._load(config, False, store)
        baseline = build_engine(cfg, clock=cli._now)
        candidate = build_engine(cfg, clock=cli._now, refs=policy)
        window = build_window(since=since, until=until, clock=cli._now)
        index = InventoryIndex()
        if inventory:
            plugins = build_plugins(cfg, doc=doc, clock=cli._now)
            ctx = CollectContext(window=AuditWindow(since=None, until=None), clock=cli._now)
            index = collect_inventory(plugins, ctx)
        rows: list[dict[str, Any]] = []
        replayed = 0
        with ExitStack() as stack:
            enricher = stack.enter_context(GeoEnricher.from_config(cfg.geo, base_dir=cfg.base_dir))
            db = stack.enter_context(open_store(cfg.store))
            evaluator = Evaluator(
                engine=candidate,
                enricher=enricher,
                classifier=build_classifier(cfg),
                inventory=index,
                clock=cli._now,
                context_providers=build_context_providers(cfg, store=db, record=False),
            )
            page: list[Any] = []
            sessions = db.list_sessions(since=window.since, until=window.until)
            for session in sessions:
                page.append(session)
                if len(page) >= _REPLAY_PAGE:
                    rows += replay_changes(
                        evaluator.inputs(page), baseline=baseline, candidate=candidate
                    )
                    replayed += len(page)
                    page = []
            if page:
                rows += replay_changes(
                    evaluator.inputs(page), baseline=baseline, candidate=candidate
                )
                replayed += len(page)
            out_fmt = cli._format(fmt, output)
            title = f"replay: {len(rows)} change(s) over {replayed} stored sessions"
            render_records(
                rows, out_fmt, cli._open_out(stack, output), table=_replay_table(rows, title)
            )
        counts = {
            k: sum(1 for r in rows if r["change"] == k) for k in ("new", "removed", "severity")
        }
        cli.err.print(
            f"replayed {replayed} sessions since {window.since:%Y-%m-%d}: {counts['new']} new, "
            f"{counts['removed']} removed, {counts['severity']} severity changed "
            f"(revision {baseline.revision} -> {candidate.revision}); nothing was written"
        )

    @data_app.command("update")
    def data_update(
        source: Annotated[Path, typer.Option("--from", help="Folder with the fetched files.")],
        target: Annotated[
            Path | None, typer.Option("--to", help="Data folder (default: user data folder).")
        ] = None,
        day: Annotated[
            str | None, typer.Option("--date", help="Date for undated files (YYYY-MM-DD).")
        ] = None,
    ) -> None:
        """Import Tor exit lists, cloud ranges and ASN lists from DIR (no network access)."""
        try:
            default = date.fromisoformat(day) if day else None
        except ValueError as exc:
            raise UsageError(f"--date: {day!r} is not YYYY-MM-DD") from exc
        dest = target or default_user_data_dir()
        report = update_reputation_data(
            source=source, target=dest, default_date=default, today=lambda: cli._now().date()
        )
        for entry in report.imported:
            typer.echo(f"imported {entry.kind} {entry.date.isoformat()}: {entry.path}")
        for line in report.skipped:
            cli.err.print(f"skipped {line}", markup=False)
        for line in report.rejected:
            cli.err.print(f"[red]rejected[/] {escape(line)}")
        typer.echo(f"{len(report.imported)} file(s) imported into {dest}")
        raise typer.Exit(cli.EXIT_PARTIAL if report.rejected else cli.EXIT_OK)

    del policy_test, replay, data_update  # registered on the apps above
