"""Fixtures for the reliability specs: one generated workload, fresh databases per trial.

PostgreSQL: ``CHIPWARDEN_TEST_PG_URL`` (default postgresql://postgres@127.0.0.1:5432/test);
every database is a fresh ``?schema=cw_rel_<hex>_<n>``, all dropped at the end. An unreachable
server fails these tests unless ``CHIPWARDEN_SKIP_PG=1``. ``CW_RELIABILITY_TRIALS``
sets the trials per store (default 20); ``CW_RELIABILITY_OUT`` names a folder where
each harness test writes its figures as JSON (scripts/reliability_report.py reads them).
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.reliability.crashlab import Baseline, UrlFactory
from tests.reliability.launchers import LauncherPool
from tests.reliability.workload import Workload, build_workload

PG_URL = os.environ.get("CHIPWARDEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """The generated inputs (CloudTrail files, checkpointed files, auth.log) and config."""
    return build_workload(tmp_path_factory.mktemp("workload"))


@pytest.fixture(scope="session")
def pool() -> Iterator[LauncherPool]:
    """Two fork servers (zygote.py) shared by the harness tests."""
    with LauncherPool(workers=2) as launchers:
        yield launchers


@pytest.fixture(scope="session")
def clean_runs() -> dict[str, Baseline]:
    """Uninterrupted runs, one per store kind, measured once per session."""
    return {}


@pytest.fixture
def baseline(
    store_kind: str,
    new_url: UrlFactory,
    pool: LauncherPool,
    workload: Workload,
    clean_runs: dict[str, Baseline],
    tmp_path: Path,
) -> Baseline:
    """The clean run of ``workload`` on ``store_kind`` that every interrupted run must equal."""
    if store_kind not in clean_runs:
        with pool.borrow() as launcher:
            clean_runs[store_kind] = Baseline.measure(
                launcher, workload, new_url(), tmp_path / "clean.log"
            )
    return clean_runs[store_kind]


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """An autocommit connection and a schema prefix; drops the prefix's schemas at the end."""
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CHIPWARDEN_SKIP_PG") == "1":
            pytest.skip(f"PostgreSQL unreachable at {PG_URL}")
        pytest.fail(
            f"PostgreSQL unreachable at {PG_URL} ({exc}); set CHIPWARDEN_SKIP_PG=1 to skip",
            pytrace=False,
        )
    prefix = f"cw_rel_{uuid.uuid4().hex[:10]}"
    try:
        yield conn, prefix
    finally:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (prefix,)
        ).fetchall()
        for (schema,) in rows:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_url(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> UrlFactory:
    """Each call: the URL of a brand-new, empty database of ``store_kind``."""
    counter = itertools.count()
    if store_kind == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'store-{next(counter)}.db'}"
    _, prefix = request.getfixturevalue("pg_admin")
    test = uuid.uuid4().hex[:6]  # schemas live until the session ends: never reuse a name
    return lambda: f"{PG_URL}?schema={prefix}_{test}_{next(counter)}"


@pytest.fixture
def report() -> Callable[[str, dict[str, Any]], None]:
    """Write figures to ``$CW_RELIABILITY_OUT/<name>.json`` when that is set."""

    def write(name: str, figures: dict[str, Any]) -> None:
        out = os.environ.get("CW_RELIABILITY_OUT")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / f"{name}.json").write_text(json.dumps(figures, indent=1, default=str))

    return write
