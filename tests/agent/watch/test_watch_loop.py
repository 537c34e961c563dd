"""agent.watch.watch_loop: followed files become stored findings, exactly once, across
rotation, truncation, restarts, bursts, garbage and store failures."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.errors import StoreError
from agent.models import AuditRun, Finding, RunStatus, Severity
from agent.store import SqlStore
from tests.agent.watch.watchbed import (
    CN_IP,
    INSTANCE,
    WatchBed,
    accepted,
    append,
    disconnected,
    noise,
)

GUARD_SECONDS = 60  # only bounds a hung test; nothing asserts on time


def test_an_accepted_line_from_a_restricted_country_becomes_a_stored_high_finding(
    bed: WatchBed,
) -> None:
    append(bed.log, noise(1))
    stop, seen = threading.Event(), threading.Event()
    delivered: list[Finding] = []

    def notifier(run: AuditRun, findings: list[Finding]) -> None:
        delivered.extend(findings)
        if any(f.session.source_ip == CN_IP for f in findings):
            seen.set()

    worker = threading.Thread(
        target=bed.run,
        kwargs={"options": bed.options(until_idle=False), "stop": stop, "after_run": [notifier]},
    )
    worker.start()
    try:
        assert bed.log.exists()
        append(bed.log, accepted("eve", CN_IP, pid=4001))
        assert seen.wait(GUARD_SECONDS), "the finding never reached the notifier"
    finally:
        stop.set()
        worker.join(GUARD_SECONDS)
    assert not worker.is_alive()
    stored = [f for f in bed.findings() if f.session.source_ip == CN_IP]
    assert stored and max(f.severity for f in stored) is Severity.HIGH
    assert stored[0].session.instance_id == INSTANCE
    assert {f.id for f in delivered} >= {f.id for f in stored}


def test_the_session_is_updated_with_its_end_when_the_disconnect_arrives_later(
    bed: WatchBed,
) -> None:
    append(bed.log, accepted("eve", CN_IP, pid=4001))
    bed.run()
    (open_session,) = bed.sessions()
    assert open_session.ended_at is None
    append(bed.log, disconnected("eve", CN_IP, pid=4001))
    bed.run()
    (closed,) = bed.sessions()
    assert closed.session_id == open_session.session_id and closed.ended_at is not None
    assert len(bed.findings()) == len({f.policy_id for f in bed.findings()})


def test_a_restart_mid_file_resumes_after_the_last_committed_line(bed: WatchBed) -> None:
    lines = [accepted(f"u{i}", CN_IP, pid=100 + i, port=1000 + i) for i in range(1, 9)]
    append(bed.log, *lines)
    stop = threading.Event()

    def stop_during_third_session(finding: Finding) -> Finding:
        if finding.session.principal == "u3":
            stop.set()  # like SIGTERM while the batch with u3 is evaluated
        return finding

    chunk = len(lines[0]) + 1  # one line per batch
    first = bed.run(
        stop=stop,
        finding_hook=stop_during_third_session,
        options=bed.options(max_chunk_bytes=chunk),
    )
    assert first.counts.read == 3  # the batch in flight was committed, nothing after it
    assert bed.checkpoint()["position"]["line"] == 4
    second = bed.run()
    assert second.counts.read == len(lines) - 3
    assert sorted(s.principal or "" for s in bed.sessions()) == [f"u{i}" for i in range(1, 9)]
    assert bed.checkpoint()["position"]["offset"] == bed.log.stat().st_size


def test_rename_rotation_pairs_an_end_in_the_new_file_with_its_start_in_the_old(
    bed: WatchBed,
) -> None:
    append(bed.log, accepted("ann", CN_IP, pid=7), accepted("bob", "203.0.113.9", pid=8))
    bed.run()
    append(bed.log, noise(2))  # written before the rotation, read after the restart
    bed.log.rename(bed.root / "auth.log.1")
    append(bed.log, disconnected("ann", CN_IP, pid=7), accepted("cy", "203.0.113.7", pid=9))
    run = bed.run()
    assert run.counts.read == 3
    by_user = {s.principal: s for s in bed.sessions()}
    assert set(by_user) == {"ann", "bob", "cy"}
    assert by_user["ann"].ended_at is not None
    assert bed.checkpoint()["position"]["line"] == 3  # numbered within the new file


def test_rotation_while_watching_reads_both_files_once(bed: WatchBed) -> None:
    append(bed.log, accepted("ann", "203.0.113.1", pid=7))
    stop = threading.Event()
    done = threading.Event()
    users: set[str] = set()

    def notifier(run: AuditRun, findings: list[Finding]) -> None:
        users.update(f.session.principal or "" for f in findings)

    def watch() -> None:
        bed.run(options=bed.options(until_idle=False), stop=stop, after_run=[notifier])
        done.set()

    worker = threading.Thread(target=watch)
    worker.start()
    try:
        _wait_for_checkpoint_line(bed, 2)
        bed.log.rename(bed.root / "auth.log.1")
        append(bed.root / "auth.log.1", accepted("late", CN_IP, pid=8))
        append(bed.log, accepted("new", CN_IP, pid=9))
        _wait_for_checkpoint_line(bed, 2, inode=bed.log.stat().st_ino)
    finally:
        stop.set()
        worker.join(GUARD_SECONDS)
    assert done.is_set()
    assert sorted(s.principal or "" for s in bed.sessions()) == ["ann", "late", "new"]


def test_copytruncate_loses_nothing_and_reads_nothing_twice(bed: WatchBed) -> None:
    append(bed.log, *[accepted(f"u{i}", "203.0.113.5", pid=i) for i in range(1, 4)])
    bed.run()
    append(bed.log, accepted("late", CN_IP, pid=50))
    shutil.copyfile(bed.log, bed.root / "auth.log.1")
    with bed.log.open("r+") as fh:
        fh.truncate(0)
    append(bed.log, accepted("fresh", CN_IP, pid=51))
    run = bed.run()
    assert run.counts.read == 2
    assert sorted(s.principal or "" for s in bed.sessions()) == ["fresh", "late", "u1", "u2", "u3"]


def test_a_burst_of_100k_lines_is_read_once_and_completely(bed: WatchBed) -> None:
    lines = []
    for i in range(100_000):
        if i % 100 == 0:
            lines.append(
                accepted(f"u{i}", f"198.51.100.{i % 250}", pid=10_000 + i, port=i % 60000 + 1)
            )
        elif i % 100 == 50:
            lines.append(
                disconnected(
                    f"u{i - 50}",
                    f"198.51.100.{(i - 50) % 250}",
                    pid=10_000 + i - 50,
                    port=(i - 50) % 60000 + 1,
                )
            )
        else:
            lines.append(noise(i))
    append(bed.log, *lines)
    run = bed.run()
    assert run.counts.read == 100_000
    assert run.counts.quarantined == 0
    sessions = bed.sessions()
    assert len(sessions) == 1000 and all(s.ended_at is not None for s in sessions)
    position = bed.checkpoint()["position"]
    assert (position["offset"], position["line"]) == (bed.log.stat().st_size, 100_001)
    assert bed.checkpoint()["parser"]["open"] == []


def test_garbage_lines_are_quarantined_and_the_rest_is_processed(bed: WatchBed) -> None:
    append(
        bed.log,
        "\x00\x00\x00 binary junk",
        accepted("ann", CN_IP, pid=7),
        "Nov 28 10:00:01 gpu-7 sshd[9]: Accepted password for x from not-an-ip port 1 ssh2",
        "{half a json",
    )
    run = bed.run()
    assert run.status is RunStatus.PARTIAL
    assert run.counts.quarantined == 3
    assert sorted(q.position or "" for q in run.quarantined) == ["line 1", "line 3", "line 4"]
    assert [s.principal for s in bed.sessions()] == ["ann"]


def test_a_failed_commit_rereads_the_same_lines_without_losing_or_doubling_any(
    bed: WatchBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(bed.log, *[accepted(f"u{i}", "203.0.113.5", pid=i) for i in range(1, 6)])
    real = SqlStore.commit_batch
    calls = {"n": 0}

    def flaky(self: SqlStore, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StoreError("database is locked", hint="retry")
        return real(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqlStore, "commit_batch", flaky)
    run = bed.run()
    assert calls["n"] >= 2
    assert run.counts.read == 5 and run.counts.sessions == 5
    assert sorted(s.principal or "" for s in bed.sessions()) == [f"u{i}" for i in range(1, 6)]


def test_a_new_watch_run_is_recorded_with_its_counts(bed: WatchBed) -> None:
    append(bed.log, accepted("ann", CN_IP, pid=7), noise(1))
    run = bed.run()
    with bed.store() as db:
        stored = db.get_run(run.id)
    assert stored is not None and stored.status is RunStatus.COMPLETE
    assert stored.counts.read == 2 and stored.counts.sessions == 1
    assert stored.finished_at is not None and run.id.startswith("watch-")


def _wait_for_checkpoint_line(bed: WatchBed, line: int, *, inode: int | None = None) -> None:
    stopped = threading.Event()
    for _ in range(GUARD_SECONDS * 50):
        try:
            position = bed.checkpoint()["position"]
        except AssertionError:
            position = None
        if position and position["line"] >= line and inode in (None, position["inode"]):
            return
        stopped.wait(0.02)
    raise AssertionError(f"checkpoint never reached line {line}")


def test_watching_a_file_that_does_not_exist_yet_waits_for_it(bed: WatchBed) -> None:
    run = bed.run()
    assert run.counts.read == 0 and run.status is RunStatus.COMPLETE
    append(bed.log, accepted("ann", CN_IP, pid=7))
    assert bed.run().counts.read == 1


def test_from_end_skips_what_was_in_the_file_before_the_first_watch(bed: WatchBed) -> None:
    append(bed.log, accepted("old", CN_IP, pid=7))
    assert bed.run(options=bed.options(from_end=True)).counts.read == 0
    append(bed.log, accepted("new", CN_IP, pid=8))
    bed.run(options=bed.options(from_end=True))
    assert [s.principal for s in bed.sessions()] == ["new"]


def test_checkpoints_live_under_the_watch_scope_of_the_file(bed: WatchBed, tmp_path: Path) -> None:
    append(bed.log, noise(1))
    bed.run()
    value = bed.checkpoint()
    assert value["path"] == str(tmp_path / "auth.log")
    assert set(value["position"]) == {"dev", "inode", "offset", "line", "head", "head_len"}
    assert value["position"]["inode"] == bed.log.stat().st_ino


def test_an_unreadable_checkpoint_is_ignored_and_the_file_read_again(bed: WatchBed) -> None:
    append(bed.log, accepted("ann", CN_IP, pid=7))
    bed.run()
    with bed.store() as db:
        db.set_checkpoint(f"watch:sshd-log[0]:{bed.log}", "{not json")
    with capture_logs() as logs:
        run = bed.run()
    assert "watch_checkpoint_ignored" in [e["event"] for e in logs]
    assert run.counts.read == 1
    assert len(bed.sessions()) == 1  # upserted again, not doubled


def test_an_unreadable_followed_file_is_a_scope_error_and_the_rest_goes_on(
    bed: WatchBed,
) -> None:
    bed.log.mkdir()  # opening works, reading fails (EISDIR), like a file we may not read
    other = bed.root / "other.log"
    bed.extra_sources.append(
        {
            "type": "sshd-log",
            "path": "other.log",
            "year": 2026,
            "instance": {"provider": "aws", "account": "111122223333", "instance_id": INSTANCE},
        }
    )
    append(other, accepted("ann", CN_IP, pid=7))
    run = bed.run()
    assert run.status is RunStatus.PARTIAL
    assert [(e.scope, e.code) for e in run.scope_errors] == [(str(bed.log), "file_unreadable")]
    assert [s.principal for s in bed.sessions()] == ["ann"]
