"""``ReviewStore``: the review trail, exceptions and API tokens next to a ``SqlStore``.

Every change to a finding's status and the trail entry that records it are written in ONE
transaction; trail appends lock the chain head row first, so concurrent reviewers (or two
server replicas on PostgreSQL) extend the chain one after the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Table, select

from agent.models import Finding, FindingStatus
from agent.review.models import (
    ApiToken,
    ExceptionRecord,
    ExceptionScope,
    ReviewAction,
    Role,
    TrailDraft,
    TrailEntry,
    TrailReport,
)
from agent.review.trail import seal, verify_chain
from agent.store.codec import finding_from_row
from agent.store.engine import WRITE_OPTIONS, store_errors
from agent.store.schema_review import ApiTokenRow, ExceptionRow, TrailHeadRow, TrailRow
from agent.store.sqlstore import SqlStore
from agent.store.statements import FINDINGS

__all__ = ["ExceptionOutcome", "ReviewStore"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
TRAIL: Table = TrailRow.__table__  # type: ignore[assignment]
HEAD: Table = TrailHeadRow.__table__  # type: ignore[assignment]
TOKENS: Table = ApiTokenRow.__table__  # type: ignore[assignment]
EXCEPTIONS: Table = ExceptionRow.__table__  # type: ignore[assignment]

_PAGE = 1000
REVIEWABLE = (FindingStatus.OPEN, FindingStatus.ACKNOWLEDGED, FindingStatus.ESCALATED)
"""Statuses an exception may move to ``excepted`` (resolved ones stay resolved)."""

Plan = Callable[[Finding], Any]
"""Returns an object with ``status``, ``extra`` and ``trail`` (``workflow.FindingChange``)."""
ScopeMatch = Callable[[ExceptionScope, Finding], bool]


class ExceptionOutcome:
    """An exception and the findings one operation moved (excepted or re-flagged)."""

    def __init__(self, record: ExceptionRecord, finding_ids: list[str]) -> None:
        self.record = record
        self.finding_ids = finding_ids


def _mappings(query: Any, conn: Connection) -> Sequence[Any]:
    return conn.execute(query).mappings().all()


def _entry_from_row(row: Any) -> TrailEntry:
    return TrailEntry.model_validate(dict(row))


def _exception_from_row(row: Any) -> ExceptionRecord:
    return ExceptionRecord.model_validate(dict(row))


def _scope_conditions(scope: ExceptionScope) -> list[Any]:
    """SQL pre-filter on the finding columns a scope names (CIDR is checked in Python)."""
    pairs = (
        (FINDINGS.c.principal, scope.principal),
        (FINDINGS.c.instance_id, scope.instance),
        (FINDINGS.c.account, scope.account),
        (FINDINGS.c.country, scope.country),
        (FINDINGS.c.policy_id, scope.policy),
    )
    return [column == value for column, value in pairs if value is not None]


class ReviewStore:
    """Trail, exceptions and tokens in the same database as ``store``."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._engine = store.engine
        self._writer = store.engine.execution_options(**WRITE_OPTIONS)
        self._target = store.target

    @property
    def findings(self) -> SqlStore:
        """The finding store this review store sits next to."""
        return self._store

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:
        with store_errors(action, self._target), self._writer.begin() as conn:
            return work(conn)

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:
        with store_errors(action, self._target), self._engine.connect() as conn:
            return work(conn)

    # -- trail ------------------------------------------------------------------------

    def _append(self, conn: Connection, drafts: Sequence[TrailDraft]) -> list[TrailEntry]:
        head = conn.execute(
            select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
        ).one()
        seq, prev = int(head.seq), str(head.hash)
        entries = []
        for draft in drafts:
            seq += 1
            entry = seal(draft, seq=seq, prev_hash=prev)
            entries.append(entry)
            prev = entry.hash
        if entries:
            conn.execute(TRAIL.insert(), [e.model_dump(mode="python") for e in entries])
            conn.execute(HEAD.update().where(HEAD.c.id == 1).values(seq=seq, hash=prev))
        return entries

    def append_trail(self, drafts: Sequence[TrailDraft]) -> list[TrailEntry]:
        """Seal and append entries that change no finding (e.g. an exception was created)."""
        return self._write("append to the review trail", lambda conn: self._append(conn, drafts))

    def review_finding(self, finding_id: str, plan: Plan) -> tuple[Finding, TrailEntry] | None:
        """Apply ``plan(finding)`` and its trail entry atomically; ``None`` if no such finding."""

        def work(conn: Connection) -> tuple[Finding, TrailEntry] | None:
            row = (
                conn.execute(select(FINDINGS).where(FINDINGS.c.id == finding_id).with_for_update())
                .mappings()
                .first()
            )
            if row is None:
                return None
            finding = finding_from_row(row)
            change = plan(finding)
            conn.execute(
                FINDINGS.update()
                .where(FINDINGS.c.id == finding_id)
                .values(status=change.status.value, extra=change.extra)
            )
            (entry,) = self._append(conn, [change.trail])
            updated = finding.model_copy(update={"status": change.status, "extra": change.extra})
            return updated, entry

        return self._write("review a finding", work)

    def trail(self, *, finding_id: str | None = None, limit: int = 1000) -> list[TrailEntry]:
        """Trail entries (of one finding, or all), oldest first."""
        query = select(TRAIL).order_by(TRAIL.c.seq).limit(limit)
        if finding_id is not None:
            query = query.where(TRAIL.c.finding_id == finding_id)
        rows = self._read("read the review trail", lambda c: c.execute(query).mappings().all())
        return [_entry_from_row(r) for r in rows]

    def iter_trail(self) -> Iterator[TrailEntry]:
        """Every trail entry in seq order, read in pages."""
        after = 0
        while True:
            query = select(TRAIL).where(TRAIL.c.seq > after).order_by(TRAIL.c.seq).limit(_PAGE)
            rows = self._read("read the review trail", partial(_mappings, query))
            for row in rows:
                yield _entry_from_row(row)
            if len(rows) < _PAGE:
                return
            after = int(rows[-1]["seq"])

    def trail_head(self) -> tuple[int, str]:
        """``(last seq, last hash)`` as recorded by the chain head."""
        query = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)
        row = self._read("read the trail head", lambda c: c.execute(query).one())
        return int(row.seq), str(row.hash)

    def verify_trail(self) -> TrailReport:
        """Recompute the whole chain; ``ok`` is False at the first tampered entry."""
        report = verify_chain(self.iter_trail(), head=self.trail_head())
        log.info("trail_verified", ok=report.ok, entries=report.entries, problem=report.problem)
        return report

    # -- exceptions -------------------------------------------------------------------

    def add_exception(
        self, record: ExceptionRecord, *, matches: ScopeMatch, at: datetime
    ) -> ExceptionOutcome:
        """Store ``record``, trail it, and move every matching reviewable finding to excepted."""

        def work(conn: Connection) -> ExceptionOutcome:
            row = record.model_dump(mode="python")
            row["scope"] = record.scope.model_dump(mode="json", exclude_none=True)
            conn.execute(EXCEPTIONS.insert(), [row])
            drafts = [
                TrailDraft(
                    at=at,
                    actor=record.created_by,
                    action=ReviewAction.EXCEPTION_CREATED,
                    note=record.justification,
                    details={
                        "exception_id": record.id,
                        "owner": record.owner,
                        "approver": record.approver,
                        "expires_at": record.expires_at.isoformat(),
                        "scope": ",".join(f"{k}={v}" for k, v in sorted(row["scope"].items())),
                    },
                )
            ]
            query = select(FINDINGS).where(
                FINDINGS.c.status.in_([s.value for s in REVIEWABLE]),
                *_scope_conditions(record.scope),
            )
            moved = []
            for frow in conn.execute(query).mappings().all():
                finding = finding_from_row(frow)
                if not matches(record.scope, finding):
                    continue
                extra = {**finding.extra, "exception_id": record.id}
                conn.execute(
                    FINDINGS.update()
                    .where(FINDINGS.c.id == finding.id)
                    .values(status=FindingStatus.EXCEPTED.value, extra=extra)
                )
                moved.append(finding.id)
                drafts.append(
                    TrailDraft(
                        finding_id=finding.id,
                        at=at,
                        actor=record.created_by,
                        action=ReviewAction.EXCEPT,
                        from_status=finding.status.value,
                        to_status=FindingStatus.EXCEPTED.value,
                        details={"exception_id": record.id},
                    )
                )
            self._append(conn, drafts)
            return ExceptionOutcome(record, moved)

        return self._write("add an exception", work)

    def get_exception(self, exception_id: str) -> ExceptionRecord | None:
        """One exception by id, or ``None``."""
        query = select(EXCEPTIONS).where(EXCEPTIONS.c.id == exception_id)
        row = self._read("read an exception", lambda c: c.execute(query).mappings().first())
        return None if row is None else _exception_from_row(row)

    def list_exceptions(self, *, active_at: datetime | None = None) -> list[ExceptionRecord]:
        """Exceptions, soonest expiry first; only those active at ``active_at`` if given."""
        query = select(EXCEPTIONS).order_by(EXCEPTIONS.c.expires_at, EXCEPTIONS.c.id)
        if active_at is not None:
            query = query.where(
                EXCEPTIONS.c.expired_at.is_(None), EXCEPTIONS.c.expires_at > active_at
            )
        rows = self._read("list exceptions", lambda c: c.execute(query).mappings().all())
        return [_exception_from_row(r) for r in rows]

    def expire_exceptions(
        self, *, now: datetime, actor: str, ids: Sequence[str] | None = None
    ) -> list[ExceptionOutcome]:
        """Mark due exceptions (or ``ids``, now) expired and re-flag the findings they covered."""

        def work(conn: Connection) -> list[ExceptionOutcome]:
            query = select(EXCEPTIONS).where(EXCEPTIONS.c.expired_at.is_(None))
            query = (
                query.where(EXCEPTIONS.c.id.in_(list(ids)))
                if ids is not None
                else query.where(EXCEPTIONS.c.expires_at <= now)
            )
            due = [_exception_from_row(r) for r in conn.execute(query).mappings().all()]
            if not due:
                return []
            excepted = [
                finding_from_row(r)
                for r in conn.execute(
                    select(FINDINGS).where(FINDINGS.c.status == FindingStatus.EXCEPTED.value)
                )
                .mappings()
                .all()
            ]
            outcomes, drafts = [], []
            for record in sorted(due, key=lambda r: (r.expires_at, r.id)):
                expires = min(record.expires_at, now)
                conn.execute(
                    EXCEPTIONS.update()
                    .where(EXCEPTIONS.c.id == record.id)
                    .values(expired_at=now, expires_at=expires)
                )
                drafts.append(
                    TrailDraft(
                        at=now,
                        actor=actor,
                        action=ReviewAction.EXCEPTION_EXPIRED,
                        details={"exception_id": record.id, "expires_at": expires.isoformat()},
                    )
                )
                moved = []
                for finding in excepted:
                    if finding.extra.get("exception_id") != record.id:
                        continue
                    extra = {k: v for k, v in finding.extra.items() if k != "exception_id"}
                    extra["expired_exception_id"] = record.id
                    conn.execute(
                        FINDINGS.update()
                        .where(FINDINGS.c.id == finding.id)
                        .values(status=FindingStatus.OPEN.value, extra=extra)
                    )
                    moved.append(finding.id)
                    drafts.append(
                        TrailDraft(
                            finding_id=finding.id,
                            at=now,
                            actor=actor,
                            action=ReviewAction.REFLAG,
                            from_status=FindingStatus.EXCEPTED.value,
                            to_status=FindingStatus.OPEN.value,
                            note=f"exception {record.id} expired",
                            details={"exception_id": record.id},
                        )
                    )
                updated = record.model_copy(update={"expired_at": now, "expires_at": expires})
                outcomes.append(ExceptionOutcome(updated, moved))
            self._append(conn, drafts)
            return outcomes

        outcomes = self._write("expire exceptions", work)
        for o in outcomes:
            log.info("exception_expired", exception_id=o.record.id, reflagged=len(o.finding_ids))
        return outcomes

    # -- tokens -----------------------------------------------------------------------

    def add_token(self, token: ApiToken, *, token_hash: str) -> None:
        """Store a new token's metadata and keyed hash (never the token)."""
        row = {**token.model_dump(mode="python"), "role": token.role.value}
        row["token_hash"] = token_hash
        self._write("store a token", lambda c: c.execute(TOKENS.insert(), [row]))

    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        """A token's metadata and stored hash, or ``None``."""
        query = select(TOKENS).where(TOKENS.c.id == token_id)
        row = self._read("read a token", lambda c: c.execute(query).mappings().first())
        if row is None:
            return None
        data = {k: v for k, v in dict(row).items() if k != "token_hash"}
        return ApiToken.model_validate(data), str(row["token_hash"])

    def list_tokens(self) -> list[ApiToken]:
        """Every token (active and revoked), oldest first."""
        query = select(TOKENS).order_by(TOKENS.c.created_at, TOKENS.c.id)
        rows = self._read("list tokens", lambda c: c.execute(query).mappings().all())
        return [
            ApiToken.model_validate({k: v for k, v in dict(r).items() if k != "token_hash"})
            for r in rows
        ]

    def revoke_token(self, token_id: str, *, at: datetime) -> bool:
        """Revoke a token; ``False`` if it does not exist or is already revoked."""
        query = (
            TOKENS.update()
            .where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        result = self._write("revoke a token", lambda c: c.execute(query))
        return bool(result.rowcount)

    def count_tokens(self, *, role: Role | None = None) -> int:
        """How many active tokens (of ``role``) exist."""
        return sum(1 for t in self.list_tokens() if t.active and (role is None or t.role is role))
