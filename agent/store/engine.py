"""Store URLs, engines and migrations: one backend object per supported database.

``sqlite:///relative.db`` resolves against the current directory when the store is opened;
SQLite connections get WAL mode, ``busy_timeout`` and foreign keys. ``postgresql://`` URLs use
psycopg 3, and ``?schema=NAME`` (PostgreSQL only) pins ``search_path`` to that schema.
Database errors leave this package only as :class:`agent.errors.StoreError` with a hint.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from agent.errors import StoreError
from agent.store.failures import classify, hint_for

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS_DIR",
    "WRITE_OPTIONS",
    "StoreTarget",
    "alembic_config",
    "create_store_engine",
    "head_revision",
    "is_retryable",
    "migrate",
    "parse_store_target",
    "store_errors",
]

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
_BEGIN_IMMEDIATE = "chipwarden_begin_immediate"
WRITE_OPTIONS: dict[str, Any] = {_BEGIN_IMMEDIATE: True}
"""Execution options for write transactions (SQLite takes its write lock at BEGIN)."""

_MIGRATION_LOCK_KEY = 0x63776D67  # PostgreSQL advisory lock held while migrating
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_URL_HINT = "use sqlite:///path/to/chipwarden.db or postgresql://user@host:5432/dbname"


class _Backend:
    """What differs between databases: URL preparation, connection setup, migration lock."""

    name = ""
    hint = ""

    def prepare(self, url: URL, *, schema: str | None) -> tuple[URL, dict[str, Any]]:
        """Rewrite ``url`` for this backend and return it with ``create_engine`` kwargs."""
        raise NotImplementedError

    def install(self, engine: Engine) -> None:
        """Attach connection event listeners to a new engine."""

    def before_migrate(self, conn: Connection, *, schema: str | None) -> None:
        """Run inside the migration transaction, before Alembic."""


class _Sqlite(_Backend):
    name = "sqlite"
    hint = (
        "check that the database folder exists and is writable and that no other process "
        "holds a long write lock"
    )

    def prepare(self, url: URL, *, schema: str | None) -> tuple[URL, dict[str, Any]]:
        if schema is not None:
            raise StoreError(
                f"?schema={schema} is only supported for PostgreSQL store URLs",
                hint="remove ?schema=... from the sqlite:/// URL",
            )
        if url.database in (None, "", ":memory:"):
            # One shared connection, so every thread sees the same in-memory database.
            return url, {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        path = Path(url.database).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.parent.is_dir():
            raise StoreError(
                f"folder {path.parent} of the SQLite store does not exist",
                hint="create the folder first (sqlite:///relative.db is relative to the "
                "current directory)",
            )
        return url.set(database=str(path)), {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}}

    def install(self, engine: Engine) -> None:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)


def _sqlite_on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # SQLAlchemy emits BEGIN itself (_sqlite_on_begin), so pysqlite must not: this makes
    # DDL transactional and lets write transactions start with BEGIN IMMEDIATE.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_BEGIN_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class _Postgres(_Backend):
    name = "postgresql"
    hint = (
        "is PostgreSQL running? check the URL (host, port, user, password, database) and "
        "that the user may create tables"
    )

    def prepare(self, url: URL, *, schema: str | None) -> tuple[URL, dict[str, Any]]:
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 10
        if schema is not None:
            options = url.query.get("options", "")
            options = options if isinstance(options, str) else " ".join(options)
            connect_args["options"] = f"{options} -c search_path={schema}".strip()
        return url, {"connect_args": connect_args, "pool_pre_ping": True}

    def before_migrate(self, conn: Connection, *, schema: str | None) -> None:
        # Two processes opening a fresh database at once must not both create the tables.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        if schema is not None:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


_SQLITE = _Sqlite()
_POSTGRES = _Postgres()
_BACKENDS: dict[str, _Backend] = {"sqlite": _SQLITE, "postgresql": _POSTGRES, "postgres": _POSTGRES}


@dataclass(frozen=True)
class StoreTarget:
    """A parsed store URL: the engine URL, its backend, and a password-free display form."""

    url: URL
    backend: _Backend
    schema: str | None = None
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The URL as shown in logs and errors: password hidden, ``?schema=`` kept."""
        url = (
            self.url if self.schema is None else self.url.update_query_dict({"schema": self.schema})
        )
        return url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.backend.name


def parse_store_target(raw: str) -> StoreTarget:
    """Parse a store URL (``sqlite:///...``, ``postgresql://...[?schema=NAME]``)."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        shown = re.sub(r"//[^/@]*@", "//***@", raw)
        raise StoreError(f"store URL {shown!r} is not a database URL", hint=_URL_HINT) from exc
    backend = _BACKENDS.get(url.get_backend_name())
    if backend is None:
        raise StoreError(f"unsupported store URL scheme {url.drivername!r}", hint=_URL_HINT)
    schema = url.query.get("schema")
    if schema is not None and (not isinstance(schema, str) or not _SCHEMA_NAME.match(schema)):
        raise StoreError(
            f"invalid ?schema= value {schema!r} in the store URL",
            hint="use one lower-case identifier: letters, digits and _, at most 63 characters",
        )
    prepared, kwargs = backend.prepare(url.difference_update_query(["schema"]), schema=schema)
    return StoreTarget(url=prepared, backend=backend, schema=schema, engine_kwargs=kwargs)


def create_store_engine(target: StoreTarget) -> Engine:
    """A pooled engine for ``target`` with the backend's connection setup installed."""
    try:
        engine = create_engine(target.url, **target.engine_kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot create a database engine for {target.display}: {exc}",
            hint="for PostgreSQL install chipwarden[postgres] (psycopg 3); " + _URL_HINT,
        ) from exc
    target.backend.install(engine)
    return engine


def alembic_config() -> Config:
    """Alembic config pointing at the packaged migrations; no alembic.ini is read."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this chipwarden."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
    return head


_MIGRATE_LOCK = threading.Lock()
"""Alembic's command API keeps process-global state while it loads the script directory and
env.py: two threads migrating at once fail (KeyError 'script'). Other processes are kept apart
by the database (PostgreSQL advisory lock / SQLite BEGIN IMMEDIATE)."""


def migrate(engine: Engine, target: StoreTarget) -> str:
    """Run ``alembic upgrade head`` in one transaction; returns the database's revision."""
    with _MIGRATE_LOCK:
        return _migrate(engine, target)


def _migrate(engine: Engine, target: StoreTarget) -> str:
    config = alembic_config()
    with store_errors("migrate", target), engine.connect() as conn:
        conn = conn.execution_options(**WRITE_OPTIONS)
        with conn.begin():
            target.backend.before_migrate(conn, schema=target.schema)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            revision = MigrationContext.configure(conn).get_current_revision()
    log.debug("store_migrated", url=target.display, revision=revision)
    return revision or ""


def is_retryable(exc: DBAPIError) -> bool:
    """True for PostgreSQL deadlocks and serialization failures (safe to re-run)."""
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _reason(exc: BaseException) -> str:
    """The driver's first message line (no SQL, no parameters, no row DETAIL)."""
    source = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return (lines[0] if lines else type(source).__name__)[:300]


@contextmanager
def store_errors(action: str, target: StoreTarget) -> Iterator[None]:
    """Translate SQLAlchemy and Alembic errors raised inside into ``StoreError``, with the
    hint of the failure's kind (``failures.classify``): only connection and operational
    failures point at the database server or file."""
    try:
        yield
    except StoreError:
        raise
    except (CommandError, SQLAlchemyError) as exc:
        kind = classify(exc)
        log.debug("store_error", action=action, kind=kind.value, url=target.display)
        reason = str(exc) if isinstance(exc, CommandError) else _reason(exc)
        raise StoreError(
            f"store {target.display}: cannot {action}: {reason}",
            hint=hint_for(kind, backend_hint=target.backend.hint),
        ) from exc
