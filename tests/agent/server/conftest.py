"""One app for the whole server spec session (building it loads policies, geo data and the
sample inventory, about a second): a SQLite store in a temp folder, a movable clock, and
one token per role. Tests create their own findings with unique keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.cli import sample_config_path
from agent.models import Finding
from agent.review.models import Role
from agent.server.app import create_app
from agent.server.settings import ServerSettings
from agent.server.state import ServiceState
from tests.agent.review.reviewkit import PEPPER, FakeClock, build_finding, build_session, seed


@dataclass
class Service:
    """The running app, its client, clock and tokens."""

    app: FastAPI
    client: TestClient
    clock: FakeClock
    tokens: dict[Role, str]
    db_url: str

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.app.state.services
        return state

    def auth(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[role]}"}

    def finding(self, **overrides: Any) -> Finding:
        """Store one new finding (unique session key) and return it."""
        session_fields = {
            k: overrides.pop(k)
            for k in list(overrides)
            if k in ("principal", "source_ip", "account", "instance_id", "provider")
        }
        session = build_session(
            f"evt-{uuid.uuid4().hex}", started_at=self.clock(), **session_fields
        )
        (finding,) = seed(self.state.store, [build_finding(session, **overrides)])
        return finding


def make_settings(tmp: Path, **overrides: Any) -> ServerSettings:
    fields: dict[str, Any] = {
        "config": sample_config_path(),
        "store": f"sqlite:///{tmp / 'server.db'}",
        "token_pepper": PEPPER,
        "cookie_secure": False,
        "expiry_sweep_seconds": 0,
        "token_cache_seconds": 0,
        "max_request_bytes": 64 * 1024,
        "max_ingest_bytes": 256 * 1024,
        # Every spec shares one TestClient address and sends bad tokens on purpose; the
        # lockout itself is specified in test_server_auth_rate_limit.py.
        "auth_failure_limit": 100_000,
    }
    fields.update(overrides)
    return ServerSettings(**fields)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("server")
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    settings = make_settings(tmp)
    app = create_app(settings, clock=clock)
    state: ServiceState = app.state.services
    tokens = {
        role: state.review.tokens.create(name=f"{role.value}-bot", role=role, created_by="test")[0]
        for role in Role
    }
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield Service(
            app=app, client=client, clock=clock, tokens=tokens, db_url=str(settings.store)
        )
