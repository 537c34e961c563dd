"""The finding store: SQLAlchemy 2 + Alembic, ``sqlite:///`` by default, ``postgresql://`` at
scale. ``open_store(url)`` migrates the schema to head and returns a ``SqlStore``."""

from agent.store.sqlstore import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
