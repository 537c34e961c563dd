"""Principal history in the finding store: read recent visits, record new ones idempotently,
and keep only the last ``keep`` per principal (bounded storage)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.history.signals import Visit
from agent.store.engine import WRITE_OPTIONS
from agent.store.schema_detection import PrincipalHistoryRow

__all__ = ["HistoryStore"]

log = structlog.get_logger(__name__)

TABLE: Table = PrincipalHistoryRow.__table__  # type: ignore[assignment]
_CHUNK = 500
_HINT = "check the store URL and that `chipwarden audit` can write to it"


def _visit(row: Any) -> Visit:
    return Visit(
        principal=row.principal,
        session_id=row.session_id,
        started_at=row.started_at,
        provider=row.provider,
        source_ip=row.source_ip,
        country=row.country,
        asn=row.asn,
        seq=row.seq,
    )


class HistoryStore:
    """The ``principal_history`` table of an opened store (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._engine = engine
        self._writer = engine.execution_options(**WRITE_OPTIONS)
        self.keep = keep

    def recent(self, principals: Sequence[str]) -> dict[str, list[Visit]]:
        """Each principal's remembered visits, oldest first (at most ``keep`` each)."""
        out: dict[str, list[Visit]] = {p: [] for p in principals}
        wanted = list(out)
        try:
            with self._engine.connect() as conn:
                for start in range(0, len(wanted), _CHUNK):
                    query = (
                        select(TABLE)
                        .where(TABLE.c.principal.in_(wanted[start : start + _CHUNK]))
                        .order_by(TABLE.c.principal, TABLE.c.started_at, TABLE.c.session_id)
                    )
                    for row in conn.execute(query):
                        out[row.principal].append(_visit(row))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read principal history: {exc}", hint=_HINT) from exc
        return {p: v[-self.keep :] for p, v in out.items()}

    def record(self, visits: Sequence[Visit]) -> None:
        """Insert visits not yet stored (re-runs are no-ops), then trim each principal."""
        if not visits:
            return
        rows = {
            (v.principal, v.session_id): {
                "principal": v.principal,
                "session_id": v.session_id,
                "started_at": v.started_at,
                "provider": v.provider,
                "source_ip": v.source_ip,
                "country": v.country,
                "asn": v.asn,
            }
            for v in visits
        }
        dialect = self._engine.dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TABLE)
        # A rerun's insert is a no-op: a visit keeps the seq of its first recording.
        statement = insert.on_conflict_do_nothing(index_elements=["principal", "session_id"])
        principals = sorted({v.principal for v in visits})
        try:
            with self._writer.begin() as conn:
                seq = (conn.execute(select(func.max(TABLE.c.seq))).scalar() or 0) + 1
                conn.execute(statement, [{**row, "seq": seq} for row in rows.values()])
                for principal in principals:
                    keep = (
                        select(TABLE.c.session_id)
                        .where(TABLE.c.principal == principal)
                        .order_by(TABLE.c.started_at.desc(), TABLE.c.session_id.desc())
                        .limit(self.keep)
                        .scalar_subquery()
                    )
                    conn.execute(
                        delete(TABLE).where(
                            TABLE.c.principal == principal, TABLE.c.session_id.not_in(keep)
                        )
                    )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record principal history: {exc}", hint=_HINT) from exc
        log.debug("history_recorded", visits=len(rows), principals=len(principals))

    def count(self, principal: str) -> int:
        """How many visits are remembered for ``principal``."""
        return len(self.recent([principal])[principal])
