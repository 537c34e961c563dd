"""The finding store: SQLAlchemy 2 + Alembic, ``sqlite:///`` by default, ``postgresql://`` at
scale. ``open_store(url)`` migrates the schema to head and returns a ``SqlStore``."""

from agent.store import schema_detection as _schema_detection  # noqa: F401 (registers tables)
from agent.store import schema_review as _schema_review  # noqa: F401  (review tables on Base)
from agent.store.sqlstore import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
