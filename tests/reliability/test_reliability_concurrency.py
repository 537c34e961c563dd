"""One SQLite database, two processes: a CLI audit and a reader/writer both succeed (WAL mode
and the busy timeout make the second writer wait instead of failing with "locked")."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.models import FindingStatus
from agent.store import open_store
from tests.reliability.crashlab import Baseline, snapshot
from tests.reliability.launch import log_tail
from tests.reliability.launchers import REPO, ScriptLauncher, env_with_repo
from tests.reliability.workload import Workload


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_cli_audit_and_a_concurrent_reader_writer_on_one_sqlite_database_both_succeed(
    workload: Workload, baseline: Baseline, tmp_path: Path
) -> None:
    base = baseline
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    open_store(url).close()  # both processes find the schema in place
    stop = tmp_path / "stop"
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "tests.reliability.rw_worker", url, str(stop)],
        stdout=subprocess.PIPE,
        env=env_with_repo(),
        cwd=REPO,
    )
    try:
        time.sleep(0.2)
        audit = ScriptLauncher().run(workload, url, log=tmp_path / "audit.log")
    finally:
        stop.touch()
        out, _ = worker.communicate(timeout=120)

    assert audit.exit_code == base.exit_code, log_tail(tmp_path / "audit.log")
    assert worker.returncode == 0
    tally = json.loads(out)
    assert tally["writes"] > 1 and tally["reads"] > 2 and tally["reviews"] == tally["writes"]
    snap = snapshot(url)
    assert set(snap.findings) == set(base.snap.findings) | set(tally["ids"])
    assert set(base.snap.sessions) <= set(snap.sessions)
    with open_store(url) as store:
        reviewed = store.get_finding(tally["ids"][0])
    assert reviewed is not None and reviewed.status is FindingStatus.ACKNOWLEDGED
