"""Request and response bodies of the HTTP API (documented in the OpenAPI schema)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.models import AccessMethod, AuditRun, Finding, Outcome, Severity, UtcDatetime
from agent.review.models import ExceptionRecord, ResolveReason, TrailEntry

__all__ = [
    "ErrorBody",
    "EvaluateRequest",
    "EvaluateResponse",
    "ExceptionList",
    "ExceptionResult",
    "FindingDetail",
    "FindingList",
    "HealthBody",
    "IngestResult",
    "IpOut",
    "MatchedPolicy",
    "ReadyBody",
    "ReviewBody",
    "ReviewResult",
    "RunList",
    "UserAction",
]

Text200 = Field(default=None, max_length=200)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(BaseModel):
    """Every 4xx/5xx raised on purpose: a message and, for chipwarden errors, code and hint."""

    detail: str
    code: str | None = None
    hint: str | None = None


class HealthBody(BaseModel):
    """``/healthz``: the process is up."""

    status: Literal["ok"]


class ReadyBody(BaseModel):
    """``/readyz``: what is loaded and whether the store answers."""

    ready: bool
    policies: int
    bundle_revision: str
    store: bool
    geo: list[str]
    instances: int
    problems: list[str] = Field(default_factory=list)


class FindingList(BaseModel):
    """A page of findings; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[Finding]
    next_cursor: str | None


class FindingDetail(BaseModel):
    """One finding with its session id and review history (oldest first)."""

    finding: Finding
    session_id: str
    history: list[TrailEntry]


class RunList(BaseModel):
    """Audit runs, newest first, each with its ScopeErrors."""

    items: list[AuditRun]


class UserAction(StrEnum):
    """Review actions a reviewer may request."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    COMMENT = "comment"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    REOPEN = "reopen"


class ReviewBody(_In):
    """``POST /v1/findings/{id}/review``: ``reason`` only with resolve, ``assignee`` only with
    assign, ``note`` required with comment."""

    action: UserAction
    note: str = Field(default="", max_length=4000)
    reason: ResolveReason | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=200)


class ReviewResult(BaseModel):
    """The finding after the action and the trail entry that records it."""

    finding: Finding
    entry: TrailEntry


class ExceptionResult(BaseModel):
    """An exception and the findings this operation excepted or flagged again."""

    exception: ExceptionRecord
    finding_ids: list[str]


class ExceptionList(BaseModel):
    """Exceptions, soonest expiry first."""

    items: list[ExceptionRecord]


class EvaluateRequest(_In):
    """A gateway asking before admitting a session."""

    source_ip: str = Field(min_length=1, max_length=100)
    principal: str | None = Field(default=None, max_length=512)
    method: AccessMethod = AccessMethod.SSH
    provider: str = Field(default="gateway", min_length=1, max_length=40)
    account: str | None = Text200
    region: str | None = Field(default=None, max_length=64)
    instance_id: str | None = Text200
    instance_type: str | None = Field(default=None, max_length=100)
    outcome: Outcome = Outcome.SUCCESS
    at: UtcDatetime | None = None
    attributes: dict[str, str] = Field(default_factory=dict, max_length=32)
    record: bool = False


class IpOut(BaseModel):
    """What the service knows about the source IP."""

    address: str
    kind: str
    country: str | None
    subdivision: str | None
    asn: int | None
    asn_org: str | None
    tags: list[str]
    unknown_reason: str | None


class MatchedPolicy(BaseModel):
    """One policy that matched (or was indeterminate) for the session."""

    policy_id: str
    severity: Severity
    title: str
    reasons: list[str]
    jurisdictions: list[str]
    citations: list[str]
    indeterminate: bool
    excepted: bool
    exception_id: str | None = None
    finding_id: str


class EvaluateResponse(BaseModel):
    """The decision with its reasons, like an OPA decision (``decision_id`` for the logs)."""

    decision_id: str
    decision: Literal["allow", "deny"]
    allow: bool
    deny_severity: Severity
    evaluated_at: UtcDatetime
    bundle_revision: str
    ip: IpOut
    instance_in_inventory: bool
    accelerators: list[dict[str, str | float]]
    matched: list[MatchedPolicy]
    recorded: bool


class IngestResult(BaseModel):
    """What one webhook body produced."""

    sessions: int
    findings: int
    new_findings: int
    item_errors: list[str]
