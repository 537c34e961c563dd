"""Exceptions as first-class objects: scope matching, bounded expiry, YAML import, expiry.

An exception names a scope (principal / instance / account / CIDR / country / policy: every
field given must match), an owner, an approver, a justification and a required
``expires_at`` no further ahead than ``max_days``. Creating one moves matching open findings
to ``excepted``; new findings that match are stored excepted (the audit's finding hook);
when it expires, the findings it covered are flagged again and the expiry is trailed.
"""

from __future__ import annotations

import builtins
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import format_validation_error
from agent.errors import ConfigError, UsageError
from agent.models import Finding, FindingStatus, UtcDatetime
from agent.review.errors import NotFoundError
from agent.review.models import ExceptionRecord, ExceptionScope
from agent.store.review_store import ExceptionOutcome, ReviewStore
from agent.yamlio import load_yaml

__all__ = ["ExceptionRequest", "ExceptionService", "scope_matches"]

log = structlog.get_logger(__name__)


def scope_matches(scope: ExceptionScope, finding: Finding) -> bool:
    """True when every field of ``scope`` that is set matches ``finding``."""
    session = finding.session
    if scope.principal is not None and session.principal != scope.principal:
        return False
    if scope.instance is not None and scope.instance not in (
        session.instance_id,
        finding.instance.id,
    ):
        return False
    if scope.account is not None and session.account != scope.account:
        return False
    if scope.country is not None and finding.ip.country != scope.country:
        return False
    if scope.policy is not None and finding.policy_id != scope.policy:
        return False
    if scope.cidr is not None:
        try:
            address = ipaddress.ip_address(finding.ip.normalized or session.source_ip or "")
        except ValueError:
            return False
        try:
            network = ipaddress.ip_network(scope.cidr, strict=False)
        except ValueError:
            return False
        if address.version != network.version or address not in network:
            return False
    return True


class ExceptionRequest(BaseModel):
    """What a person asks for (API body, one YAML list item)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: ExceptionScope
    owner: str = Field(min_length=1, max_length=200)
    approver: str = Field(min_length=1, max_length=200)
    justification: str = Field(min_length=1, max_length=4000)
    expires_at: UtcDatetime


class _ExceptionFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exceptions: list[ExceptionRequest]


class ExceptionService:
    """Create, import, list and expire exceptions; apply active ones to new findings."""

    def __init__(
        self,
        store: ReviewStore,
        *,
        clock: Callable[[], datetime],
        max_days: int = 90,
        cache_seconds: float = 30.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self.max_days = max_days
        self._cache_seconds = cache_seconds
        self._active: tuple[float, list[ExceptionRecord]] | None = None
        self._lock = threading.Lock()

    # -- create -----------------------------------------------------------------------

    def _validate(self, request: ExceptionRequest) -> ExceptionScope:
        """Check people, text and expiry bounds; returns the normalised scope."""
        try:
            scope = request.scope.normalised()
        except ValueError as exc:
            raise UsageError(str(exc), hint="use a network such as 203.0.113.0/24") from exc
        now = self._clock()
        for name in ("owner", "approver", "justification"):
            if not str(getattr(request, name)).strip():
                raise UsageError(f"{name} must not be empty")
        if request.expires_at <= now:
            raise UsageError(
                f"expires_at {request.expires_at.isoformat()} is not in the future",
                hint="every exception needs an expiry date ahead of now",
            )
        limit = now + timedelta(days=self.max_days)
        if request.expires_at > limit:
            raise UsageError(
                f"expires_at {request.expires_at.isoformat()} is more than {self.max_days} "
                "days ahead",
                hint=f"choose a date before {limit.date().isoformat()} (server setting "
                "exception_max_days)",
            )
        return scope

    def create(
        self, request: ExceptionRequest, *, actor: str, origin: str = "api"
    ) -> ExceptionOutcome:
        """Store an exception and except the open findings it matches (all trailed)."""
        scope = self._validate(request)
        now = self._clock()
        record = ExceptionRecord(
            id="exc_" + secrets.token_hex(6),
            scope=scope,
            owner=request.owner.strip(),
            approver=request.approver.strip(),
            justification=request.justification.strip(),
            created_at=now,
            created_by=actor,
            expires_at=request.expires_at,
            origin=origin,
        )
        outcome = self._store.add_exception(record, matches=scope_matches, at=now)
        self.invalidate()
        log.info(
            "exception_created",
            exception_id=record.id,
            origin=origin,
            excepted=len(outcome.finding_ids),
            expires_at=record.expires_at.isoformat(),
        )
        return outcome

    def import_file(self, path: Path, *, actor: str) -> builtins.list[ExceptionOutcome]:
        """Create every exception in a reviewed YAML file (all validated before any is stored)."""
        doc = load_yaml(path)
        try:
            parsed = _ExceptionFile.model_validate(doc.data if doc.data is not None else {})
        except ValidationError as exc:
            raise ConfigError(
                "\n".join(format_validation_error(exc, name=str(path), lines=doc.lines)),
                hint="see docs/api.md 'Exceptions file'",
            ) from exc
        problems = []
        for index, item in enumerate(parsed.exceptions):
            try:
                self._validate(item)
            except UsageError as exc:
                line = doc.lines.line_for(("exceptions", index, "expires_at"))
                problems.append(f"{path}:{line or 1}: exceptions[{index}]: {exc.message}")
        if problems:
            raise ConfigError("\n".join(problems), hint="fix the file and import it again")
        return [
            self.create(item, actor=actor, origin=f"file:{path.name}") for item in parsed.exceptions
        ]

    # -- read and expire --------------------------------------------------------------

    def list(self, *, active_only: bool = False) -> builtins.list[ExceptionRecord]:
        """Exceptions (only the active ones if asked)."""
        return self._store.list_exceptions(active_at=self._clock() if active_only else None)

    def get(self, exception_id: str) -> ExceptionRecord | None:
        """One exception by id."""
        return self._store.get_exception(exception_id)

    def expire_due(self, *, actor: str = "system") -> builtins.list[ExceptionOutcome]:
        """Expire every exception whose ``expires_at`` has passed; re-flag its findings."""
        outcomes = self._store.expire_exceptions(now=self._clock(), actor=actor)
        if outcomes:
            self.invalidate()
        return outcomes

    def expire_now(self, exception_id: str, *, actor: str) -> ExceptionOutcome:
        """End one exception early (its findings are flagged again)."""
        outcomes = self._store.expire_exceptions(now=self._clock(), actor=actor, ids=[exception_id])
        if not outcomes:
            if self._store.get_exception(exception_id) is None:
                raise NotFoundError(f"exception {exception_id} does not exist")
            raise UsageError(
                f"exception {exception_id} has already expired",
                hint="see `chipwarden exceptions list`",
            )
        self.invalidate()
        return outcomes[0]

    # -- the finding hook -------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the cached active exceptions (after a change)."""
        with self._lock:
            self._active = None

    def active(self) -> builtins.list[ExceptionRecord]:
        """Active exceptions, cached for ``cache_seconds``."""
        now = time.monotonic()
        with self._lock:
            cached = self._active
        if cached is not None and cached[0] > now:
            return [e for e in cached[1] if e.active(self._clock())]
        records = self._store.list_exceptions(active_at=self._clock())
        with self._lock:
            self._active = (now + self._cache_seconds, records)
        return records

    def apply(self, finding: Finding) -> Finding:
        """Finding hook: mark a new finding excepted when an active exception covers it."""
        if finding.status is not FindingStatus.OPEN:
            return finding
        for record in self.active():
            if scope_matches(record.scope, finding):
                extra: dict[str, Any] = {**finding.extra, "exception_id": record.id}
                return finding.model_copy(update={"status": FindingStatus.EXCEPTED, "extra": extra})
        return finding
