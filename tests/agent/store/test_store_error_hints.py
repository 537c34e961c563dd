"""A StoreError's hint fits its cause: "is PostgreSQL running?" only when the database cannot
be reached or used; data and constraint errors say the transaction was rolled back; missing
tables and failed migrations point at the schema. Every error is a real one from SQLite or
PostgreSQL, raised through the store or through ``store_errors`` on a real engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from agent.errors import StoreError
from agent.models import Finding, Session
from agent.store import SqlStore, open_store
from agent.store.engine import create_store_engine, parse_store_target, store_errors
from agent.store.failures import Failure, classify

SessionFactory = Callable[..., Session]
FindingFactory = Callable[..., Finding]

SERVER_HINTS = ("is PostgreSQL running", "database folder exists")
"""Phrases of the two backends' connection hints."""


def _is_server_hint(hint: str | None) -> bool:
    return hint is not None and any(phrase in hint for phrase in SERVER_HINTS)


def _raised(target_url: str, sql: str, params: dict[str, Any] | None = None) -> StoreError:
    """The StoreError ``store_errors`` makes of running ``sql`` on a real engine."""
    target = parse_store_target(target_url)
    engine = create_store_engine(target)
    try:
        with (
            pytest.raises(StoreError) as caught,
            store_errors("write", target),
            engine.begin() as conn,
        ):
            conn.execute(text(sql), params or {})
        return caught.value
    finally:
        engine.dispose()


@pytest.fixture
def raw_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A plain database URL of ``backend`` (no chipwarden tables needed)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'raw.db'}"
    else:
        yield request.getfixturevalue("pg_shared_url")


# -- the database cannot be reached or used -----------------------------------------------


def test_an_unreachable_postgresql_server_gets_the_server_hint() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    assert caught.value.hint is not None and "is PostgreSQL running" in caught.value.hint
    assert classify(caught.value.__cause__) is Failure.CONNECTION  # type: ignore[arg-type]


def test_a_sqlite_path_that_cannot_be_opened_gets_the_file_hint(tmp_path: Path) -> None:
    (tmp_path / "a-folder.db").mkdir()  # a folder where the database file should be
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{tmp_path / 'a-folder.db'}")
    assert caught.value.hint is not None and "writable" in caught.value.hint


# -- data: a value the database will not take ----------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("CREATE TEMP TABLE t (v varchar(2)); INSERT INTO t VALUES ('too long')", None),
        ("SELECT 1 / 0", None),
        ("SELECT CAST(:v AS integer)", {"v": "not a number"}),
        ("SELECT CAST(:v AS text)", {"v": "GPU access\x00from somewhere"}),  # psycopg refuses
    ],
    ids=["value-too-long", "division-by-zero", "bad-integer", "nul-byte"],
)
def test_postgresql_data_errors_get_the_data_hint(
    request: pytest.FixtureRequest, sql: str, params: dict[str, Any] | None
) -> None:
    error = _raised(request.getfixturevalue("pg_shared_url"), sql, params)
    assert not _is_server_hint(error.hint)
    assert error.hint and "could not be stored" in error.hint and "rolled back" in error.hint


def test_a_value_sqlite_cannot_bind_gets_the_data_hint(tmp_path: Path) -> None:
    error = _raised(f"sqlite:///{tmp_path / 'x.db'}", "SELECT :v", {"v": object()})
    assert not _is_server_hint(error.hint)
    assert error.hint and "could not be stored" in error.hint


# -- integrity: a broken constraint ---------------------------------------------------------


def test_a_broken_constraint_says_rolled_back_not_is_the_server_running(
    store: SqlStore, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    bad = make_finding(make_session("evt-bad")).model_copy(update={"policy_id": None})
    with pytest.raises(StoreError) as caught:
        store.commit_batch(findings=[bad], sessions=[bad.session], checkpoint=None, run_id="r")

    assert not _is_server_hint(caught.value.hint)
    assert caught.value.hint and "constraint" in caught.value.hint
    assert "rolled back" in caught.value.hint


def test_a_duplicate_key_gets_the_constraint_hint(raw_url: str) -> None:
    sql = (
        "CREATE TEMP TABLE u (k integer PRIMARY KEY); INSERT INTO u VALUES (1); "
        "INSERT INTO u VALUES (1)"
    )
    if raw_url.startswith("sqlite"):  # one statement per execute in sqlite3
        target = parse_store_target(raw_url)
        engine = create_store_engine(target)
        with (
            pytest.raises(StoreError) as caught,
            store_errors("write", target),
            engine.begin() as conn,
        ):
            for statement in sql.split("; "):
                conn.execute(text(statement))
        engine.dispose()
        error = caught.value
    else:
        error = _raised(raw_url, sql)
    assert not _is_server_hint(error.hint)
    assert error.hint and "constraint" in error.hint


# -- schema: the tables do not match ---------------------------------------------------------


def test_a_store_whose_table_was_dropped_points_at_the_schema(store_url: str) -> None:
    with open_store(store_url) as store:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE findings")
        with pytest.raises(StoreError) as caught:
            store.count_findings()

    assert not _is_server_hint(caught.value.hint)
    assert caught.value.hint and "tables do not match" in caught.value.hint


def test_a_database_from_a_newer_release_gets_the_migration_hint(store_url: str) -> None:
    open_store(store_url).close()
    target = parse_store_target(store_url)
    engine = create_store_engine(target)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    engine.dispose()

    with pytest.raises(StoreError) as caught:
        open_store(store_url)

    assert not _is_server_hint(caught.value.hint)
    assert caught.value.hint and "newer chipwarden" in caught.value.hint
