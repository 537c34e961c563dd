"""Checkpoint reads for a run, batched by folder: one query per folder, not one per file.

Sources ask ``ctx.checkpoint(scope)`` once per unit. File sources name scopes like
``<source>|file|/bucket/AWSLogs/.../2026/11/24/x.json.gz``; the first question about a file
loads every checkpoint under its folder in one query, so an unchanged 10,000-file tree costs
a few dozen queries instead of 10,000. Only the last few folders are kept (bounded memory).
Values are those committed before the question; a run never re-reads a unit it wrote.
"""

from __future__ import annotations

from collections import OrderedDict

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.store import SqlStore
from agent.store.statements import CHECKPOINTS

__all__ = ["CheckpointReader"]

log = structlog.get_logger(__name__)


class CheckpointReader:
    """``scope -> value | None`` for ``CollectContext.checkpoints``, prefetching per folder."""

    def __init__(self, store: SqlStore, *, folders_kept: int = 8) -> None:
        self._store = store
        self._folders: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._kept = folders_kept
        self.queries = 0

    def __call__(self, scope: str) -> str | None:
        folder, sep, _ = scope.rpartition("/")
        if not sep or "|" not in folder:
            self.queries += 1
            return self._store.get_checkpoint(scope)
        cached = self._folders.get(folder)
        if cached is None:
            cached = self._load(folder + "/")
            self._folders[folder] = cached
            if len(self._folders) > self._kept:
                self._folders.popitem(last=False)
        else:
            self._folders.move_to_end(folder)
        return cached.get(scope)

    def _load(self, prefix: str) -> dict[str, str]:
        self.queries += 1
        scope = CHECKPOINTS.c.scope
        query = select(scope, CHECKPOINTS.c.value).where(scope.startswith(prefix, autoescape=True))
        if self._store.dialect == "sqlite":  # binary collation: a key range uses the index
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            query = query.where(scope >= prefix, scope < upper)
        try:
            with self._store.engine.connect() as conn:
                rows = conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"store {self._store.url}: cannot read checkpoints: {type(exc).__name__}",
                hint="check the store is reachable; the audit can be re-run safely",
            ) from exc
        log.debug("checkpoints_prefetched", prefix=prefix, rows=len(rows))
        return {scope: value for scope, value in rows}
