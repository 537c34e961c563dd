"""The review trail: every change appended, hash-chained, and tampering detected."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text

from agent.cli import run
from agent.models import FindingStatus
from agent.review.models import GENESIS_HASH, ResolveReason, ReviewAction, TrailDraft
from agent.review.service import NotFoundError, ReviewService
from agent.review.trail import seal, verify_chain
from agent.review.workflow import ReviewRequest
from agent.store import SqlStore
from tests.agent.review.reviewkit import T0, build_finding, build_session, seed


def _review(service: ReviewService, fid: str, action: ReviewAction, **kw: object) -> None:
    service.review(fid, ReviewRequest(action=action, actor="rita", at=T0, **kw))  # type: ignore[arg-type]


@pytest.fixture
def reviewed(service: ReviewService, store: SqlStore) -> ReviewService:
    """Two findings with five review entries between them."""
    a, b = seed(store, [build_finding(), build_finding(build_session("evt-2"))])
    _review(service, a.id, ReviewAction.ACKNOWLEDGE)
    _review(service, a.id, ReviewAction.COMMENT, note="called the user")
    _review(service, b.id, ReviewAction.ESCALATE)
    _review(service, a.id, ReviewAction.RESOLVE, reason=ResolveReason.FALSE_POSITIVE)
    _review(service, b.id, ReviewAction.ASSIGN, assignee="sam")
    return service


def test_each_review_updates_the_finding_and_appends_one_chained_entry(
    reviewed: ReviewService, store: SqlStore
) -> None:
    entries = reviewed.reviews.trail()

    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(entries))
    first = store.get_finding(entries[0].finding_id or "")
    assert first is not None and first.status is FindingStatus.RESOLVED
    assert first.extra["resolution"] == "false-positive"
    assert reviewed.reviews.trail_head() == (5, entries[-1].hash)


def test_history_lists_only_that_findings_entries_oldest_first(reviewed: ReviewService) -> None:
    fid = reviewed.reviews.trail()[0].finding_id or ""

    history = reviewed.history(fid)

    assert [e.action for e in history] == [
        ReviewAction.ACKNOWLEDGE,
        ReviewAction.COMMENT,
        ReviewAction.RESOLVE,
    ]
    assert history[1].note == "called the user"


def test_an_intact_trail_verifies(reviewed: ReviewService) -> None:
    report = reviewed.verify_trail()

    assert report.ok and report.entries == 5 and report.head_seq == 5


@pytest.mark.parametrize(
    ("statement", "bad_seq", "fragment"),
    [
        ("UPDATE review_trail SET note = 'nothing to see' WHERE seq = 2", 2, "changed"),
        ("UPDATE review_trail SET actor = 'mallory' WHERE seq = 1", 1, "changed"),
        ("UPDATE review_trail SET to_status = 'open' WHERE seq = 4", 4, "changed"),
        ("DELETE FROM review_trail WHERE seq = 3", 3, "missing"),
        ("DELETE FROM review_trail WHERE seq = 5", 5, "head"),
        ("UPDATE review_trail_head SET seq = 4", 5, "head"),
    ],
)
def test_editing_or_removing_a_stored_entry_is_detected(
    reviewed: ReviewService, store: SqlStore, statement: str, bad_seq: int, fragment: str
) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))

    report = reviewed.verify_trail()

    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert fragment in (report.problem or "")


def test_rehashing_an_edited_entry_still_breaks_the_link_to_the_next(
    reviewed: ReviewService, store: SqlStore
) -> None:
    victim = reviewed.reviews.trail()[1]
    forged = seal(
        TrailDraft(**{**victim.model_dump(include=set(TrailDraft.model_fields)), "note": "forged"}),
        seq=victim.seq,
        prev_hash=victim.prev_hash,
        entry_id=victim.id,
    )
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE review_trail SET note = :n, hash = :h WHERE seq = :s"),
            {"n": forged.note, "h": forged.hash, "s": victim.seq},
        )

    report = reviewed.verify_trail()

    assert not report.ok and report.first_bad_seq == 3
    assert "does not link" in (report.problem or "")


def test_verify_chain_of_nothing_matches_an_empty_head() -> None:
    assert verify_chain([], head=(0, GENESIS_HASH)).ok


def test_reviewing_an_unknown_finding_is_not_found(service: ReviewService) -> None:
    with pytest.raises(NotFoundError):
        _review(service, "f" * 32, ReviewAction.ACKNOWLEDGE)
    assert service.reviews.trail() == []


def test_cli_verify_trail_exits_zero_then_five_after_tampering(
    reviewed: ReviewService,
    store: SqlStore,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["findings", "verify-trail", "--store", store_url]) == 0
    assert "intact (5 entries" in capsys.readouterr().out

    with store.engine.begin() as conn:
        conn.execute(text("UPDATE review_trail SET note = 'edited' WHERE seq = 2"))

    assert run(["findings", "verify-trail", "--store", store_url]) == 5
    assert "BROKEN at entry 2" in capsys.readouterr().err
