"""``ReviewService``: one object the CLI and the HTTP API share for reviews, exceptions,
tokens and trail verification over an open ``SqlStore``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from agent.errors import UsageError
from agent.models import Finding
from agent.review.errors import NotFoundError
from agent.review.exceptions import ExceptionService
from agent.review.models import TrailEntry, TrailReport
from agent.review.tokens import TokenService
from agent.review.workflow import ReviewRequest, plan_review
from agent.store import SqlStore
from agent.store.review_store import ReviewStore
from agent.store.service_queries import ServiceQueries

__all__ = ["NotFoundError", "ReviewService"]

log = structlog.get_logger(__name__)


class ReviewService:
    """Reviews, exceptions, tokens and the trail over one store."""

    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Callable[[], datetime],
        pepper: str | None = None,
        exception_max_days: int = 90,
        token_cache_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.reviews = ReviewStore(store)
        self.queries = ServiceQueries(store)
        self.exceptions = ExceptionService(self.reviews, clock=clock, max_days=exception_max_days)
        self._pepper = pepper
        self._token_cache_seconds = token_cache_seconds
        self._tokens: TokenService | None = None

    @property
    def tokens(self) -> TokenService:
        """Token service; needs the pepper (``UsageError`` with a hint when it is missing)."""
        if self._tokens is None:
            if not self._pepper:
                raise UsageError(
                    "no token pepper configured",
                    hint="set CHIPWARDEN_TOKEN_PEPPER (a long random secret shared by the "
                    "server and the CLI)",
                )
            self._tokens = TokenService(
                self.reviews,
                pepper=self._pepper,
                clock=self.clock,
                cache_seconds=self._token_cache_seconds,
            )
        return self._tokens

    def finding(self, finding_id: str) -> Finding:
        """One finding or ``NotFoundError``."""
        found = self.store.get_finding(finding_id)
        if found is None:
            raise NotFoundError(f"finding {finding_id} does not exist")
        return found

    def review(self, finding_id: str, request: ReviewRequest) -> tuple[Finding, TrailEntry]:
        """Apply one review action and append it to the trail (one transaction)."""
        result = self.reviews.review_finding(finding_id, lambda f: plan_review(f, request))
        if result is None:
            raise NotFoundError(f"finding {finding_id} does not exist")
        finding, entry = result
        log.info(
            "finding_reviewed",
            finding_id=finding_id,
            action=request.action.value,
            actor=request.actor,
            status=finding.status.value,
            trail_seq=entry.seq,
        )
        return result

    def history(self, finding_id: str) -> list[TrailEntry]:
        """The trail entries of one finding, oldest first."""
        return self.reviews.trail(finding_id=finding_id)

    def verify_trail(self) -> TrailReport:
        """Recompute the whole hash chain."""
        return self.reviews.verify_trail()
