"""The review workflow: which action may move a finding from which status to which."""

from __future__ import annotations

import pytest

from agent.errors import UsageError
from agent.models import FindingStatus
from agent.review.models import ResolveReason, ReviewAction
from agent.review.workflow import ReviewRequest, TransitionError, plan_review
from tests.agent.review.reviewkit import T0, build_finding

S = FindingStatus


def _req(action: ReviewAction, **kw: object) -> ReviewRequest:
    return ReviewRequest(action=action, actor="rita", at=T0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "action", "extra", "end"),
    [
        (S.OPEN, ReviewAction.ACKNOWLEDGE, {}, S.ACKNOWLEDGED),
        (S.ESCALATED, ReviewAction.ACKNOWLEDGE, {}, S.ACKNOWLEDGED),
        (S.OPEN, ReviewAction.ESCALATE, {}, S.ESCALATED),
        (S.ACKNOWLEDGED, ReviewAction.ESCALATE, {}, S.ESCALATED),
        (S.OPEN, ReviewAction.RESOLVE, {"reason": ResolveReason.FALSE_POSITIVE}, S.RESOLVED),
        (S.ESCALATED, ReviewAction.RESOLVE, {"reason": ResolveReason.AUTHORISED}, S.RESOLVED),
        (S.RESOLVED, ReviewAction.REOPEN, {}, S.OPEN),
        (S.EXCEPTED, ReviewAction.REOPEN, {}, S.OPEN),
        (S.OPEN, ReviewAction.ASSIGN, {"assignee": "sam"}, S.OPEN),
        (S.RESOLVED, ReviewAction.COMMENT, {"note": "checked again"}, S.RESOLVED),
    ],
)
def test_allowed_actions_move_the_status_as_documented(
    start: FindingStatus, action: ReviewAction, extra: dict[str, object], end: FindingStatus
) -> None:
    change = plan_review(build_finding(status=start), _req(action, **extra))

    assert change.status is end
    assert change.trail.from_status == start.value
    assert change.trail.to_status == end.value
    assert change.trail.action is action
    assert change.trail.actor == "rita"


@pytest.mark.parametrize(
    ("start", "action"),
    [
        (S.RESOLVED, ReviewAction.ACKNOWLEDGE),
        (S.RESOLVED, ReviewAction.RESOLVE),
        (S.OPEN, ReviewAction.REOPEN),
        (S.EXCEPTED, ReviewAction.ESCALATE),
        (S.ESCALATED, ReviewAction.ESCALATE),
    ],
)
def test_disallowed_transitions_are_refused_with_the_allowed_statuses(
    start: FindingStatus, action: ReviewAction
) -> None:
    extra = {"reason": ResolveReason.DUPLICATE} if action is ReviewAction.RESOLVE else {}

    with pytest.raises(TransitionError) as caught:
        plan_review(build_finding(status=start), _req(action, **extra))

    assert start.value in caught.value.message
    assert caught.value.hint and caught.value.hint.startswith("allowed from:")


def test_resolve_records_the_reason_on_the_finding_and_in_the_trail() -> None:
    change = plan_review(
        build_finding(), _req(ReviewAction.RESOLVE, reason=ResolveReason.DUPLICATE)
    )

    assert change.extra["resolution"] == "duplicate"
    assert change.trail.details == {"reason": "duplicate"}


def test_reopen_clears_the_resolution_and_the_exception_link() -> None:
    finding = build_finding(
        status=S.RESOLVED, extra={"resolution": "false-positive", "assignee": "sam"}
    )

    change = plan_review(finding, _req(ReviewAction.REOPEN))

    assert change.extra == {"assignee": "sam"}
    assert change.extra_removed == ("resolution",)


@pytest.mark.parametrize(
    ("action", "kwargs", "fragment"),
    [
        (ReviewAction.RESOLVE, {}, "needs a reason"),
        (
            ReviewAction.ACKNOWLEDGE,
            {"reason": ResolveReason.DUPLICATE},
            "only accepted with resolve",
        ),
        (ReviewAction.ASSIGN, {"assignee": "  "}, "needs an assignee"),
        (ReviewAction.COMMENT, {"note": " "}, "needs a note"),
        (ReviewAction.EXCEPTION_EXPIRED, {}, "recorded by the service"),
        (ReviewAction.COMMENT, {"note": "x" * 4001}, "over 4000"),
    ],
)
def test_malformed_requests_are_usage_errors(
    action: ReviewAction, kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(UsageError) as caught:
        plan_review(build_finding(), _req(action, **kwargs))

    assert fragment in caught.value.message
    assert not isinstance(caught.value, TransitionError)
