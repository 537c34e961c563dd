"""Alembic migrations of the finding store, run programmatically by ``open_store``."""
