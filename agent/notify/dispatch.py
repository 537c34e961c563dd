"""Send new or changed findings to each configured notifier, at most once per change.

For every target: findings at or above ``min_severity`` whose status is still actionable
(open, escalated) and whose fingerprint (severity, status, title, reasons) differs from what
that target last received; plus every delivery that failed before. Each batch is retried
with exponential backoff (tenacity); a batch that still fails is recorded as undelivered and
retried on the next run. Nothing here raises into the audit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import Retrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from agent.errors import ConfigError, UsageError
from agent.export.tabular import export_dict
from agent.models import AuditRun, Finding, FindingStatus, Severity
from agent.notify.base import Notification, Notifier, load_notifier, notifier_key, redact_url
from agent.store import SqlStore
from agent.store.service_queries import Delivery, ServiceQueries

__all__ = ["DispatchResult", "NotificationDispatcher", "NotifierTarget", "fingerprint"]

log = structlog.get_logger(__name__)

ACTIONABLE = (FindingStatus.OPEN, FindingStatus.ESCALATED)


class NotifierTarget(BaseModel):
    """One ``notifiers:`` config entry; the URL may come from an env var (it is a secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    url_env: str | None = None
    min_severity: Severity = Severity.HIGH
    batch_size: int = Field(default=20, ge=1, le=100)
    attempts: int = Field(default=4, ge=1, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)

    @model_validator(mode="after")
    def _one_url(self) -> NotifierTarget:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self

    def resolved_url(self) -> str:
        """The URL (read from ``url_env`` when given)."""
        if self.url is not None:
            return self.url
        assert self.url_env is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        value = os.environ.get(self.url_env)
        if not value:
            raise ConfigError(
                f"notifier url_env {self.url_env} is not set",
                hint=f"export {self.url_env}=<the webhook or topic URL>",
            )
        return value


def fingerprint(finding: Finding) -> str:
    """What makes a finding 'changed' for notifications."""
    text = "\x1f".join(
        (finding.severity.value, finding.status.value, finding.title, *finding.reasons)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class DispatchResult:
    """Per-target counts of one dispatch."""

    target: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class _Target:
    key: str
    shown: str
    notifier: Notifier
    config: NotifierTarget


class NotificationDispatcher:
    """The ``after_run`` hook that notifies; safe to call with any findings list."""

    def __init__(
        self,
        *,
        store: SqlStore,
        targets: Sequence[NotifierTarget],
        clock: Callable[[], datetime],
        notifier_options: dict[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._queries = ServiceQueries(store)
        self._clock = clock
        self._targets: list[_Target] = []
        for config in targets:
            url = config.resolved_url()
            self._targets.append(
                _Target(
                    key=notifier_key(url),
                    shown=redact_url(url),
                    notifier=load_notifier(url, **(notifier_options or {})),
                    config=config,
                )
            )

    def __call__(self, run: AuditRun, findings: list[Finding]) -> None:
        """``run_audit`` after-run hook."""
        self.dispatch(findings, run_id=run.id)

    def dispatch(self, findings: Sequence[Finding], *, run_id: str | None) -> list[DispatchResult]:
        """Notify every target; returns what happened per target."""
        return [self._one(target, findings, run_id=run_id) for target in self._targets]

    def _due(self, target: _Target, findings: Sequence[Finding]) -> tuple[list[Finding], int]:
        wanted = {
            f.id: f
            for f in findings
            if f.severity >= target.config.min_severity and f.status in ACTIONABLE
        }
        for pending in self._queries.undelivered(target.key):
            if pending.finding_id not in wanted:
                found = self._store.get_finding(pending.finding_id)
                if (
                    found is not None
                    and found.status in ACTIONABLE
                    and found.severity >= target.config.min_severity
                ):
                    wanted[found.id] = found
        known = self._queries.deliveries(target.key, list(wanted))
        due = [
            f
            for fid, f in sorted(wanted.items())
            if not (
                fid in known and known[fid].delivered and known[fid].fingerprint == fingerprint(f)
            )
        ]
        return due, len(wanted) - len(due)

    def _one(
        self, target: _Target, findings: Sequence[Finding], *, run_id: str | None
    ) -> DispatchResult:
        result = DispatchResult(target=target.shown)
        try:
            due, result.skipped = self._due(target, findings)
        except Exception as exc:
            log.warning("notify_failed", target=target.shown, error=str(exc))
            return result
        size = target.config.batch_size
        previous = self._queries.deliveries(target.key, [f.id for f in due]) if due else {}
        for start in range(0, len(due), size):
            batch = due[start : start + size]
            error = self._send(target, batch, run_id=run_id)
            now = self._clock()
            self._queries.save_deliveries(
                [
                    Delivery(
                        notifier=target.key,
                        finding_id=f.id,
                        fingerprint=fingerprint(f),
                        delivered=error is None,
                        attempts=(previous[f.id].attempts if f.id in previous else 0) + 1,
                        last_error=error,
                        updated_at=now,
                    )
                    for f in batch
                ]
            )
            if error is None:
                result.sent += len(batch)
            else:
                result.failed += len(batch)
        log.info(
            "notify_dispatched",
            target=target.shown,
            sent=result.sent,
            failed=result.failed,
            skipped=result.skipped,
        )
        return result

    def _send(self, target: _Target, batch: Sequence[Finding], *, run_id: str | None) -> str | None:
        worst = max(f.severity for f in batch)
        subject = f"chipwarden: {len(batch)} flagged GPU session(s), worst {worst.value}"
        text = (
            subject
            + "\n"
            + "\n".join(
                f"- [{f.severity.value}] {f.title} ({f.session.source_ip or '-'} "
                f"{f.ip.country or ''} -> {f.instance.id or '-'}) id={f.id}"
                for f in batch
            )
        )
        note = Notification(
            subject=subject,
            text=text,
            payload={
                "source": "chipwarden",
                "run_id": run_id,
                "findings": [export_dict(f) for f in batch],
            },
        )
        retrying = Retrying(
            stop=stop_after_attempt(target.config.attempts),
            wait=wait_exponential(multiplier=target.config.backoff_seconds, max=30),
            retry=retry_if_not_exception_type(UsageError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        log.info(
                            "notify_retry",
                            target=target.shown,
                            attempt=attempt.retry_state.attempt_number,
                        )
                    target.notifier.send(note)
        except UsageError as exc:
            return exc.message
        except Exception as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.warning("notify_failed", target=target.shown, error=message, findings=len(batch))
            return str(message)[:500]
        return None
