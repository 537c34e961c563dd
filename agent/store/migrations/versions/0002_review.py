"""Review service: review trail, API tokens, exceptions, recorded decisions, notification deliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    """Create the review tables and their indexes."""
    op.create_table(
        "review_trail",
        _int("seq"),
        _str("id"),
        _str("finding_id", nullable=True),
        _ts("at"),
        _str("actor"),
        _str("action"),
        _str("from_status", nullable=True),
        _str("to_status", nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        _str("prev_hash"),
        _str("hash"),
        sa.PrimaryKeyConstraint("seq", name="pk_review_trail"),
    )
    op.create_index("ix_review_trail_finding_id", "review_trail", ["finding_id"])
    head = op.create_table(
        "review_trail_head",
        _int("id"),
        _int("seq"),
        _str("hash"),
        sa.PrimaryKeyConstraint("id", name="pk_review_trail_head"),
    )
    # The one head row exists from the start, so every append can lock it.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "api_tokens",
        _str("id"),
        _str("name"),
        _str("role"),
        _str("token_hash"),
        _ts("created_at"),
        _str("created_by"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    )
    op.create_table(
        "review_exceptions",
        _str("id"),
        sa.Column("scope", sa.JSON(), nullable=False),
        _str("owner"),
        _str("approver"),
        sa.Column("justification", sa.Text(), nullable=False),
        _ts("created_at"),
        _str("created_by"),
        _ts("expires_at"),
        _ts("expired_at", nullable=True),
        _str("origin"),
        sa.PrimaryKeyConstraint("id", name="pk_review_exceptions"),
    )
    op.create_index("ix_review_exceptions_expires_at", "review_exceptions", ["expires_at"])
    op.create_table(
        "decisions",
        _str("id"),
        _ts("at"),
        _str("decision"),
        _str("session_id"),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_at", "decisions", ["at"])
    op.create_table(
        "notify_deliveries",
        _str("notifier"),
        _str("finding_id"),
        _str("fingerprint"),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        _int("attempts"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("notifier", "finding_id", name="pk_notify_deliveries"),
    )


def downgrade() -> None:
    """Drop everything the upgrade created."""
    for table in (
        "notify_deliveries",
        "decisions",
        "review_exceptions",
        "api_tokens",
        "review_trail_head",
        "review_trail",
    ):
        op.drop_table(table)
