"""Fixtures for the GCP provider: a fake Google API server for the real SDK clients.

Environment is set before any google library is imported: no gRPC for logging, no project
discovery through ADC, and any stray metadata-server probe stays on loopback.
"""

from __future__ import annotations

import os

os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "chipwarden-test")
os.environ.setdefault("GOOGLE_CLOUD_DISABLE_GRPC", "true")
os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
os.environ.setdefault("GCE_METADATA_IP", "127.0.0.1:9")
os.environ.setdefault("NO_GCE_CHECK", "true")  # google-auth reads it at import, lowercase

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import AuditWindow, CollectContext, SourceEnv

from .fakegcp import FakeGcp, FakeGcpServer
from .samples import NOW, load_json, load_jsonl


@pytest.fixture(scope="session")
def gcp_server() -> Iterator[FakeGcpServer]:
    server = FakeGcpServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake(gcp_server: FakeGcpServer) -> FakeGcp:
    """A clean fake per test."""
    return gcp_server.reset()


@pytest.fixture
def make_ctx() -> Callable[..., CollectContext]:
    """A CollectContext with a fixed clock; ``checkpoints`` is a dict-backed store."""

    def make(
        *,
        checkpoints: dict[str, str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        explicit: bool = False,
        lookback_hours: int = 48,
    ) -> CollectContext:
        store = checkpoints if checkpoints is not None else {}
        return CollectContext(
            window=AuditWindow(
                since=since, until=until, explicit=explicit, default_lookback_hours=lookback_hours
            ),
            clock=lambda: NOW,
            checkpoints=store.get,
        )

    return make


@pytest.fixture
def env(tmp_path: Path) -> SourceEnv:
    return SourceEnv(name="gcp-test", base_dir=tmp_path, clock=lambda: NOW)


@pytest.fixture
def gcp_config(fake: FakeGcp) -> Callable[..., dict[str, Any]]:
    """A source config pointed at the fake with anonymous credentials and no retries."""

    def make(**overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "type": "gcp",
            "projects": ["gpu-prod"],
            "credentials": "anonymous",
            "endpoints": {
                key: fake.url for key in ("compute", "logging", "resourcemanager", "tpu")
            },
            "retry": None,
            "timeout": 5,
        }
        base.update(overrides)
        return base

    return make


@pytest.fixture
def gpu_prod(fake: FakeGcp) -> FakeGcp:
    """Project ``gpu-prod``: two inventory pages, its machine type, logs and an IAM policy
    with Data Access on for all services."""
    fake.instance_pages["gpu-prod"] = [
        load_json("own__gpu-prod__aggregated-instances-page1.json"),
        load_json("own__gpu-prod__aggregated-instances-page2.json"),
    ]
    fake.machine_types[("us-central1-a", "a3-highgpu-8g")] = load_json(
        "own__machine-type__a3-highgpu-8g.json"
    )
    fake.entries["gpu-prod"] = load_jsonl("own__gpu-prod__log-entries.jsonl")
    fake.tpu_nodes["gpu-prod"] = load_json("own__gpu-prod__tpu-nodes.json")["nodes"]
    fake.policies["projects/gpu-prod"] = {
        "version": 3,
        "etag": "BwX=",
        "auditConfigs": [
            {
                "service": "allServices",
                "auditLogConfigs": [{"logType": "DATA_READ"}, {"logType": "DATA_WRITE"}],
            }
        ],
    }
    return fake
