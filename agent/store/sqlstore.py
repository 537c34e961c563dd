"""``SqlStore``: the FindingStore over SQLAlchemy Core, and ``open_store(url)``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

import structlog
from sqlalchemy import Connection, Select, and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent.contracts import Clock
from agent.errors import StoreError
from agent.models import AuditRun, Finding, FindingStatus, Session, Severity
from agent.store.codec import (
    checkpoint_row,
    finding_from_row,
    finding_to_row,
    latest_by,
    run_from_row,
    run_to_row,
    session_from_row,
    session_to_row,
)
from agent.store.engine import (
    WRITE_OPTIONS,
    StoreTarget,
    create_store_engine,
    is_retryable,
    migrate,
    parse_store_target,
    store_errors,
)
from agent.store.statements import (
    CHECKPOINTS,
    FINDINGS,
    RUNS,
    SESSIONS,
    FindingFilters,
    build_statements,
)

__all__ = ["SqlStore", "open_store"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
_MAX_ATTEMPTS = 3
_SESSION_PAGE = 500
_ID_CHUNK = 500


def _utcnow() -> datetime:
    return datetime.now(UTC)


def open_store(url: str, *, clock: Clock | None = None) -> SqlStore:
    """Open (creating or upgrading the schema with Alembic) the store at ``url``.

    ``sqlite:///relative.db`` is relative to the current directory; ``postgresql://`` uses
    psycopg 3 and accepts ``?schema=NAME``. Raises ``StoreError`` with a hint.
    """
    target = parse_store_target(url)
    engine = create_store_engine(target)
    try:
        revision = migrate(engine, target)
    except BaseException:
        engine.dispose()
        raise
    log.debug("store_opened", url=target.display, dialect=target.dialect, revision=revision)
    return SqlStore(engine=engine, target=target, clock=clock or _utcnow, revision=revision)


class SqlStore:
    """Findings, sessions, runs and checkpoints in SQLite or PostgreSQL.

    Build it with :func:`open_store`; every write is one transaction, and every database
    error leaves as ``StoreError``.
    """

    def __init__(self, *, engine: Engine, target: StoreTarget, clock: Clock, revision: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**WRITE_OPTIONS)
        self._target = target
        self._clock = clock
        self._sql = build_statements(target.dialect)
        self.revision = revision

    @property
    def url(self) -> str:
        """The store URL with any password hidden."""
        return self._target.display

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._target.dialect

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for diagnostics and tests)."""
        return self._engine

    @property
    def target(self) -> StoreTarget:
        """The parsed store URL (companion stores share its error translation)."""
        return self._target

    # -- transactions -----------------------------------------------------------------

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, re-running it after a deadlock."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with store_errors(action, self._target), self._writer.begin() as conn:
                    return work(conn)
            except StoreError as exc:
                cause = exc.__cause__
                if not (
                    isinstance(cause, DBAPIError)
                    and is_retryable(cause)
                    and attempt < _MAX_ATTEMPTS
                ):
                    raise
                log.warning("store_write_retried", action=action, attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:
        with store_errors(action, self._target), self._engine.connect() as conn:
            return work(conn)

    # -- batches ----------------------------------------------------------------------

    def commit_batch(
        self,
        *,
        findings: Sequence[Finding],
        sessions: Sequence[Session],
        checkpoint: tuple[str, str] | None,
        run_id: str,
        more_checkpoints: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Upsert sessions and findings and set the checkpoint, all in ONE transaction.

        Returns how many finding ids were new. A re-seen finding keeps first_seen, status and
        extra, takes the later last_seen and refreshes severity, reasons, title and the rest.
        """
        finding_rows = latest_by(
            (finding_to_row(f, run_id=run_id) for f in findings),
            key=lambda row: row["id"],
            order=lambda row: row["last_seen"],
        )
        session_rows = latest_by(
            (session_to_row(s) for s in sessions),
            key=lambda row: row["session_id"],
            order=lambda row: 0,
        )
        now = self._clock()

        def work(conn: Connection) -> int:
            if session_rows:
                conn.execute(self._sql.upsert_sessions, session_rows)
            new_ids: set[str] = set()
            if finding_rows:
                # Rows already committed skip the insert attempt; for the rest, ON CONFLICT
                # DO NOTHING RETURNING says which ids this transaction really created (a
                # concurrent writer's row makes it wait, then counts as seen, not new).
                known = _existing_ids(conn, [row["id"] for row in finding_rows])
                candidates = [row for row in finding_rows if row["id"] not in known]
                if candidates:
                    result = conn.execute(self._sql.insert_new_findings, candidates)
                    new_ids = set(result.scalars().all())
                seen = [row for row in finding_rows if row["id"] not in new_ids]
                if seen:
                    conn.execute(self._sql.update_seen_findings, seen)
            if checkpoint is not None:
                scope, value = checkpoint
                conn.execute(self._sql.upsert_checkpoint, checkpoint_row(scope, value, now=now))
            if more_checkpoints:  # several units committed together (pipeline coalescing)
                rows = [checkpoint_row(scope, value, now=now) for scope, value in more_checkpoints]
                conn.execute(self._sql.upsert_checkpoint, rows)
            return len(new_ids)

        new = self._write("commit the batch", work)
        log.info(
            "store_batch_committed",
            run_id=run_id,
            findings=len(finding_rows),
            new_findings=new,
            sessions=len(session_rows),
            checkpoint_scope=checkpoint[0] if checkpoint else None,
        )
        return new

    # -- checkpoints ------------------------------------------------------------------

    def get_checkpoint(self, scope: str) -> str | None:
        """The value stored for ``scope``, or ``None``."""
        query = select(CHECKPOINTS.c.value).where(CHECKPOINTS.c.scope == scope)
        return self._read("read a checkpoint", lambda conn: conn.scalar(query))

    def set_checkpoint(self, scope: str, value: str) -> None:
        """Store ``value`` for ``scope`` (outside a batch)."""
        row = checkpoint_row(scope, value, now=self._clock())
        self._write(
            "write a checkpoint", lambda conn: conn.execute(self._sql.upsert_checkpoint, row)
        )

    def list_checkpoints(self) -> dict[str, str]:
        """Every checkpoint, ``scope -> value``."""
        query = select(CHECKPOINTS.c.scope, CHECKPOINTS.c.value).order_by(CHECKPOINTS.c.scope)
        rows = self._read("list checkpoints", lambda conn: conn.execute(query).all())
        return {scope: value for scope, value in rows}

    # -- runs -------------------------------------------------------------------------

    def start_run(self, run: AuditRun) -> None:
        """Record a new run; ``StoreError`` if its id is already stored."""
        row = run_to_row(run)
        try:
            self._write("record the run", lambda conn: conn.execute(self._sql.insert_run, row))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise StoreError(
                    f"run {run.id} is already recorded", hint="start each run with a new id"
                ) from exc
            raise

    def save_run(self, run: AuditRun) -> None:
        """Insert or replace a run (counts, scope errors, kept quarantined records)."""
        row = run_to_row(run)
        self._write("save the run", lambda conn: conn.execute(self._sql.upsert_run, row))

    def get_run(self, run_id: str) -> AuditRun | None:
        """One run by id, or ``None``."""
        query = select(RUNS).where(RUNS.c.id == run_id)
        row = self._read("read a run", lambda conn: conn.execute(query).mappings().first())
        return None if row is None else run_from_row(row)

    def list_runs(self, limit: int = 50) -> list[AuditRun]:
        """The latest runs, newest first."""
        query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit)
        rows = self._read("list runs", lambda conn: conn.execute(query).mappings().all())
        return [run_from_row(row) for row in rows]

    # -- findings ---------------------------------------------------------------------

    def list_findings(
        self,
        *,
        status: FindingStatus | str | None = None,
        min_severity: Severity | str | None = None,
        policy_id: str | None = None,
        run_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        country: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Finding]:
        """Findings matching every given filter, by severity desc then last_seen desc."""
        filters = FindingFilters(
            status=status,
            min_severity=min_severity,
            policy_id=policy_id,
            run_id=run_id,
            provider=provider,
            account=account,
            country=country,
        )
        query = (
            select(FINDINGS)
            .where(*filters.conditions())
            .order_by(FINDINGS.c.severity_rank.desc(), FINDINGS.c.last_seen.desc(), FINDINGS.c.id)
            .limit(limit)
            .offset(offset)
        )
        rows = self._read("list findings", lambda conn: conn.execute(query).mappings().all())
        return [finding_from_row(row) for row in rows]

    def count_findings(
        self,
        *,
        status: FindingStatus | str | None = None,
        min_severity: Severity | str | None = None,
        policy_id: str | None = None,
        run_id: str | None = None,
        provider: str | None = None,
        account: str | None = None,
        country: str | None = None,
    ) -> int:
        """How many findings ``list_findings`` would return without a limit."""
        filters = FindingFilters(
            status=status,
            min_severity=min_severity,
            policy_id=policy_id,
            run_id=run_id,
            provider=provider,
            account=account,
            country=country,
        )
        query = select(func.count()).select_from(FINDINGS).where(*filters.conditions())
        return int(self._read("count findings", lambda conn: conn.scalar(query)) or 0)

    def get_finding(self, finding_id: str) -> Finding | None:
        """One finding by id, or ``None``."""
        query = select(FINDINGS).where(FINDINGS.c.id == finding_id)
        row = self._read("read a finding", lambda conn: conn.execute(query).mappings().first())
        return None if row is None else finding_from_row(row)

    def set_finding_status(self, finding_id: str, *, status: FindingStatus | str) -> bool:
        """Record a review decision; ``False`` if no such finding. Re-runs keep it."""
        query = (
            FINDINGS.update()
            .where(FINDINGS.c.id == finding_id)
            .values(status=str(FindingStatus(status)))
        )
        result = self._write("update a finding", lambda conn: conn.execute(query))
        return bool(result.rowcount)

    # -- sessions ---------------------------------------------------------------------

    def list_sessions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[Session]:
        """Stored sessions with ``since <= started_at <= until``, oldest first (for replay).

        Reads in pages, so no connection stays open while the caller works.
        """
        base = select(SESSIONS.c.session_id, SESSIONS.c.started_at, SESSIONS.c.data)
        if since is not None:
            base = base.where(SESSIONS.c.started_at >= since)
        if until is not None:
            base = base.where(SESSIONS.c.started_at <= until)
        base = base.order_by(SESSIONS.c.started_at, SESSIONS.c.session_id)
        remaining = limit
        after: tuple[datetime, str] | None = None
        while remaining is None or remaining > 0:
            page = min(_SESSION_PAGE, remaining) if remaining is not None else _SESSION_PAGE
            query = (base if after is None else base.where(_after(*after))).limit(page)
            rows = self._read("list sessions", partial(_fetch_all, query))
            for _, _, data in rows:
                yield session_from_row(data)
            if len(rows) < page:
                return
            after = (rows[-1][1], rows[-1][0])
            remaining = None if remaining is None else remaining - len(rows)

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"


def _existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are already stored (queried in chunks to stay under bind limits)."""
    found: set[str] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        found.update(conn.scalars(select(FINDINGS.c.id).where(FINDINGS.c.id.in_(chunk))))
    return found


def _fetch_all(query: Select[Any], conn: Connection) -> Sequence[Any]:
    return conn.execute(query).all()


def _after(started_at: datetime, session_id: str) -> Any:
    """Keyset condition: rows strictly after ``(started_at, session_id)``."""
    return or_(
        SESSIONS.c.started_at > started_at,
        and_(SESSIONS.c.started_at == started_at, SESSIONS.c.session_id > session_id),
    )
