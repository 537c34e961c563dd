"""open_store: URLs, connection setup and Alembic migrations."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from agent.errors import StoreError
from agent.models import Finding
from agent.store import SqlStore, open_store
from agent.store.engine import alembic_config, head_revision
from agent.store.schema import Base

FindingFactory = Callable[..., Finding]


TABLES = {"findings", "sessions", "runs", "checkpoints"}


def _revision(store: SqlStore) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_open_creates_every_table_on_a_fresh_database(store_url: str) -> None:
    with open_store(store_url) as store:
        tables = set(inspect(store.engine).get_table_names())

        assert tables >= TABLES
        assert "alembic_version" in tables
        assert _revision(store) == head_revision() == store.revision


def test_open_creates_the_indexes_the_queries_rely_on(store: SqlStore) -> None:
    inspector = inspect(store.engine)

    finding_indexes = {ix["name"] for ix in inspector.get_indexes("findings")}
    session_indexes = {ix["name"] for ix in inspector.get_indexes("sessions")}

    assert {
        "ix_findings_status",
        "ix_findings_severity_rank",
        "ix_findings_last_seen",
        "ix_findings_policy_id",
        "ix_findings_account",
    } <= finding_indexes
    assert "ix_sessions_started_at" in session_indexes


def test_reopening_is_idempotent_and_keeps_the_data(
    store_url: str, make_finding: FindingFactory
) -> None:
    with open_store(store_url) as first:
        first.commit_batch(
            findings=[make_finding()], sessions=[], checkpoint=("s", "1"), run_id="r1"
        )

    with open_store(store_url) as again, open_store(store_url) as third:
        assert again.revision == third.revision == head_revision()
        assert again.count_findings() == 1
        assert third.get_checkpoint("s") == "1"


def test_migrated_schema_matches_the_table_models(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    assert diff == []


def test_a_database_from_a_newer_release_is_refused_with_a_hint(store_url: str) -> None:
    with open_store(store_url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))

    with pytest.raises(StoreError) as caught:
        open_store(store_url)

    assert "9999_future" in str(caught.value)
    assert caught.value.hint is not None and "newer chipwarden" in caught.value.hint


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_postgresql_urls_use_psycopg_3(store: SqlStore) -> None:
    assert store.dialect == "postgresql"
    assert store.engine.dialect.driver == "psycopg"


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_schema_parameter_puts_the_tables_in_that_schema(store_url: str) -> None:
    schema = store_url.rsplit("schema=", 1)[1]

    with open_store(store_url) as store:
        tables = set(inspect(store.engine).get_table_names(schema=schema))

        assert tables >= TABLES
        assert f"schema={schema}" in store.url


# -- SQLite specifics ---------------------------------------------------------------------


def _pragmas(store: SqlStore) -> tuple[str, int, int]:
    with store.engine.connect() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
        busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        fks = conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
    return journal, busy, fks


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        seen: list[tuple[str, int, int]] = [_pragmas(store)]
        worker = threading.Thread(target=lambda: seen.append(_pragmas(store)))
        worker.start()
        worker.join()

    assert seen == [("wal", 30000, 1), ("wal", 30000, 1)]


def test_relative_sqlite_url_resolves_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with open_store("sqlite:///relative.db") as store:
        monkeypatch.chdir(Path("/"))
        store.set_checkpoint("scope", "v")
        assert store.get_checkpoint("scope") == "v"

    assert (tmp_path / "relative.db").is_file()
    assert not Path("/relative.db").exists()


def test_in_memory_sqlite_is_one_database_across_threads() -> None:
    with open_store("sqlite://") as store:
        worker = threading.Thread(target=lambda: store.set_checkpoint("scope", "from-thread"))
        worker.start()
        worker.join()

        assert store.get_checkpoint("scope") == "from-thread"


def test_missing_sqlite_folder_is_reported_with_the_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")

    assert str(tmp_path / "nope") in caught.value.message
    assert caught.value.hint


def test_schema_parameter_is_refused_for_sqlite(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="only supported for PostgreSQL"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}?schema=abc")


# -- bad URLs and unreachable servers -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "mysql://root@localhost/chipwarden",
        "postgresql://postgres@127.0.0.1/test?schema=Bad-Name",
        "postgresql://postgres@127.0.0.1/test?schema=a&schema=b",
    ],
)
def test_bad_store_urls_raise_store_error_with_a_hint(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)

    assert caught.value.hint


def test_unreachable_postgresql_says_to_check_the_server_and_hides_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://chip:s3cret-pw@127.0.0.1:1/test?connect_timeout=2")

    assert caught.value.hint is not None and "is PostgreSQL running" in caught.value.hint
    assert "127.0.0.1:1" in caught.value.message
    assert "s3cret-pw" not in str(caught.value)


# -- Alembic beyond upgrade ---------------------------------------------------------------


def test_downgrade_to_base_removes_the_tables_and_reopening_restores_them(store_url: str) -> None:
    with open_store(store_url) as store, store.engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        assert not (set(inspect(conn).get_table_names()) & TABLES)

    with open_store(store_url) as reopened:
        assert set(inspect(reopened.engine).get_table_names()) >= TABLES


def test_migrations_render_as_sql_offline_for_a_dba(capsys: pytest.CaptureFixture[str]) -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://dba@db.invalid/chipwarden")

    command.upgrade(config, "head", sql=True)

    rendered = capsys.readouterr().out
    assert "CREATE TABLE findings" in rendered
    assert "TIMESTAMP WITH TIME ZONE" in rendered
    assert f"'{head_revision()}'" in rendered


def test_stores_opened_from_many_threads_at_once_all_migrate(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    urls = [f"sqlite:///{tmp_path / f'db{i}.sqlite'}" for i in range(6)]

    def open_and_close(url: str) -> str:
        with open_store(url) as store:
            return store.revision

    with ThreadPoolExecutor(max_workers=6) as pool:
        revisions = list(pool.map(open_and_close, urls))

    assert len(set(revisions)) == 1 and revisions[0]
