"""Detection tables (principal history), on the store's shared ``MetaData``.

Created by migration 0003; ``agent.store`` imports this module so the migration/model
comparison sees it. Bounded: ``agent.history.store`` keeps the last N rows per principal.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from agent.store.schema import Base

__all__ = ["PrincipalHistoryRow"]


class PrincipalHistoryRow(Base):
    """One remembered session of a principal: when and from which country / network."""

    __tablename__ = "principal_history"

    principal: Mapped[str] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    provider: Mapped[str]
    source_ip: Mapped[str | None]
    country: Mapped[str | None]
    asn: Mapped[int | None]
    seq: Mapped[int | None]
    """Order of recording (one number per recorded batch); NULL before revision 0004."""

    __table_args__ = (
        Index("ix_principal_history_principal_started_at", "principal", "started_at"),
    )
