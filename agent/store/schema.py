"""Tables of the finding store (SQLAlchemy 2 typed declarative).

Alembic owns their creation (``agent/store/migrations``); nothing here calls ``create_all``.
A test compares these models with the migrated database so the two never drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, MetaData, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from agent.models import ensure_utc

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "CheckpointRow",
    "FindingRow",
    "RunRow",
    "SessionRow",
    "UtcDateTime",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Stable constraint names, so later migrations (and SQLite batch mode) can address them."""


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamp, always UTC in and out.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text in one fixed format, so
    comparisons and ``ORDER BY`` on the text agree with time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = ensure_utc(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


class Base(DeclarativeBase):
    """Declarative base with the naming convention and the store's column types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: UtcDateTime(),
        str: String(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class FindingRow(Base):
    """One finding: queryable columns plus the session, IP and instance as JSON."""

    __tablename__ = "findings"

    id: Mapped[str] = mapped_column(primary_key=True)
    policy_id: Mapped[str]
    severity: Mapped[str]
    severity_rank: Mapped[int]
    status: Mapped[str]
    title: Mapped[str] = mapped_column(Text())
    reasons: Mapped[list[Any]]
    session_id: Mapped[str]
    provider: Mapped[str]
    account: Mapped[str | None]
    region: Mapped[str | None]
    instance_id: Mapped[str | None]
    principal: Mapped[str | None]
    source_ip: Mapped[str | None]
    country: Mapped[str | None]
    method: Mapped[str]
    started_at: Mapped[datetime]
    session: Mapped[dict[str, Any]]
    ip: Mapped[dict[str, Any]]
    instance: Mapped[dict[str, Any]]
    jurisdictions: Mapped[list[Any]]
    indeterminate: Mapped[bool]
    bundle_revision: Mapped[str]
    pack_version: Mapped[str]
    citations: Mapped[list[Any]]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    run_id: Mapped[str | None]
    extra: Mapped[dict[str, Any]]

    __table_args__ = (
        Index("ix_findings_status", "status"),
        Index("ix_findings_severity_rank", "severity_rank"),
        Index("ix_findings_last_seen", "last_seen"),
        Index("ix_findings_policy_id", "policy_id"),
        Index("ix_findings_account", "account"),
    )


class SessionRow(Base):
    """One normalised session, kept for replay; ``data`` is the whole model as JSON."""

    __tablename__ = "sessions"

    session_id: Mapped[str] = mapped_column(primary_key=True)
    provider: Mapped[str]
    account: Mapped[str | None]
    instance_id: Mapped[str | None]
    principal: Mapped[str | None]
    source_ip: Mapped[str | None]
    method: Mapped[str]
    started_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_sessions_started_at", "started_at"),)


class RunRow(Base):
    """One audit run with its counters, scope errors and kept quarantined records."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str]
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    counts: Mapped[dict[str, Any]]
    scope_errors: Mapped[list[Any]]
    quarantined: Mapped[list[Any]]
    sources: Mapped[list[Any]]
    bundle_revision: Mapped[str | None]
    geo_sources: Mapped[list[Any]]

    __table_args__ = (Index("ix_runs_started_at", "started_at"),)


class CheckpointRow(Base):
    """Where a source scope resumes; written in the same transaction as its findings."""

    __tablename__ = "checkpoints"

    scope: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime]
