"""Fixtures for the store specs: a fresh store per test on SQLite and on PostgreSQL, plus
small factories for sessions and findings.

PostgreSQL: URL from ``CHIPWARDEN_TEST_PG_URL`` (default below). Each test gets its own
schema ``cw_test_<run hex>_<n>``; all of them are dropped at the end. An unreachable server
fails the PostgreSQL tests unless ``CHIPWARDEN_SKIP_PG=1``.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from agent.models import (
    AccessMethod,
    Finding,
    FindingStatus,
    InstanceView,
    IpIntel,
    IpKind,
    Session,
    Severity,
    finding_id,
)
from agent.store import SqlStore, open_store

PG_URL_ENV = "CHIPWARDEN_TEST_PG_URL"
PG_SKIP_ENV = "CHIPWARDEN_SKIP_PG"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SessionFactory = Callable[..., Session]
FindingFactory = Callable[..., Finding]


# -- PostgreSQL schemas -------------------------------------------------------------------


@dataclass
class PgSchemas:
    """Creates a schema name per test and drops them all when the test session ends."""

    url: str
    conn: psycopg.Connection[Any]
    prefix: str = field(default_factory=lambda: f"cw_test_{uuid.uuid4().hex[:12]}")
    counter: Iterator[int] = field(default_factory=itertools.count)

    def new_url(self) -> tuple[str, str]:
        schema = f"{self.prefix}_{next(self.counter)}"
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}schema={schema}", schema

    def drop(self, schema: str) -> None:
        self.conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )

    def drop_all(self) -> None:
        rows = self.conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (self.prefix,)
        ).fetchall()
        for (schema,) in rows:
            self.drop(schema)


@pytest.fixture(scope="session")
def pg_schemas() -> Iterator[PgSchemas]:
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get(PG_SKIP_ENV) == "1":
            pytest.skip(f"PostgreSQL unreachable at {url} and {PG_SKIP_ENV}=1")
        pytest.fail(
            f"PostgreSQL unreachable at {url} ({exc}); start it, set {PG_URL_ENV}, "
            f"or set {PG_SKIP_ENV}=1 to skip the PostgreSQL tests",
            pytrace=False,
        )
    schemas = PgSchemas(url=url, conn=conn)
    try:
        yield schemas
    finally:
        schemas.drop_all()
        conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The database under test: ``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL for a brand-new database of ``backend`` (no tables yet)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    schemas: PgSchemas = request.getfixturevalue("pg_schemas")
    url, schema = schemas.new_url()
    yield url
    schemas.drop(schema)


@pytest.fixture(scope="session")
def pg_shared_url(pg_schemas: PgSchemas) -> str:
    """One PostgreSQL schema migrated once; the ``store`` fixture empties it per test."""
    url, _ = pg_schemas.new_url()
    open_store(url).close()
    return url


# -- clock and store ----------------------------------------------------------------------


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(
    backend: str, tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> Iterator[SqlStore]:
    """An open, empty store, closed after the test.

    SQLite: a new file. PostgreSQL: the session's migrated schema with every table emptied
    first (much cheaper than a schema and a migration per test).
    """
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_shared_url")
    with open_store(url, clock=clock) as opened:
        if backend == "postgresql":
            with opened.engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE findings, sessions, runs, checkpoints")
        yield opened


# -- factories ----------------------------------------------------------------------------


def build_session(key: str = "evt-1", **overrides: Any) -> Session:
    """A plausible SSM session from a public IP; any field can be overridden."""
    fields: dict[str, Any] = {
        "key": key,
        "provider": "aws",
        "source": "cloudtrail",
        "account": "111122223333",
        "region": "us-east-1",
        "instance_id": "i-0123456789abcdef0",
        "principal": "arn:aws:iam::111122223333:user/alice",
        "source_ip": "203.0.113.10",
        "method": AccessMethod.SSM_SESSION,
        "started_at": T0,
        "attributes": {"eventName": "StartSession"},
    }
    fields.update(overrides)
    return Session(**fields)


def build_finding(
    session: Session | None = None,
    *,
    policy_id: str = "export-controls/d5-remote-access",
    severity: Severity = Severity.HIGH,
    country: str | None = "CN",
    last_seen: datetime = T0,
    **overrides: Any,
) -> Finding:
    """A finding for ``session`` (default: ``build_session()``) with a stable id."""
    session = session or build_session()
    fields: dict[str, Any] = {
        "id": finding_id(policy_id, session),
        "policy_id": policy_id,
        "severity": severity,
        "title": "Remote access to a 3A090 GPU from a D:5 country",
        "reasons": ("source IP geolocates to CN", "instance carries 8 x nvidia-h100"),
        "status": FindingStatus.OPEN,
        "session": session,
        "ip": IpIntel(
            ip=session.source_ip or "",
            kind=IpKind.PUBLIC,
            country=country,
            sources=("test fixture",),
        ),
        "instance": InstanceView(
            id=session.instance_id,
            type="p5.48xlarge",
            in_inventory=True,
            accelerators=({"model": "nvidia-h100", "count": 8, "export_class": "3A090.a"},),
        ),
        "jurisdictions": (country,) if country else (),
        "bundle_revision": "rev-1",
        "pack_version": "1.0.0",
        "citations": ("15 CFR 740.2(a)(17)",),
        "first_seen": last_seen,
        "last_seen": last_seen,
        "run_id": "run-1",
    }
    fields.update(overrides)
    return Finding(**fields)


@pytest.fixture
def make_session() -> SessionFactory:
    return build_session


@pytest.fixture
def make_finding() -> FindingFactory:
    return build_finding
