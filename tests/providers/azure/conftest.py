"""Fixtures for the azure provider tests: one trustme CA and one HTTPS fake per session."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from agent.contracts import SourceEnv
from tests.providers.azure.azfixtures import NOW
from tests.providers.azure.fakeazure import FakeAzure


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throw-away CA: the server presents its 127.0.0.1 cert, clients trust ``ca_file``."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("azure-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return Tls(ca_file=path, server_context=ctx)


@pytest.fixture(scope="session")
def fake_server(tls: Tls) -> Iterator[FakeAzure]:
    fake = FakeAzure(tls.server_context).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_server: FakeAzure) -> FakeAzure:
    """The session's fake, emptied for this test."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def config(fake: FakeAzure, tls: Tls) -> dict[str, Any]:
    """A source config pointing every endpoint at the fake, with zero retries."""
    return {
        "type": "azure",
        "credentials": "static-token",
        "token": fake.token,
        "endpoints": {"arm": fake.url, "logs": fake.url, "blob": fake.url},
        "ca_bundle": str(tls.ca_file),
        "retry_total": 0,
        "timeout_seconds": 5,
    }


@pytest.fixture
def env(tmp_path: Path) -> SourceEnv:
    return SourceEnv(name="azure-test", base_dir=tmp_path, clock=lambda: NOW)
