"""Review workflow rules: which action may move a finding from which status to which.

Pure functions over a ``Finding``; the store applies the resulting ``FindingChange`` and its
trail entry in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.errors import UsageError
from agent.models import Finding, FindingStatus
from agent.review.models import ResolveReason, ReviewAction, TrailDraft

__all__ = ["FindingChange", "ReviewRequest", "TransitionError", "plan_review"]

_S = FindingStatus

# action -> (statuses it may start from, status it leads to; None keeps the status)
_TRANSITIONS: dict[ReviewAction, tuple[frozenset[FindingStatus], FindingStatus | None]] = {
    ReviewAction.ACKNOWLEDGE: (frozenset({_S.OPEN, _S.ESCALATED}), _S.ACKNOWLEDGED),
    ReviewAction.ASSIGN: (frozenset({_S.OPEN, _S.ACKNOWLEDGED, _S.ESCALATED}), None),
    ReviewAction.COMMENT: (frozenset(_S), None),
    ReviewAction.ESCALATE: (frozenset({_S.OPEN, _S.ACKNOWLEDGED}), _S.ESCALATED),
    ReviewAction.RESOLVE: (frozenset({_S.OPEN, _S.ACKNOWLEDGED, _S.ESCALATED}), _S.RESOLVED),
    ReviewAction.REOPEN: (frozenset({_S.RESOLVED, _S.EXCEPTED}), _S.OPEN),
}

MAX_NOTE = 4000


class TransitionError(UsageError):
    """The action is not allowed from the finding's current status (HTTP 409)."""

    code = "invalid_transition"


@dataclass(frozen=True)
class ReviewRequest:
    """One reviewer action as asked for (API body or CLI flags)."""

    action: ReviewAction
    actor: str
    at: datetime
    note: str = ""
    reason: ResolveReason | None = None
    assignee: str | None = None


@dataclass(frozen=True)
class FindingChange:
    """New status and ``extra`` for a finding, plus the trail entry that records it."""

    status: FindingStatus
    extra: dict[str, str]
    trail: TrailDraft
    extra_removed: tuple[str, ...] = field(default=())


def _check(request: ReviewRequest) -> None:
    if request.action not in _TRANSITIONS:
        raise UsageError(
            f"{request.action.value!r} is recorded by the service, not requested",
            hint="use acknowledge, assign, comment, escalate, resolve or reopen",
        )
    if len(request.note) > MAX_NOTE:
        raise UsageError(f"note is {len(request.note)} characters, over {MAX_NOTE}")
    if request.action is ReviewAction.RESOLVE and request.reason is None:
        raise UsageError(
            "resolve needs a reason",
            hint="reason: " + ", ".join(r.value for r in ResolveReason),
        )
    if request.action is not ReviewAction.RESOLVE and request.reason is not None:
        raise UsageError("a reason is only accepted with resolve")
    if request.action is ReviewAction.ASSIGN and not (request.assignee or "").strip():
        raise UsageError("assign needs an assignee")
    if request.action is not ReviewAction.ASSIGN and request.assignee is not None:
        raise UsageError("an assignee is only accepted with assign")
    if request.action is ReviewAction.COMMENT and not request.note.strip():
        raise UsageError("comment needs a note")


def plan_review(finding: Finding, request: ReviewRequest) -> FindingChange:
    """The change ``request`` makes to ``finding``; ``TransitionError`` when not allowed."""
    _check(request)
    allowed_from, target = _TRANSITIONS[request.action]
    if finding.status not in allowed_from:
        raise TransitionError(
            f"cannot {request.action.value} a finding that is {finding.status.value}",
            hint="allowed from: " + ", ".join(sorted(s.value for s in allowed_from)),
        )
    status = target or finding.status
    extra = dict(finding.extra)
    removed: list[str] = []
    details: dict[str, str] = {}
    if request.action is ReviewAction.ASSIGN:
        assert request.assignee is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        extra["assignee"] = details["assignee"] = request.assignee.strip()
    if request.action is ReviewAction.RESOLVE:
        assert request.reason is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        extra["resolution"] = details["reason"] = request.reason.value
    if request.action is ReviewAction.REOPEN:
        for key in ("resolution", "exception_id"):
            if extra.pop(key, None) is not None:
                removed.append(key)
    draft = TrailDraft(
        finding_id=finding.id,
        at=request.at,
        actor=request.actor,
        action=request.action,
        from_status=finding.status.value,
        to_status=status.value,
        note=request.note,
        details=details,
    )
    return FindingChange(status=status, extra=extra, trail=draft, extra_removed=tuple(removed))
