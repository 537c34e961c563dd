"""Crash harness: SIGKILL ``chipwarden audit`` at random points, rerun it, compare with a clean run.

A trial kills the audit once (every fourth trial twice: a crash during recovery), checks what
the dead process left behind (only whole batches, findings with their sessions, no checkpoint
ahead of its findings), reruns the audit to completion and compares the store with an
uninterrupted run: the same finding ids, no duplicate rows, no lost session, the same
checkpoints, and the rerun counts as new exactly the findings the killed run had not committed.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from agent.models import AuditRun, RunStatus
from agent.store import open_store
from tests.reliability.launch import Kill, log_tail
from tests.reliability.launchers import Launcher, LauncherPool
from tests.reliability.workload import CKPT_SCOPE

TRIALS = int(os.environ.get("CW_RELIABILITY_TRIALS", "20"))
"""Trials per store (20 in the default run; the report script runs more)."""

UrlFactory = Callable[[], str]


@dataclass(frozen=True)
class Snapshot:
    """What a store holds: session id -> unit, finding id -> session id, checkpoints, runs."""

    sessions: dict[str, str]
    findings: dict[str, str]
    checkpoints: dict[str, str]
    runs: list[AuditRun]
    duplicate_rows: int

    def last_finished_run(self) -> AuditRun | None:
        done = [r for r in self.runs if r.status is not RunStatus.RUNNING]
        return max(done, key=lambda r: r.started_at, default=None)


_OPEN_LOCK = threading.Lock()
"""open_store runs Alembic, whose module-global context is not thread-safe (two threads
migrating at once raise KeyError('script')), so worker threads open stores one at a time."""


def snapshot(url: str) -> Snapshot:
    """Read everything the harness compares (opening the store migrates a fresh database)."""
    with _OPEN_LOCK:
        opened = open_store(url)
    with opened as store:
        sessions = {
            s.session_id: s.evidence[0].locator if s.evidence else s.source
            for s in store.list_sessions()
        }
        findings = {f.id: f.session.session_id for f in store.list_findings(limit=10**7)}
        dup = 0
        with store.engine.connect() as conn:
            for table, column in (("findings", "id"), ("sessions", "session_id")):
                query = text(f"SELECT count(*) - count(DISTINCT {column}) FROM {table}")  # noqa: S608
                dup += int(conn.execute(query).scalar_one())
        return Snapshot(sessions, findings, store.list_checkpoints(), store.list_runs(1000), dup)


def _commit_gaps(log: Path) -> tuple[int, float]:
    """How many batch commits a JSON log shows, and the mean seconds between two."""
    times = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
            if event.get("event") == "store_batch_committed":
                times.append(datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    if len(times) < 2:
        raise AssertionError(f"fewer than two batch commits logged in {log}")
    return len(times), (times[-1] - times[0]).total_seconds() / (len(times) - 1)


@dataclass
class Baseline:
    """The uninterrupted run every trial is compared with."""

    snap: Snapshot
    exit_code: int
    startup: float
    commits: int
    gap: float
    units: dict[str, set[str]] = field(default_factory=dict)
    by_session: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def measure(cls, launcher: Launcher, workload: Any, url: str, log: Path) -> Baseline:
        out = launcher.run(workload, url, log=log)
        snap = snapshot(url)
        units: dict[str, set[str]] = defaultdict(set)
        for sid, unit in snap.sessions.items():
            units[unit].add(sid)
        by_session: dict[str, set[str]] = defaultdict(set)
        for fid, sid in snap.findings.items():
            by_session[sid].add(fid)
        commits, gap = _commit_gaps(log)
        startup = out.started_after or out.ran_for
        return cls(snap, out.exit_code, startup, commits, gap, units, by_session)

    def kill_point(self, phase: str, rng: random.Random) -> Kill:
        """Startup: anywhere before ``audit_started``. Work: after a random number of batch
        commits plus up to 1.5 commit gaps (so inside or between transactions); the count
        adapts to machine load where a fixed delay would not."""
        if phase == "startup":
            return ("startup", 0, rng.uniform(0.0, self.startup))
        return ("work", rng.randrange(self.commits), rng.uniform(0.0, 1.5 * self.gap))


@dataclass
class KillRecord:
    """Where one SIGKILL landed and what the store held afterwards."""

    phase: str
    after_commits: int
    delay: float
    killed: bool
    sessions_left: int
    findings_left: int
    checkpoints_left: int


@dataclass
class Trial:
    """One trial: its kills, the rerun and every invariant that failed (empty = passed)."""

    index: int
    store: str
    kills: list[KillRecord] = field(default_factory=list)
    rerun_exit: int | None = None
    rerun_new_findings: int | None = None
    problems: list[str] = field(default_factory=list)


def check_after_kill(base: Baseline, snap: Snapshot) -> list[str]:
    """What a dead audit may leave: whole batches, findings with their sessions, and no
    checkpoint ahead of its findings."""
    problems = []
    if extra := set(snap.sessions) - set(base.snap.sessions):
        problems.append(f"{len(extra)} sessions not in the clean run")
    if extra := set(snap.findings) - set(base.snap.findings):
        problems.append(f"{len(extra)} findings not in the clean run")
    for unit, ids in base.units.items():
        held = ids & set(snap.sessions)
        if held and held != ids:
            problems.append(f"batch {Path(unit).name} half committed ({len(held)}/{len(ids)})")
    for sid in snap.sessions:
        if missing := base.by_session.get(sid, set()) - set(snap.findings):
            problems.append(f"session {sid} committed without {len(missing)} of its findings")
    if orphans := [f for f, sid in snap.findings.items() if sid not in snap.sessions]:
        problems.append(f"{len(orphans)} findings committed without their session")
    for scope, value in snap.checkpoints.items():
        if not scope.startswith(CKPT_SCOPE):
            continue
        part = f"/ckpt/part-{scope.rsplit('-', 1)[-1]}/"
        for unit in (u for u in base.units if part in u and Path(u).name <= value):
            if not base.units[unit] <= set(snap.sessions):
                problems.append(f"checkpoint {scope}={value} is ahead of the findings of {unit}")
    return problems


def check_after_rerun(
    base: Baseline, before: Snapshot, snap: Snapshot, exit_code: int
) -> list[str]:
    """After a rerun the store must equal the clean run's, and count new findings once."""
    problems = []
    if exit_code != base.exit_code:
        problems.append(f"rerun exit code {exit_code}, clean run {base.exit_code}")
    if lost := set(base.snap.sessions) - set(snap.sessions):
        problems.append(f"{len(lost)} sessions lost")
    if extra := set(snap.sessions) - set(base.snap.sessions):
        problems.append(f"{len(extra)} sessions not in the clean run")
    missing = set(base.snap.findings) - set(snap.findings)
    extra = set(snap.findings) - set(base.snap.findings)
    if missing or extra:
        problems.append(f"finding ids differ: {len(missing)} missing, {len(extra)} extra")
    if snap.duplicate_rows:
        problems.append(f"{snap.duplicate_rows} duplicate rows")
    if snap.checkpoints != base.snap.checkpoints:
        problems.append(f"checkpoints {snap.checkpoints} != clean run {base.snap.checkpoints}")
    rerun = snap.last_finished_run()
    if rerun is None:
        return [*problems, "the rerun saved no finished run"]
    c = rerun.counts
    if c.read != c.sessions + c.ignored + c.quarantined:
        problems.append(f"rerun counts do not reconcile: {c}")
    expected_new = len(set(base.snap.findings) - set(before.findings))
    if c.new_findings != expected_new:
        problems.append(f"rerun counted {c.new_findings} new findings, expected {expected_new}")
    return problems


def run_trial(
    index: int,
    *,
    launcher: Launcher,
    workload: Any,
    url: str,
    base: Baseline,
    logs: Path,
    store: str,
    seed: int,
) -> Trial:
    """Kill once (every fourth trial twice), check after each kill, rerun, compare."""
    rng = random.Random(seed * 1000 + index)  # noqa: S311 - reproducible kill points
    trial = Trial(index=index, store=store)
    for k in range(2 if index % 4 == 3 else 1):
        phase = "startup" if index % 5 == 4 and k == 0 else "work"
        point = base.kill_point(phase, rng)
        out = launcher.run(workload, url, log=logs / f"t{index}-k{k}.log", kill=point)
        if not out.killed and out.exit_code != base.exit_code:
            log = logs / f"t{index}-k{k}.log"
            trial.problems.append(f"unkilled run exited {out.exit_code}: {log_tail(log)}")
        snap = snapshot(url)
        trial.kills.append(
            KillRecord(
                phase,
                point[1],
                round(point[2], 3),
                out.killed,
                len(snap.sessions),
                len(snap.findings),
                len(snap.checkpoints),
            )
        )
        trial.problems += check_after_kill(base, snap)
    before = snap  # what the last kill left is what the rerun starts from
    out = launcher.run(workload, url, log=logs / f"t{index}-rerun.log")
    after = snapshot(url)
    trial.rerun_exit = out.exit_code
    rerun = after.last_finished_run()
    trial.rerun_new_findings = rerun.counts.new_findings if rerun else None
    trial.problems += check_after_rerun(base, before, after, out.exit_code)
    if out.exit_code != base.exit_code:
        trial.problems.append(f"rerun log: {log_tail(logs / f't{index}-rerun.log')}")
    return trial


def run_trials(
    *,
    pool: LauncherPool,
    workload: Any,
    urls: list[str],
    base: Baseline,
    logs: Path,
    store: str,
    seed: int = 1,
) -> list[Trial]:
    """Run one trial per URL (each a fresh database), as many at once as ``pool`` has."""
    logs.mkdir(parents=True, exist_ok=True)

    def one(index: int, url: str) -> Trial:
        with pool.borrow() as launcher:
            return run_trial(
                index,
                launcher=launcher,
                workload=workload,
                url=url,
                base=base,
                logs=logs,
                store=store,
                seed=seed,
            )

    with ThreadPoolExecutor(max_workers=pool.workers) as executor:
        return list(executor.map(one, range(len(urls)), urls))


def summarize(store: str, base: Baseline, trials: list[Trial]) -> dict[str, Any]:
    """Figures for docs/reliability.md."""
    kills = [k for t in trials for k in t.kills]
    total = len(base.snap.sessions)
    return {
        "store": store,
        "trials": len(trials),
        "sigkills_sent": sum(k.killed for k in kills),
        "kills_in_startup": sum(k.killed and k.phase == "startup" for k in kills),
        "kills_before_first_commit": sum(k.killed and k.sessions_left == 0 for k in kills),
        "kills_mid_write": sum(k.killed and 0 < k.sessions_left < total for k in kills),
        "kills_after_last_commit": sum(k.killed and k.sessions_left == total for k in kills),
        "runs_finished_before_kill": sum(not k.killed for k in kills),
        "crash_during_recovery_trials": sum(len(t.kills) > 1 for t in trials),
        "clean_run": {
            "sessions": total,
            "findings": len(base.snap.findings),
            "batches": len(base.units),
            "checkpoints": len(base.snap.checkpoints),
            "startup_s": round(base.startup, 2),
            "commit_gap_s": round(base.gap, 3),
        },
        "findings_recommitted_by_reruns": sum(t.rerun_new_findings or 0 for t in trials),
        "failed_trials": sum(bool(t.problems) for t in trials),
        "problems": [f"trial {t.index}: {p}" for t in trials for p in t.problems],
        "trial_details": [asdict(t) for t in trials],
    }
