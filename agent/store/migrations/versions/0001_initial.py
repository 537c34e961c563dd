"""Initial schema: findings, sessions, runs, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=False)


def _str(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def upgrade() -> None:
    """Create every table and index of the store."""
    op.create_table(
        "findings",
        _str("id"),
        _str("policy_id"),
        _str("severity"),
        sa.Column("severity_rank", sa.Integer(), nullable=False),
        _str("status"),
        sa.Column("title", sa.Text(), nullable=False),
        _json("reasons"),
        _str("session_id"),
        _str("provider"),
        _str("account", nullable=True),
        _str("region", nullable=True),
        _str("instance_id", nullable=True),
        _str("principal", nullable=True),
        _str("source_ip", nullable=True),
        _str("country", nullable=True),
        _str("method"),
        _ts("started_at"),
        _json("session"),
        _json("ip"),
        _json("instance"),
        _json("jurisdictions"),
        sa.Column("indeterminate", sa.Boolean(), nullable=False),
        _str("bundle_revision"),
        _str("pack_version"),
        _json("citations"),
        _ts("first_seen"),
        _ts("last_seen"),
        _str("run_id", nullable=True),
        _json("extra"),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
    )
    for column in ("status", "severity_rank", "last_seen", "policy_id", "account"):
        op.create_index(f"ix_findings_{column}", "findings", [column])

    op.create_table(
        "sessions",
        _str("session_id"),
        _str("provider"),
        _str("account", nullable=True),
        _str("instance_id", nullable=True),
        _str("principal", nullable=True),
        _str("source_ip", nullable=True),
        _str("method"),
        _ts("started_at"),
        _json("data"),
        sa.PrimaryKeyConstraint("session_id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_started_at", "sessions", ["started_at"])

    op.create_table(
        "runs",
        _str("id"),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        _str("status"),
        _ts("window_start", nullable=True),
        _ts("window_end", nullable=True),
        _json("counts"),
        _json("scope_errors"),
        _json("quarantined"),
        _json("sources"),
        _str("bundle_revision", nullable=True),
        _json("geo_sources"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "checkpoints",
        _str("scope"),
        sa.Column("value", sa.Text(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("scope", name="pk_checkpoints"),
    )


def downgrade() -> None:
    """Drop everything the upgrade created."""
    for table in ("checkpoints", "runs", "sessions", "findings"):
        op.drop_table(table)
