"""Runs, checkpoints and stored sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import pytest

from agent.errors import StoreError
from agent.models import (
    AuditRun,
    QuarantinedRecord,
    RunCounts,
    RunStatus,
    ScopeError,
    Session,
)
from agent.store import SqlStore

SessionFactory = Callable[..., Session]


class FakeClock(Protocol):
    """The conftest ``clock`` fixture: callable, with a settable ``now``."""

    now: datetime

    def __call__(self) -> datetime: ...


HOUR = timedelta(hours=1)


@pytest.fixture
def run(clock: FakeClock) -> AuditRun:
    return AuditRun(
        id="run-1",
        started_at=clock.now,
        window_start=clock.now - 24 * HOUR,
        window_end=clock.now,
        sources=("cloudtrail-files", "sshd-log"),
        bundle_revision="rev-1",
        geo_sources=("iptocc 3.3 (RIR registry country)",),
    )


def test_a_started_run_reads_back_as_running(store: SqlStore, run: AuditRun) -> None:
    store.start_run(run)

    assert store.get_run("run-1") == run
    assert store.get_run("run-1").status is RunStatus.RUNNING  # type: ignore[union-attr]


def test_a_saved_run_round_trips_counts_scope_errors_and_quarantine(
    store: SqlStore, run: AuditRun
) -> None:
    store.start_run(run)
    finished = run.model_copy(
        update={
            "finished_at": run.started_at + HOUR,
            "status": RunStatus.PARTIAL,
            "counts": RunCounts(read=10, sessions=8, ignored=1, quarantined=1, findings=2),
            "scope_errors": (
                ScopeError(
                    source="aws",
                    scope="111122223333/eu-west-1",
                    code="permission_denied",
                    message="AccessDenied on cloudtrail:LookupEvents",
                    remediation="grant cloudtrail:LookupEvents",
                    permission="cloudtrail:LookupEvents",
                ),
            ),
            "quarantined": (
                QuarantinedRecord(
                    source="sshd-log", locator="/var/log/auth.log", position="17", reason="bad"
                ),
            ),
        }
    )

    store.save_run(finished)

    assert store.get_run("run-1") == finished
    assert store.list_runs() == [finished]


def test_save_run_inserts_a_run_that_was_never_started(store: SqlStore, run: AuditRun) -> None:
    store.save_run(run)

    assert store.get_run(run.id) == run


def test_starting_the_same_run_twice_is_refused(store: SqlStore, run: AuditRun) -> None:
    store.start_run(run)

    with pytest.raises(StoreError, match="run-1 is already recorded"):
        store.start_run(run)


def test_list_runs_is_newest_first_and_limited(store: SqlStore, run: AuditRun) -> None:
    for i in range(4):
        store.save_run(
            run.model_copy(update={"id": f"run-{i}", "started_at": run.started_at + i * HOUR})
        )

    assert [r.id for r in store.list_runs(limit=3)] == ["run-3", "run-2", "run-1"]
    assert store.get_run("missing") is None


def test_checkpoints_are_set_overwritten_and_listed(store: SqlStore) -> None:
    assert store.get_checkpoint("aws/1/us-east-1") is None

    store.set_checkpoint("aws/1/us-east-1", "t1")
    store.set_checkpoint("file:/var/log/auth.log", "inode=5;offset=100")
    store.set_checkpoint("aws/1/us-east-1", "t2")

    assert store.get_checkpoint("aws/1/us-east-1") == "t2"
    assert store.list_checkpoints() == {
        "aws/1/us-east-1": "t2",
        "file:/var/log/auth.log": "inode=5;offset=100",
    }


def test_list_sessions_replays_a_window_oldest_first(
    store: SqlStore, make_session: SessionFactory
) -> None:
    t0 = make_session().started_at
    sessions = [make_session(f"evt-{h}", started_at=t0 + h * HOUR) for h in (3, 0, 2, 1, 4)]
    store.commit_batch(findings=[], sessions=sessions, checkpoint=None, run_id="r")

    window = list(store.list_sessions(since=t0 + HOUR, until=t0 + 3 * HOUR))
    first_two = list(store.list_sessions(limit=2))

    assert [s.key for s in window] == ["evt-1", "evt-2", "evt-3"]
    assert [s.key for s in first_two] == ["evt-0", "evt-1"]
    assert {s.key: s for s in store.list_sessions()} == {s.key: s for s in sessions}


def test_list_sessions_pages_through_equal_timestamps_without_loss(
    store: SqlStore, make_session: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent.store.sqlstore._SESSION_PAGE", 2)
    sessions = [make_session(f"evt-{i}") for i in range(7)]  # all share started_at
    store.commit_batch(findings=[], sessions=sessions, checkpoint=None, run_id="r")

    replayed = [s.session_id for s in store.list_sessions()]
    limited = [s.session_id for s in store.list_sessions(limit=5)]

    assert replayed == sorted(s.session_id for s in sessions)
    assert limited == replayed[:5]
