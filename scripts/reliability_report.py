#!/usr/bin/env python3
"""Run the crash harness, the fuzzers and the size probes; write docs/reliability.md.

    python scripts/reliability_report.py                 # 50 trials per store, 500 examples
    python scripts/reliability_report.py --trials 20 --examples 60 --out /tmp/r.md

Fault figures come from the fault specs (``faults-*.json`` in CW_RELIABILITY_OUT);
``--fault-trials`` seeds (CW_FAULT_TRIALS) repeat the 30% transient runs.

Every figure in the report comes from this run: the crash-trial summaries the harness tests
write (CW_RELIABILITY_OUT), the fuzzers' per-target tally (CW_FUZZ_TALLY), the pytest outcome
of every reliability and fuzz test (JUnit XML) and peak-RSS probes of one 200 MB line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz.hostile import KNOWN_BUGS  # noqa: E402
from tests.reliability.test_reliability_size_limits import (  # noqa: E402
    GROWTH_BOUND_KIB,
    LINE_BYTES,
    PREFIX,
    UNBOUNDED,
)
from tests.reliability.workload import WorkloadSize  # noqa: E402

HARNESS = [
    "tests/reliability/test_reliability_crash.py",
    "tests/reliability/test_reliability_sigterm.py",
    "tests/reliability/test_reliability_concurrency.py",
    "tests/reliability/test_reliability_history.py",
    "tests/reliability/test_reliability_integrity.py",
    "tests/reliability/test_reliability_hostile_store.py",
    "tests/reliability/test_reliability_size_limits.py",
    "tests/reliability/test_reliability_gzip_bombs.py",
    "tests/reliability/test_reliability_faults_aws.py",
    "tests/reliability/test_reliability_faults_gcp.py",
    "tests/reliability/test_reliability_faults_azure.py",
    "tests/agent/test_cli_policy.py",
]


def _pytest(paths: list[str], env: dict[str, str], junit: Path) -> tuple[int, float]:
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own interpreter and test paths
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *paths,
        ],
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )
    return done.returncode, time.monotonic() - started


def _outcomes(junit: Path) -> dict[str, str]:
    """``test id -> passed | failed | xfailed | skipped`` from a JUnit XML file."""
    out = {}
    for case in ET.parse(junit).iter("testcase"):  # noqa: S314 - our own file
        name = f"{case.get('classname')}::{case.get('name')}"
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                state = "failed"
            elif child.tag == "skipped":
                state = "xfailed" if "xfail" in (child.get("type") or "") else "skipped"
        out[name] = state
    return out


def _regression(name: str) -> bool:
    """Tests that reproduce a bug this work found (and that now pass)."""
    if "test_fuzz_known_bugs" in name or "test_fuzz_regressions" in name:
        return "every_known_bug" not in name
    if "hostile_store" in name:
        return name.endswith("[postgresql]")  # SQLite always stored NUL
    return "size_limits" in name and "test_a_200_mb_line" in name


def _probe(kind: str, folder: Path) -> dict[str, Any]:
    path = folder / f"{kind}.line"
    with path.open("wb") as fh:
        fh.write(PREFIX[kind])
        fh.truncate(LINE_BYTES)
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed module, our temp file
            [sys.executable, "-m", "tests.reliability.rss_probe", kind, str(path)],
            cwd=REPO,
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        path.unlink()
    result: dict[str, Any] = json.loads(done.stdout)
    result["growth_mib"] = (result["after_kib"] - result["before_kib"]) // 1024
    return result


def _pg_version() -> str:
    try:
        import psycopg

        url = os.environ.get("CHIPWARDEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except Exception as exc:  # reported, the run goes on
        return f"unreachable ({type(exc).__name__})"


def _commit() -> str:
    def git(*args: str) -> str:
        argv = ["git", *args]  # git from PATH, fixed arguments
        done = subprocess.run(  # noqa: S603 - git from PATH with fixed arguments
            argv,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--porcelain") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _crash_section(crash: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for store in ("sqlite", "postgresql"):
        c = crash.get(store)
        if not c:
            rows.append([store, "not run", "", "", "", "", "", "", ""])
            continue
        clean = c["clean_run"]
        rows.append(
            [
                store,
                c["trials"],
                c["sigkills_sent"],
                c["kills_in_startup"],
                c["kills_before_first_commit"],
                c["kills_mid_write"],
                c["crash_during_recovery_trials"],
                c["findings_recommitted_by_reruns"],
                f"**{c['failed_trials']}**",
            ]
        )
    lines = _table(
        [
            "store",
            "trials",
            "SIGKILLs",
            "in startup",
            "before 1st commit",
            "between commits",
            "double-kill trials",
            "findings re-committed by reruns",
            "failed trials",
        ],
        rows,
    )
    some = next(iter(crash.values()), None)
    size = WorkloadSize()
    if some:
        clean = some["clean_run"]
        lines += [
            "",
            f"Clean run compared against: {clean['sessions']} sessions, {clean['findings']} "
            f"findings, {clean['batches']} batch units (files/logs), {clean['checkpoints']} "
            f"checkpoints, from {size.cloudtrail_parts} CloudTrail sources, {size.ckpt_parts} "
            f"checkpointing CloudTrail sources and {size.auth_logs} sshd logs (one malformed "
            f"record in {size.bad_every}: quarantined, so every run exits 4).",
        ]
    problems = [p for c in crash.values() for p in c.get("problems", [])]
    lines += ["", "Problems: " + ("none." if not problems else "; ".join(problems[:20]))]
    return lines


def _faults_section(work: Path) -> list[str]:
    """One row per provider and scenario from the fault specs' ``faults-*.json`` figures."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(work.glob("faults-*.json")):
        figures = json.loads(path.read_text())
        scenario = str(figures.get("scenario", path.stem))
        groups[(str(figures.get("provider", "?")), scenario)].append(figures)
    if not groups:
        return ["No fault figures were written (the fault specs did not run)."]
    rows = []
    for (provider, scenario), runs in sorted(groups.items()):
        kinds: dict[str, int] = defaultdict(int)
        for run in runs:
            for kind, n in run.get("by_kind", {}).items():
                kinds[kind] += n
        if "identical" in runs[0]:
            ok = all(r.get("identical") and not r.get("scope_errors") for r in runs)
            result = (
                f"{'identical' if ok else '**DIFFERENT**'} findings "
                f"({runs[0].get('findings')}), status {runs[0].get('status')}, "
                f"{sum(r.get('scope_errors', 0) for r in runs)} scope errors"
            )
        else:
            ok = all(
                r.get("exit_code") == 4
                and r.get("next_exit_code") == 0
                and r.get("recovered_all", r.get("recovered_identical"))
                for r in runs
            )
            result = (
                f"exit {runs[0].get('exit_code')}, {runs[0].get('scope_errors')} scope errors, "
                f"{runs[0].get('missed_first_run', '?')} findings missed; next run exit "
                f"{runs[0].get('next_exit_code')}, "
                f"{'recovered all' if ok else '**NOT RECOVERED**'}"
            )
        rows.append(
            [
                provider,
                scenario,
                len(runs),
                sum(r.get("calls", 0) for r in runs),
                sum(r.get("faults", 0) for r in runs),
                ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
                result,
            ]
        )
    return _table(["provider", "scenario", "trials", "calls", "faults", "by kind", "result"], rows)


def _bomb_section(work: Path) -> list[str]:
    """One row per source from the gzip-bomb memory probes (``bomb-*.json``)."""
    rows = [json.loads(path.read_text()) for path in sorted(work.glob("bomb-*.json"))]
    if not rows:
        return ["No bomb figures were written (the gzip-bomb specs did not run)."]
    return _table(
        ["source", "bomb (inflated)", "on disk", "peak RSS growth", "bomb named", "good file read"],
        [
            [
                r["source"],
                f"{r['bomb_mib']} MiB (limit lowered to {r['limit_mib']} MiB)",
                f"{r['compressed_kib']} KiB",
                f"+{r['growth_mib']} MiB",
                "yes" if r["named"] else "**NO**",
                f"{r['good_sessions']} session(s)",
            ]
            for r in rows
        ],
    )


def _fuzz_section(tally: list[dict[str, Any]]) -> list[str]:
    by: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in tally:
        by[row["target"]][row["outcome"]] += row["inputs"]
    rows = [
        [t, sum(o.values()), o["accepted"], o["rejected"], o["known-bug"]]
        for t, o in sorted(by.items())
    ]
    total = sum(r[1] for r in rows)
    return [
        *_table(
            [
                "target",
                "inputs",
                "accepted",
                "rejected (RecordError / documented)",
                "hit a known bug",
            ],
            rows,
        ),
        "",
        f"Total: {total} hostile inputs; no exception other than the documented ones escaped"
        + (", apart from the known bugs below." if KNOWN_BUGS else "."),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50, help="crash trials per store")
    ap.add_argument("--examples", type=int, default=500, help="hypothesis examples per property")
    ap.add_argument("--fault-trials", type=int, default=5, help="seeds of the 30%% fault runs")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="cw-report-") as tmp:
        work = Path(tmp)
        env = {
            "CW_RELIABILITY_TRIALS": str(args.trials),
            "CW_RELIABILITY_OUT": str(work),
            "CW_FUZZ_EXAMPLES": str(args.examples),
            "CW_FUZZ_RANDOM": "1",
            "CW_FUZZ_TALLY": str(work / "tally.json"),
            "CW_FAULT_TRIALS": str(args.fault_trials),
        }
        code_h, secs_h = _pytest(HARNESS, env, work / "harness.xml")
        code_f, secs_f = _pytest(["tests/fuzz"], env, work / "fuzz.xml")
        crash = {}
        for store in ("sqlite", "postgresql"):
            path = work / f"crash-{store}.json"
            if path.exists():
                crash[store] = json.loads(path.read_text())
        tally = (
            json.loads((work / "tally.json").read_text()) if (work / "tally.json").exists() else []
        )
        outcomes = {**_outcomes(work / "harness.xml"), **_outcomes(work / "fuzz.xml")}
        probes = {kind: _probe(kind, work) for kind in PREFIX}
        faults = _faults_section(work)
        bombs = _bomb_section(work)

    corpus = sorted(
        p
        for p in (REPO / "tests" / "data" / "fuzz").rglob("*")
        if p.is_file() and p.name != "PROVENANCE.md"
    )
    states = defaultdict(int)
    for state in outcomes.values():
        states[state] += 1
    failed = sorted(name for name, state in outcomes.items() if state == "failed")

    lines = [
        "# Reliability report",
        "",
        "Generated by `scripts/reliability_report.py` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC from commit {_commit()} "
        f"(Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {_pg_version()}; {os.cpu_count()} CPUs). Rerun it to refresh every figure.",
        "",
        f"Tests run: {sum(states.values())} ({states['passed']} passed, {states['xfailed']} "
        f"strict xfail = known bugs, {states['failed']} failed, {states['skipped']} skipped); "
        f"harness {secs_h:.0f} s, fuzzers {secs_f:.0f} s; pytest exit codes {code_h} / {code_f}.",
        *([f"Failed: {', '.join(failed)}"] if failed else []),
        "",
        "## What an operator can rely on",
        "",
        "- A checkpoint moves only in the transaction that commits its findings and sessions, so "
        "a crash (SIGKILL, OOM kill, power loss) at any point loses nothing: the next run "
        "re-reads from the last committed checkpoint and upserts findings by id (idempotent).",
        "- SIGTERM drains: the audit stops at the next commit boundary, saves the run as "
        "`partial` with an `interrupted` scope error and exits **143** (128 + SIGTERM), so a "
        "scheduler sees the termination; a second SIGTERM kills at once. Rerun to finish.",
        "- SQLite runs in WAL mode with a 30 s busy timeout: an audit and another reader/writer "
        "(the review service, a second CLI) can share one database file.",
        "- A malformed record is quarantined with its file and position and counted; every run "
        "reconciles `read = sessions + ignored + quarantined`.",
        "- Every finding carries the bundle revision (content hash of packs, chip catalog and "
        "jurisdiction lists); its run records the geo databases and versions. "
        "`chipwarden policy diff A B` shows what changed between two packs, folders, bundled "
        "packs or git revisions (`REV:path`).",
        "",
        "## Crash consistency (SIGKILL at random points)",
        "",
        "Each trial starts `chipwarden audit` on a fresh database, SIGKILLs it (after a random "
        "number of batch commits plus up to 1.5 commit gaps; every fifth trial during start-up; "
        "every fourth trial kills the recovery run too), checks what the dead process left, "
        "reruns to completion and compares with an uninterrupted run. Invariants: no half-"
        "committed batch, no finding without its session, no checkpoint ahead of its findings; "
        "after the rerun the same finding ids, the same sessions and checkpoints, no duplicate "
        "rows, counts that reconcile, and exactly the uncommitted findings counted new.",
        "",
        *_crash_section(crash),
        "",
        "## Faults from clouds",
        "",
        "Faults are injected at the network seam: botocore's before-send hook on every AWS "
        "client, the fake Google and Azure servers for the real google-cloud / azure SDK "
        "clients. Transient runs fail 30% of calls (never more than 3 times in a row for one "
        "request, so a retry budget above that gets through; each kind is injected at least "
        "once) and must produce the findings of a clean run; permanent runs fail one scope "
        "for good and must end in scope errors with exit code 4, after which a run without "
        "the faults must find everything the failed run missed.",
        "",
        *faults,
        "",
        "## SIGTERM, concurrency, integrity",
        "",
        *_table(
            ["test", "outcome"],
            [
                [name.split("::")[-1], state]
                for name, state in sorted(outcomes.items())
                if "test_reliability_" in name
                and not any(k in name for k in ("crash", "faults", "gzip_bombs"))
            ],
        ),
        "",
        "## Hostile input (property-based fuzzing + corpus)",
        "",
        f"{args.examples} hypothesis examples per property (random seed), plus the "
        f"{len(corpus)}-file corpus in tests/data/fuzz replayed as-is.",
        "",
        *_fuzz_section(tally),
        "",
        "## Size limits (one 200 MB line, no newline)",
        "",
        *_table(
            ["source", "peak RSS growth", "outcome", "verdict"],
            [
                [
                    k,
                    f"+{p['growth_mib']} MiB",
                    (
                        p["error"]
                        or ", ".join(p["scope_errors"])
                        or f"{p['quarantined']} quarantined, {p['read']} read"
                    ),
                    UNBOUNDED.get(k)
                    or ("bounded" if p["growth_mib"] * 1024 < GROWTH_BOUND_KIB else "UNBOUNDED"),
                ]
                for k, p in probes.items()
            ],
        ),
        "",
        f"Bound: peak growth under {GROWTH_BOUND_KIB // 1024} MiB for the 200 MiB line. A source "
        "that stays under it refuses or cuts the line without holding it, so a 2 GB line costs "
        "the same; one that does not would need about ten times its growth for 2 GB.",
        "",
        "## Gzip bombs (valid gzip that inflates far past the limit)",
        "",
        "Every gzip reader inflates a bounded piece at a time and stops at 1 GiB per file "
        "(CloudTrail, Kubernetes audit documents) or cuts over-long lines (flow logs, sshd, "
        "Kubernetes audit lines): the bomb is refused or quarantined by name and the file "
        "beside it is still read. Probed in a subprocess with the limit lowered:",
        "",
        *bombs,
        "",
        "Gzip-bomb specs (refusal by name, exact-limit files still read, piecewise inflation "
        "equal to gzip's, corrupt bombs reported as corrupt): "
        + ", ".join(
            f"{n} {state}"
            for state, n in sorted(
                Counter(state for name, state in outcomes.items() if "gzip_bombs" in name).items()
            )
        )
        + ".",
        "",
        "## Bugs found",
        "",
        "Fixed (each kept fixed by a regression test that now passes):",
        "",
        *[
            f"- `{name.split('::')[-1]}`"
            for name, state in sorted(outcomes.items())
            if state == "passed" and _regression(name)
        ],
        "",
        "Open (each reproduced by a strict xfail: it fails today and fails the suite once fixed):",
        "",
        *[f"- `{b.test}` ({b.error.__name__} from `{b.targets}`)" for b in KNOWN_BUGS],
        *[
            f"- `{name.split('::')[-1]}`"
            for name, state in sorted(outcomes.items())
            if state == "xfailed" and "test_fuzz_known_bugs" not in name
        ],
        "",
        "## Reproduce",
        "",
        "    /work/venv/bin/pytest tests/reliability tests/fuzz -q        # default: 20 trials",
        "    CW_RELIABILITY_TRIALS=100 CW_FUZZ_EXAMPLES=2000 CW_FUZZ_RANDOM=1 \\",
        "        /work/venv/bin/pytest tests/reliability tests/fuzz -q",
        f"    python scripts/reliability_report.py --trials {args.trials} "
        f"--examples {args.examples}",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
