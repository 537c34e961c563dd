"""Principal history remembers when each visit was first recorded (``seq``), so a rerun judges
a session by the history it was first judged by.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``principal_history.seq`` (NULL for visits recorded before this revision)."""
    with op.batch_alter_table("principal_history") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop ``principal_history.seq``."""
    with op.batch_alter_table("principal_history") as batch:
        batch.drop_column("seq")
