"""SIGKILL at random points never loses or duplicates anything (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.reliability.crashlab import TRIALS, Baseline, UrlFactory, run_trials, snapshot, summarize
from tests.reliability.launchers import LauncherPool, ScriptLauncher
from tests.reliability.workload import CKPT_SCOPE, Workload


def test_killed_audits_rerun_to_exactly_the_clean_runs_findings_sessions_and_checkpoints(
    workload: Workload,
    store_kind: str,
    new_url: UrlFactory,
    pool: LauncherPool,
    baseline: Baseline,
    tmp_path: Path,
    report: Callable[[str, dict[str, Any]], None],
) -> None:
    base = baseline
    assert base.snap.findings and base.snap.sessions, "the workload must produce findings"
    assert sum(k.startswith(CKPT_SCOPE) for k in base.snap.checkpoints) == 2
    assert base.exit_code == 4  # the workload carries malformed records: partial, by design

    script_url = new_url()
    script = ScriptLauncher().run(workload, script_url, log=tmp_path / "script.log")
    same = snapshot(script_url)
    assert (script.exit_code, same.findings, same.sessions, same.checkpoints) == (
        base.exit_code,
        base.snap.findings,
        base.snap.sessions,
        base.snap.checkpoints,
    ), "a forked run must do exactly what the console script does"

    trials = run_trials(
        pool=pool,
        workload=workload,
        urls=[new_url() for _ in range(TRIALS)],
        base=base,
        logs=tmp_path / "logs",
        store=store_kind,
    )

    figures = summarize(store_kind, base, trials)
    report(f"crash-{store_kind}", figures)
    assert figures["problems"] == []
    assert figures["sigkills_sent"] >= TRIALS // 2, "most kills must land before the run ends"
    assert figures["kills_mid_write"] > 0, "some kill must land between two committed batches"
