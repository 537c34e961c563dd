"""What ``chipwarden audit`` runs around ``run_audit``: exception expiry before, API-managed
exceptions on every new finding, notifiers after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from agent.config import AppConfig, format_validation_error
from agent.errors import ConfigError
from agent.models import AuditRun, Finding
from agent.notify.dispatch import NotificationDispatcher, NotifierTarget
from agent.review.exceptions import ExceptionService
from agent.store import SqlStore
from agent.store.review_store import ReviewStore
from agent.yamlio import YamlDocument

__all__ = ["AuditHooks", "build_audit_hooks", "parse_notifier_targets"]


@dataclass
class AuditHooks:
    """``finding_hook`` and ``after_run`` arguments for ``run_audit``."""

    finding_hook: Callable[[Finding], Finding] | None = None
    after_run: list[Callable[[AuditRun, list[Finding]], None]] = field(default_factory=list)
    expired: int = 0


def parse_notifier_targets(config: AppConfig, doc: YamlDocument | None) -> list[NotifierTarget]:
    """Validate the config's ``notifiers:`` list (errors name file:line and key path)."""
    targets, problems = [], []
    name = doc.name if doc else config.origin
    for index, raw in enumerate(config.notifiers):
        try:
            targets.append(NotifierTarget.model_validate(raw))
        except ValidationError as exc:
            problems.extend(
                format_validation_error(
                    exc, name=name, lines=doc.lines if doc else None, prefix=("notifiers", index)
                )
            )
    if problems:
        raise ConfigError("\n".join(problems), hint="see docs/api.md 'Notifiers'")
    return targets


def build_audit_hooks(
    *,
    config: AppConfig,
    doc: YamlDocument | None,
    store: SqlStore,
    clock: Callable[[], datetime],
) -> AuditHooks:
    """Expire due exceptions now, then return the hooks for the run."""
    exceptions = ExceptionService(ReviewStore(store), clock=clock)
    expired = exceptions.expire_due(actor="audit")
    targets = parse_notifier_targets(config, doc)
    after: list[Callable[[AuditRun, list[Finding]], None]] = []
    if targets:
        after.append(NotificationDispatcher(store=store, targets=targets, clock=clock))
    return AuditHooks(finding_hook=exceptions.apply, after_run=after, expired=len(expired))
