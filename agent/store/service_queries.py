"""Read models for the HTTP API and console, recorded decisions and notifier deliveries.

``ServiceQueries`` sits next to a ``SqlStore`` like ``ReviewStore``: keyset-paginated finding
queries with text and time filters, counts for the dashboard, checkpoint ages for metrics.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from agent.errors import UsageError
from agent.models import Finding, FindingStatus, Severity, ensure_utc
from agent.store.codec import finding_from_row
from agent.store.engine import WRITE_OPTIONS, store_errors
from agent.store.schema_review import DecisionRow, DeliveryRow
from agent.store.sqlstore import SqlStore
from agent.store.statements import CHECKPOINTS, FINDINGS, RUNS, FindingFilters

__all__ = ["Delivery", "FindingPage", "FindingQuery", "ServiceQueries"]

T = TypeVar("T")
DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
DELIVERIES: Table = DeliveryRow.__table__  # type: ignore[assignment]
_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}
_GROUPABLE = {
    "severity": FINDINGS.c.severity,
    "status": FINDINGS.c.status,
    "country": FINDINGS.c.country,
    "provider": FINDINGS.c.provider,
    "policy": FINDINGS.c.policy_id,
}


@dataclass(frozen=True)
class FindingQuery:
    """Filters of ``GET /v1/findings`` (``None`` = any)."""

    status: FindingStatus | None = None
    severity: Severity | None = None
    policy: str | None = None
    provider: str | None = None
    account: str | None = None
    country: str | None = None
    run_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None

    def conditions(self) -> list[Any]:
        """WHERE clauses (the store's own filters plus time range and text)."""
        where: list[Any] = FindingFilters(
            status=self.status,
            min_severity=self.severity,
            policy_id=self.policy,
            run_id=self.run_id,
            provider=self.provider,
            account=self.account,
            country=self.country.upper() if self.country else None,
        ).conditions()
        if self.since is not None:
            where.append(FINDINGS.c.started_at >= ensure_utc(self.since))
        if self.until is not None:
            where.append(FINDINGS.c.started_at <= ensure_utc(self.until))
        if self.text:
            needle = (
                "%"
                + self.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            columns = (
                FINDINGS.c.title,
                FINDINGS.c.policy_id,
                FINDINGS.c.principal,
                FINDINGS.c.source_ip,
                FINDINGS.c.instance_id,
                FINDINGS.c.account,
                FINDINGS.c.id,
            )
            where.append(or_(*(func.lower(c).like(needle, escape="\\") for c in columns)))
        return where


@dataclass(frozen=True)
class FindingPage:
    """One page of findings and the cursor of the next page (``None`` at the end)."""

    items: list[Finding]
    next_cursor: str | None


@dataclass(frozen=True)
class Delivery:
    """What a notifier last did for one finding."""

    notifier: str
    finding_id: str
    fingerprint: str
    delivered: bool
    attempts: int
    last_error: str | None
    updated_at: datetime


def encode_cursor(finding: Finding, rank: int) -> str:
    """Opaque keyset cursor after ``finding`` in (severity desc, last_seen desc, id) order."""
    raw = json.dumps([rank, finding.last_seen.isoformat(), finding.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    """Inverse of ``encode_cursor``; ``UsageError`` for anything it did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        rank, seen, fid = json.loads(raw)
        return int(rank), ensure_utc(datetime.fromisoformat(seen)), str(fid)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise UsageError("invalid cursor", hint="pass next_cursor from the previous page") from exc


def _mappings(query: Any, conn: Connection) -> Sequence[Any]:
    return conn.execute(query).mappings().all()


class ServiceQueries:
    """API/console reads, decisions and deliveries in the same database as ``store``."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._engine = store.engine
        self._writer = store.engine.execution_options(**WRITE_OPTIONS)
        self._target = store.target
        self._insert = _INSERTS[store.dialect]

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:
        with store_errors(action, self._target), self._engine.connect() as conn:
            return work(conn)

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:
        with store_errors(action, self._target), self._writer.begin() as conn:
            return work(conn)

    # -- findings ---------------------------------------------------------------------

    def page(
        self, query: FindingQuery, *, limit: int = 50, cursor: str | None = None
    ) -> FindingPage:
        """Findings matching ``query`` by severity desc, last_seen desc, id; keyset paged."""
        where = query.conditions()
        if cursor:
            rank, seen, fid = decode_cursor(cursor)
            where.append(
                or_(
                    FINDINGS.c.severity_rank < rank,
                    and_(FINDINGS.c.severity_rank == rank, FINDINGS.c.last_seen < seen),
                    and_(
                        FINDINGS.c.severity_rank == rank,
                        FINDINGS.c.last_seen == seen,
                        FINDINGS.c.id > fid,
                    ),
                )
            )
        stmt = (
            select(FINDINGS)
            .where(*where)
            .order_by(FINDINGS.c.severity_rank.desc(), FINDINGS.c.last_seen.desc(), FINDINGS.c.id)
            .limit(limit + 1)
        )
        rows = self._read("list findings", lambda c: c.execute(stmt).mappings().all())
        items = [finding_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1], items[-1].severity.rank) if more else None
        return FindingPage(items=items, next_cursor=next_cursor)

    def counts(self, by: str, query: FindingQuery | None = None) -> dict[str, int]:
        """Finding counts grouped by severity, status, country, provider or policy."""
        column = _GROUPABLE[by]
        stmt = (
            select(column, func.count())
            .where(*(query or FindingQuery()).conditions())
            .group_by(column)
        )
        rows = self._read("count findings", lambda c: c.execute(stmt).all())
        return {(key if key is not None else "unknown"): int(n) for key, n in rows}

    def worst_by_country(self, query: FindingQuery | None = None) -> dict[str, str]:
        """The most severe finding's severity per source country."""
        stmt = (
            select(FINDINGS.c.country, func.max(FINDINGS.c.severity_rank))
            .where(*(query or FindingQuery()).conditions())
            .group_by(FINDINGS.c.country)
        )
        rows = self._read("count findings", lambda c: c.execute(stmt).all())
        names = {s.rank: s.value for s in Severity}
        return {(c or "unknown"): names[int(r)] for c, r in rows if r is not None}

    def daily(self, query: FindingQuery | None = None) -> dict[str, dict[str, int]]:
        """``{YYYY-MM-DD: {severity: n}}`` by session start day (computed in Python)."""
        stmt = select(FINDINGS.c.started_at, FINDINGS.c.severity).where(
            *(query or FindingQuery()).conditions()
        )
        rows = self._read("count findings by day", lambda c: c.execute(stmt).all())
        out: dict[str, dict[str, int]] = {}
        for started, severity in rows:
            day = ensure_utc(started).date().isoformat()
            bucket = out.setdefault(day, {})
            bucket[severity] = bucket.get(severity, 0) + 1
        return dict(sorted(out.items()))

    def status_severity_counts(self) -> dict[tuple[str, str], int]:
        """``(severity, status) -> count`` for the metrics endpoint."""
        stmt = select(FINDINGS.c.severity, FINDINGS.c.status, func.count()).group_by(
            FINDINGS.c.severity, FINDINGS.c.status
        )
        rows = self._read("count findings", lambda c: c.execute(stmt).all())
        return {(sev, st): int(n) for sev, st, n in rows}

    # -- runs and checkpoints ---------------------------------------------------------

    def checkpoint_times(self) -> dict[str, datetime]:
        """When each checkpoint scope last advanced."""
        stmt = select(CHECKPOINTS.c.scope, CHECKPOINTS.c.updated_at)
        rows = self._read("read checkpoints", lambda c: c.execute(stmt).all())
        return {scope: ensure_utc(at) for scope, at in rows}

    def last_run_times(self) -> tuple[datetime | None, datetime | None]:
        """``(started_at, finished_at)`` of the newest run, if any."""
        stmt = (
            select(RUNS.c.started_at, RUNS.c.finished_at)
            .order_by(RUNS.c.started_at.desc())
            .limit(1)
        )
        row = self._read("read runs", lambda c: c.execute(stmt).first())
        if row is None:
            return None, None
        return ensure_utc(row[0]), (ensure_utc(row[1]) if row[1] else None)

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers a query."""
        self._read(
            "reach the database", lambda c: c.execute(select(func.count()).select_from(RUNS))
        )

    # -- decisions --------------------------------------------------------------------

    def record_decision(
        self,
        *,
        decision_id: str,
        at: datetime,
        decision: str,
        session_id: str,
        request: dict[str, Any],
        response: dict[str, Any],
    ) -> None:
        """Store one evaluate answer (``record: true``)."""
        row = {
            "id": decision_id,
            "at": at,
            "decision": decision,
            "session_id": session_id,
            "request": request,
            "response": response,
        }
        self._write("record a decision", lambda c: c.execute(DECISIONS.insert(), [row]))

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        """A recorded decision's response, or ``None``."""
        stmt = select(DECISIONS.c.response).where(DECISIONS.c.id == decision_id)
        return self._read("read a decision", lambda c: c.execute(stmt).scalar())

    # -- deliveries -------------------------------------------------------------------

    def deliveries(self, notifier: str, finding_ids: Sequence[str]) -> dict[str, Delivery]:
        """Delivery state of ``finding_ids`` for ``notifier``."""
        out: dict[str, Delivery] = {}
        ids = list(finding_ids)
        for start in range(0, len(ids), 500):
            stmt = select(DELIVERIES).where(
                DELIVERIES.c.notifier == notifier,
                DELIVERIES.c.finding_id.in_(ids[start : start + 500]),
            )
            rows = self._read("read deliveries", partial(_mappings, stmt))
            out.update({r["finding_id"]: Delivery(**dict(r)) for r in rows})
        return out

    def undelivered(self, notifier: str) -> list[Delivery]:
        """Deliveries that failed earlier (retried on the next run)."""
        stmt = (
            select(DELIVERIES)
            .where(DELIVERIES.c.notifier == notifier, DELIVERIES.c.delivered.is_(False))
            .order_by(DELIVERIES.c.finding_id)
        )
        rows = self._read("read deliveries", lambda c: c.execute(stmt).mappings().all())
        return [Delivery(**dict(r)) for r in rows]

    def save_deliveries(self, rows: Sequence[Delivery]) -> None:
        """Insert or replace delivery states."""
        if not rows:
            return
        stmt = self._insert(DELIVERIES)
        stmt = stmt.on_conflict_do_update(
            index_elements=[DELIVERIES.c.notifier, DELIVERIES.c.finding_id],
            set_={
                name: stmt.excluded[name]
                for name in ("fingerprint", "delivered", "attempts", "last_error", "updated_at")
            },
        )
        data = [r.__dict__ for r in sorted(rows, key=lambda r: (r.notifier, r.finding_id))]
        self._write("save deliveries", lambda c: c.execute(stmt, data))
