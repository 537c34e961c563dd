"""SIGTERM drains: the audit commits the batch in progress, saves the run as interrupted
(partial) and exits 143; the next run completes what was missed."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.assembly import build_classifier, build_engine, build_plugins
from agent.cli import EXIT_INTERRUPTED
from agent.config import load_config
from agent.contracts import AuditWindow
from agent.enrich import GeoEnricher
from agent.models import RunStatus
from agent.pipeline import run_audit
from agent.store import open_store
from tests.reliability.crashlab import Baseline, UrlFactory, check_after_kill, snapshot
from tests.reliability.launch import LogWatch, PopenChild, audit_argv, log_tail, wait_for
from tests.reliability.launchers import CHIPWARDEN, LauncherPool, env_with_repo
from tests.reliability.workload import Workload, WorkloadSize


def now() -> datetime:
    return datetime.now(UTC)


def _terminate_after(workload: Workload, url: str, log: Path, *, commits: int) -> int:
    """Start the console script, SIGTERM it once ``commits`` batches are logged."""
    with log.open("wb") as err:
        proc = subprocess.Popen(  # noqa: S603
            [str(CHIPWARDEN), *audit_argv(workload.config, url)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env_with_repo(),
            cwd=workload.root,
        )
        watch = LogWatch(log)
        try:
            assert wait_for(PopenChild(proc), watch, time.monotonic(), commits) is not None
        finally:
            watch.close()
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=120)


def test_sigterm_mid_run_commits_whole_batches_saves_an_interrupted_run_and_exits_143(
    workload: Workload,
    new_url: UrlFactory,
    baseline: Baseline,
    pool: LauncherPool,
    tmp_path: Path,
) -> None:
    base = baseline
    url = new_url()

    code = _terminate_after(workload, url, tmp_path / "term.log", commits=2)

    assert code == EXIT_INTERRUPTED == 143, log_tail(tmp_path / "term.log")
    snap = snapshot(url)
    run = snap.last_finished_run()
    assert run is not None and run.status is RunStatus.PARTIAL
    assert [e.code for e in run.scope_errors] == ["interrupted"]
    assert run.counts.sessions == len(snap.sessions) < len(base.snap.sessions)
    assert check_after_kill(base, snap) == []

    with pool.borrow() as launcher:
        rerun = launcher.run(workload, url, log=tmp_path / "rerun.log")
    done = snapshot(url)
    assert rerun.exit_code == base.exit_code, log_tail(tmp_path / "rerun.log")
    assert (done.findings, done.sessions, done.checkpoints) == (
        base.snap.findings,
        base.snap.sessions,
        base.snap.checkpoints,
    )


def test_sigterm_before_the_first_batch_still_records_the_run_as_interrupted(
    workload: Workload, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'early.db'}"

    code = _terminate_after(workload, url, tmp_path / "early.log", commits=0)

    assert code == EXIT_INTERRUPTED, log_tail(tmp_path / "early.log")
    run = snapshot(url).last_finished_run()
    assert run is not None and run.status is RunStatus.PARTIAL
    assert "interrupted" in {e.code for e in run.scope_errors}


def test_run_audit_stops_after_the_batch_in_progress_when_asked(
    workload: Workload, tmp_path: Path
) -> None:
    cfg, doc = load_config(workload.config)
    committed: list[int] = []
    with (
        open_store(f"sqlite:///{tmp_path / 'inproc.db'}") as store,
        GeoEnricher.from_config(cfg.geo, base_dir=cfg.base_dir) as enricher,
    ):
        result = run_audit(
            plugins=build_plugins(cfg, doc=doc, clock=now),
            store=store,
            engine=build_engine(cfg, clock=now),
            enricher=enricher,
            classifier=build_classifier(cfg),
            window=AuditWindow(since=None, until=None),
            clock=now,
            progress=lambda _unit, n: committed.append(n),
            should_stop=lambda: bool(committed),  # stop at the first chance
        )
        stored = list(store.list_sessions())

    assert result.partial
    interrupted = [e for e in result.run.scope_errors if e.code == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].remediation
    first_source = WorkloadSize().files_per_part
    assert 1 <= len(committed) <= first_source, "no source is read after the stop"
    assert result.run.counts.sessions == len(stored) > 0
