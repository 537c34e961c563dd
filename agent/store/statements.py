"""The store's SQL, built once per dialect: bulk ``INSERT ... ON CONFLICT`` upserts and the
finding filters. SQLite and PostgreSQL share the on-conflict API, chosen from a registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, case
from sqlalchemy.dialects import postgresql, sqlite

from agent.errors import StoreError
from agent.models import FindingStatus, Severity
from agent.store.schema import CheckpointRow, FindingRow, RunRow, SessionRow

__all__ = ["FindingFilters", "Statements", "build_statements"]

FINDINGS: Table = FindingRow.__table__  # type: ignore[assignment]
SESSIONS: Table = SessionRow.__table__  # type: ignore[assignment]
RUNS: Table = RunRow.__table__  # type: ignore[assignment]
CHECKPOINTS: Table = CheckpointRow.__table__  # type: ignore[assignment]

_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}

FINDING_UPDATED_ON_CONFLICT = (
    "severity",
    "severity_rank",
    "title",
    "reasons",
    "ip",
    "instance",
    "jurisdictions",
    "indeterminate",
    "bundle_revision",
    "pack_version",
    "citations",
    "run_id",
)
"""What a re-seen finding refreshes; first_seen, status, extra and the session stay."""


@dataclass(frozen=True)
class Statements:
    """Prepared statements for one dialect (executed with a list of rows = executemany)."""

    insert_new_findings: Any  # ON CONFLICT DO NOTHING RETURNING id: the ids that were new
    update_seen_findings: Any  # ON CONFLICT DO UPDATE for the rest
    upsert_sessions: Any
    upsert_checkpoint: Any
    insert_run: Any
    upsert_run: Any


def _replace_all(insert: Callable[[Table], Any], table: Table, key: str) -> Any:
    stmt = insert(table)
    columns = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
    return stmt.on_conflict_do_update(index_elements=[table.c[key]], set_=columns)


def build_statements(dialect: str) -> Statements:
    """Statements for ``dialect`` (``sqlite`` or ``postgresql``)."""
    insert = _INSERTS.get(dialect)
    if insert is None:
        raise StoreError(
            f"the store does not support the {dialect!r} database",
            hint="use sqlite:/// or postgresql:// store URLs",
        )
    new = insert(FINDINGS).on_conflict_do_nothing(index_elements=[FINDINGS.c.id])
    seen = insert(FINDINGS)
    excluded = seen.excluded
    refreshed: dict[str, Any] = {name: excluded[name] for name in FINDING_UPDATED_ON_CONFLICT}
    refreshed["last_seen"] = case(
        (excluded.last_seen > FINDINGS.c.last_seen, excluded.last_seen),
        else_=FINDINGS.c.last_seen,
    )
    return Statements(
        insert_new_findings=new.returning(FINDINGS.c.id),
        update_seen_findings=seen.on_conflict_do_update(
            index_elements=[FINDINGS.c.id], set_=refreshed
        ),
        upsert_sessions=_replace_all(insert, SESSIONS, "session_id"),
        upsert_checkpoint=_replace_all(insert, CHECKPOINTS, "scope"),
        insert_run=insert(RUNS),
        upsert_run=_replace_all(insert, RUNS, "id"),
    )


@dataclass(frozen=True)
class FindingFilters:
    """Filters of ``list_findings`` / ``count_findings``; ``None`` means any."""

    status: FindingStatus | str | None = None
    min_severity: Severity | str | None = None
    policy_id: str | None = None
    run_id: str | None = None
    provider: str | None = None
    account: str | None = None
    country: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """WHERE clauses for the filters that are set."""
        equal = (
            (FINDINGS.c.status, None if self.status is None else FindingStatus(self.status)),
            (FINDINGS.c.policy_id, self.policy_id),
            (FINDINGS.c.run_id, self.run_id),
            (FINDINGS.c.provider, self.provider),
            (FINDINGS.c.account, self.account),
            (FINDINGS.c.country, self.country),
        )
        where = [column == str(value) for column, value in equal if value is not None]
        if self.min_severity is not None:
            where.append(FINDINGS.c.severity_rank >= Severity(self.min_severity).rank)
        return where
