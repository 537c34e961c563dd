"""An audit run: what was read, what failed, what was quarantined."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from agent.models.base import Frozen, UtcDatetime

__all__ = ["AuditRun", "QuarantinedRecord", "RunCounts", "RunStatus", "ScopeError"]


class ScopeError(Frozen):
    """A part of the audit scope (account, region, file) that could not be read.

    A ScopeError makes the run partial (exit code 4): "no sessions" after AccessDenied would be
    a false negative.
    """

    source: str
    scope: str
    code: str
    message: str
    remediation: str | None = None
    permission: str | None = None


class QuarantinedRecord(Frozen):
    """A malformed record set aside with where it was and why."""

    source: str
    locator: str
    position: str | None = None
    reason: str


class RunCounts(Frozen):
    """Reconciling counters: read = sessions + ignored + quarantined."""

    read: int = 0
    sessions: int = 0
    ignored: int = 0
    quarantined: int = 0
    evaluated: int = 0
    findings: int = 0
    new_findings: int = 0


class RunStatus(StrEnum):
    """How a run ended."""

    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"


class AuditRun(Frozen):
    """Summary of one ``chipwarden audit``."""

    id: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    status: RunStatus = RunStatus.RUNNING
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    sources: tuple[str, ...] = ()
    counts: RunCounts = Field(default_factory=RunCounts)
    scope_errors: tuple[ScopeError, ...] = ()
    quarantined: tuple[QuarantinedRecord, ...] = ()
    bundle_revision: str | None = None
    geo_sources: tuple[str, ...] = ()
