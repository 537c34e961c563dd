"""Tables of the review service (migration 0002): review trail, API tokens, exceptions,
recorded gateway decisions and notification deliveries.

They live on the store's one ``MetaData`` (``agent.store.schema.Base``); importing
``agent.store`` imports this module, so migrations and table models are compared together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent.store.schema import Base

__all__ = [
    "ApiTokenRow",
    "DecisionRow",
    "DeliveryRow",
    "ExceptionRow",
    "TrailHeadRow",
    "TrailRow",
]


class TrailRow(Base):
    """One review-trail entry; ``hash`` chains it to the previous entry (``prev_hash``)."""

    __tablename__ = "review_trail"

    seq: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    id: Mapped[str]
    finding_id: Mapped[str | None]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    from_status: Mapped[str | None]
    to_status: Mapped[str | None]
    note: Mapped[str] = mapped_column(Text())
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str]
    hash: Mapped[str]

    __table_args__ = (Index("ix_review_trail_finding_id", "finding_id"),)


class TrailHeadRow(Base):
    """The chain head (one row): the last entry's seq and hash; appends lock it first."""

    __tablename__ = "review_trail_head"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str]


class ApiTokenRow(Base):
    """An API token: only its keyed hash is stored; ``id`` is the public lookup part."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    role: Mapped[str]
    token_hash: Mapped[str]
    created_at: Mapped[datetime]
    created_by: Mapped[str]
    revoked_at: Mapped[datetime | None]


class ExceptionRow(Base):
    """An approved exception with its scope, people, justification and expiry."""

    __tablename__ = "review_exceptions"

    id: Mapped[str] = mapped_column(primary_key=True)
    scope: Mapped[dict[str, Any]]
    owner: Mapped[str]
    approver: Mapped[str]
    justification: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime]
    created_by: Mapped[str]
    expires_at: Mapped[datetime]
    expired_at: Mapped[datetime | None]
    origin: Mapped[str]

    __table_args__ = (Index("ix_review_exceptions_expires_at", "expires_at"),)


class DecisionRow(Base):
    """A recorded ``POST /v1/evaluate`` answer (``record: true``)."""

    __tablename__ = "decisions"

    id: Mapped[str] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    decision: Mapped[str]
    session_id: Mapped[str]
    request: Mapped[dict[str, Any]]
    response: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_decisions_at", "at"),)


class DeliveryRow(Base):
    """What one notifier last delivered (or failed to deliver) for one finding."""

    __tablename__ = "notify_deliveries"

    notifier: Mapped[str] = mapped_column(primary_key=True)
    finding_id: Mapped[str] = mapped_column(primary_key=True)
    fingerprint: Mapped[str]
    delivered: Mapped[bool]
    attempts: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text())
    updated_at: Mapped[datetime]
