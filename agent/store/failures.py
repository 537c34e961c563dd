"""What a database error means for the operator, so a ``StoreError`` carries the right hint.

Told apart by the DBAPI error class, the PostgreSQL SQLSTATE or SQLite's result code: the
database cannot be reached or used (server down, wrong URL or password, locked or unwritable
file, disk full); a value cannot be stored (too long, a NUL byte, out of range, wrong type); a
row breaks a constraint; the tables do not match (missing tables or columns); a migration
cannot run (Alembic). Only the first asks whether the database is running.
"""

from __future__ import annotations

from enum import StrEnum

from alembic.util import CommandError
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
    StatementError,
)

__all__ = ["Failure", "classify", "hint_for"]


class Failure(StrEnum):
    """Kinds of store failure, each with its own remediation."""

    CONNECTION = "connection"
    DATA = "data"
    INTEGRITY = "integrity"
    SCHEMA = "schema"
    MIGRATION = "migration"


_ROLLED_BACK = "the whole transaction was rolled back; nothing of it was stored"
_HINTS = {
    Failure.DATA: (
        "a value could not be stored as it is (too long, a NUL byte, out of range or of the "
        f"wrong type): {_ROLLED_BACK}. Values are cleaned before they are stored, so this is "
        "a chipwarden bug: please report it with this message"
    ),
    Failure.INTEGRITY: (
        f"a row broke a database constraint (a duplicate id or a missing value): {_ROLLED_BACK}"
    ),
    Failure.SCHEMA: (
        "the database's tables do not match this chipwarden (changed by hand, or by another "
        "version): open it again with this chipwarden, which migrates it, or use a fresh "
        "database"
    ),
    Failure.MIGRATION: (
        "the database may come from a newer chipwarden: upgrade chipwarden or use a fresh database"
    ),
}

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_SCHEMA = frozenset({"42P01", "42703", "42704", "42P07", "42701", "42883", "3F000"})
_PG_CLASSES = {"22": Failure.DATA, "23": Failure.INTEGRITY}
# SQLite result codes (sqlite3 sets ``sqlite_errorname``) and messages without a code.
_SQLITE_DATA = frozenset({"SQLITE_TOOBIG", "SQLITE_MISMATCH"})
_SQLITE_SCHEMA_TEXT = ("no such table", "no such column", "already exists", "has no column")


def classify(exc: BaseException) -> Failure:
    """The kind of ``exc`` (a SQLAlchemy or Alembic error); anything unknown is treated as
    the database being unavailable, the hint it always had."""
    if isinstance(exc, CommandError):
        return Failure.MIGRATION
    if isinstance(exc, IntegrityError):
        return Failure.INTEGRITY
    if isinstance(exc, DataError):
        return Failure.DATA
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return Failure.DATA  # a parameter the driver could not bind (TypeError, ValueError)
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return Failure.CONNECTION
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate in _PG_SCHEMA:
            return Failure.SCHEMA
        return _PG_CLASSES.get(sqlstate[:2], Failure.CONNECTION)
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_DATA:
        return Failure.DATA
    message = str(orig).lower()
    if any(text in message for text in _SQLITE_SCHEMA_TEXT):
        return Failure.SCHEMA
    if isinstance(exc, ProgrammingError) and "binding parameter" in message:
        return Failure.DATA  # sqlite3: a value of a type SQLite cannot store
    return Failure.CONNECTION


def hint_for(failure: Failure, *, backend_hint: str) -> str:
    """The remediation of a ``failure``; ``backend_hint`` is the database's own (is it up?)."""
    return backend_hint if failure is Failure.CONNECTION else _HINTS[failure]
