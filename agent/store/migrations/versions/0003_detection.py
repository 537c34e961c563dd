"""Detection depth: principal history (bounded per principal by the application).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``principal_history`` and its (principal, started_at) index."""
    op.create_table(
        "principal_history",
        sa.Column("principal", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("source_ip", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("asn", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("principal", "session_id", name="pk_principal_history"),
    )
    op.create_index(
        "ix_principal_history_principal_started_at",
        "principal_history",
        ["principal", "started_at"],
    )


def downgrade() -> None:
    """Drop the principal history."""
    op.drop_index("ix_principal_history_principal_started_at", table_name="principal_history")
    op.drop_table("principal_history")
