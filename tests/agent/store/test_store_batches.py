"""commit_batch: idempotent upserts, new-id counting and one transaction per batch."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from structlog.testing import capture_logs

from agent.errors import StoreError
from agent.models import Finding, FindingStatus, Session, Severity
from agent.store import SqlStore, open_store
from agent.store.schema import CheckpointRow

SessionFactory = Callable[..., Session]
FindingFactory = Callable[..., Finding]


class FakeClock(Protocol):
    """The conftest ``clock`` fixture: callable, with a settable ``now``."""

    now: datetime

    def __call__(self) -> datetime: ...


HOUR = timedelta(hours=1)


def _findings(
    make_session: SessionFactory, make_finding: FindingFactory, n: int, **kw: Any
) -> list[Any]:
    return [make_finding(make_session(f"evt-{i}"), **kw) for i in range(n)]


def test_commit_batch_returns_the_number_of_new_finding_ids(
    store: SqlStore, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    first = _findings(make_session, make_finding, 3)
    more = [*first[:2], make_finding(make_session("evt-new"))]

    assert store.commit_batch(findings=first, sessions=[], checkpoint=None, run_id="r1") == 3
    assert store.commit_batch(findings=first, sessions=[], checkpoint=None, run_id="r2") == 0
    assert store.commit_batch(findings=more, sessions=[], checkpoint=None, run_id="r3") == 1
    assert store.count_findings() == 4


def test_recommitting_keeps_first_seen_and_advances_last_seen(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    t0 = make_finding().last_seen
    store.commit_batch(findings=[make_finding()], sessions=[], checkpoint=None, run_id="r1")

    store.commit_batch(
        findings=[make_finding(last_seen=t0 + HOUR)], sessions=[], checkpoint=None, run_id="r2"
    )

    (stored,) = store.list_findings()
    assert stored.first_seen == t0
    assert stored.last_seen == t0 + HOUR


def test_an_older_sighting_never_moves_last_seen_backwards(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    t0 = make_finding().last_seen
    store.commit_batch(
        findings=[make_finding(last_seen=t0 + 2 * HOUR)], sessions=[], checkpoint=None, run_id="r"
    )

    store.commit_batch(
        findings=[make_finding(last_seen=t0)], sessions=[], checkpoint=None, run_id="r"
    )

    (stored,) = store.list_findings()
    assert stored.last_seen == t0 + 2 * HOUR
    assert stored.first_seen == t0 + 2 * HOUR


def test_new_findings_start_with_first_seen_equal_to_last_seen(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    finding = make_finding()
    early = finding.model_copy(update={"first_seen": finding.last_seen - 24 * HOUR})

    store.commit_batch(findings=[early], sessions=[], checkpoint=None, run_id="r1")

    stored = store.get_finding(finding.id)
    assert stored is not None and stored.first_seen == finding.last_seen


def test_a_reviewed_status_and_extra_survive_a_rerun(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    finding = make_finding(extra={"ticket": "SEC-1"})
    store.commit_batch(findings=[finding], sessions=[], checkpoint=None, run_id="r1")
    assert store.set_finding_status(finding.id, status=FindingStatus.ACKNOWLEDGED)

    rerun = make_finding(last_seen=finding.last_seen + HOUR, extra={})
    store.commit_batch(findings=[rerun], sessions=[], checkpoint=None, run_id="r2")

    stored = store.get_finding(finding.id)
    assert stored is not None
    assert stored.status is FindingStatus.ACKNOWLEDGED
    assert stored.extra == {"ticket": "SEC-1"}


def test_a_rerun_refreshes_the_verdict_fields(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    store.commit_batch(findings=[make_finding()], sessions=[], checkpoint=None, run_id="r1")

    newer = make_finding(
        severity=Severity.CRITICAL,
        title="re-evaluated",
        reasons=("new reason",),
        bundle_revision="rev-2",
        country="RU",
    )
    store.commit_batch(findings=[newer], sessions=[], checkpoint=None, run_id="r2")

    stored = store.get_finding(newer.id)
    assert stored is not None
    assert (stored.severity, stored.title, stored.reasons) == (
        Severity.CRITICAL,
        "re-evaluated",
        ("new reason",),
    )
    assert (stored.bundle_revision, stored.run_id, stored.ip.country) == ("rev-2", "r2", "RU")
    assert store.count_findings(min_severity=Severity.CRITICAL) == 1


def test_the_same_id_twice_in_one_batch_is_stored_once_with_the_latest_sighting(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    early = make_finding()
    late = make_finding(last_seen=early.last_seen + HOUR, title="later")

    new = store.commit_batch(findings=[late, early], sessions=[], checkpoint=None, run_id="r1")

    assert new == 1
    (stored,) = store.list_findings()
    assert (stored.title, stored.last_seen) == ("later", early.last_seen + HOUR)


def test_sessions_are_upserted_by_session_id(store: SqlStore, make_session: SessionFactory) -> None:
    session = make_session("evt-1")
    renamed = make_session("evt-1", principal="arn:aws:iam::111122223333:user/bob")

    store.commit_batch(findings=[], sessions=[session, session], checkpoint=None, run_id="r1")
    store.commit_batch(findings=[], sessions=[renamed], checkpoint=None, run_id="r2")

    assert list(store.list_sessions()) == [renamed]


def test_the_checkpoint_is_written_with_the_batch(
    store: SqlStore, make_finding: FindingFactory, make_session: SessionFactory, clock: FakeClock
) -> None:
    session = make_session()
    new = store.commit_batch(
        findings=[make_finding(session)],
        sessions=[session],
        checkpoint=("aws/111122223333/us-east-1", "2026-03-01T12:00:00Z"),
        run_id="r1",
    )

    assert new == 1
    assert store.get_checkpoint("aws/111122223333/us-east-1") == "2026-03-01T12:00:00Z"
    with store.engine.connect() as conn:
        updated_at = conn.scalar(select(CheckpointRow.updated_at))
    assert updated_at == clock.now


def test_a_bad_finding_rolls_back_sessions_findings_and_checkpoint(
    store: SqlStore, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    store.set_checkpoint("scope", "before")
    good = make_finding(make_session("evt-good"))
    # model_copy skips validation: a NULL policy_id violates the table's NOT NULL constraint.
    bad = make_finding(make_session("evt-bad")).model_copy(update={"policy_id": None})

    with pytest.raises(StoreError) as caught:
        store.commit_batch(
            findings=[good, bad],
            sessions=[good.session, bad.session],
            checkpoint=("scope", "after"),
            run_id="r1",
        )

    assert caught.value.hint is not None and "rolled back" in caught.value.hint
    assert store.count_findings() == 0
    assert list(store.list_sessions()) == []
    assert store.get_checkpoint("scope") == "before"


def test_a_failing_checkpoint_rolls_back_the_findings_before_it(
    store: SqlStore, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    finding = make_finding(make_session())

    with pytest.raises(StoreError):
        store.commit_batch(
            findings=[finding],
            sessions=[finding.session],
            checkpoint=cast(tuple[str, str], ("scope", None)),
            run_id="r1",
        )

    assert store.get_finding(finding.id) is None
    assert list(store.list_sessions()) == []
    assert store.list_checkpoints() == {}


def test_an_empty_batch_can_still_advance_the_checkpoint(store: SqlStore) -> None:
    assert store.commit_batch(findings=[], sessions=[], checkpoint=("s", "v2"), run_id="r") == 0
    assert store.get_checkpoint("s") == "v2"


# -- property: any sequence of batches ----------------------------------------------------

_batches = st.lists(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 48)), max_size=8), min_size=1, max_size=5
)


@pytest.fixture(scope="module")
def shared_memory_store() -> Iterator[SqlStore]:
    """One in-memory store for every hypothesis example (each example uses its own keys)."""
    with open_store("sqlite://") as store:
        yield store


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batches=_batches)
def test_any_sequence_of_batches_keeps_one_row_per_id_with_consistent_times(
    batches: list[list[tuple[int, int]]],
    shared_memory_store: SqlStore,
    make_session: SessionFactory,
    make_finding: FindingFactory,
) -> None:
    store, example = shared_memory_store, uuid.uuid4().hex
    t0 = make_finding().last_seen
    first: dict[int, Any] = {}
    last: dict[int, Any] = {}
    total_new = 0
    for batch in batches:
        findings = [
            make_finding(make_session(f"{example}-{k}"), last_seen=t0 + h * HOUR) for k, h in batch
        ]
        total_new += store.commit_batch(
            findings=findings, sessions=[], checkpoint=None, run_id=example
        )
        batch_latest: dict[int, Any] = {}
        for k, h in batch:
            batch_latest[k] = max(batch_latest.get(k, t0 + h * HOUR), t0 + h * HOUR)
        for k, seen in batch_latest.items():
            first.setdefault(k, seen)
            last[k] = max(last.get(k, seen), seen)

    stored = {f.session.key: f for f in store.list_findings(run_id=example)}
    assert total_new == len(first) == len(stored) == store.count_findings(run_id=example)
    for k in first:
        assert stored[f"{example}-{k}"].first_seen == first[k]
        assert stored[f"{example}-{k}"].last_seen == last[k]


def test_each_committed_batch_is_logged_with_its_counts(
    store: SqlStore, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    findings = _findings(make_session, make_finding, 2)

    with capture_logs() as logs:
        store.commit_batch(findings=findings, sessions=[], checkpoint=("s", "1"), run_id="r-9")

    (event,) = [e for e in logs if e["event"] == "store_batch_committed"]
    assert event["new_findings"] == 2
    assert event["findings"] == 2
    assert (event["run_id"], event["checkpoint_scope"]) == ("r-9", "s")
