"""Fixtures for the Kubernetes provider: a fake API server speaking real List/Status shapes.

The real ``kubernetes`` client talks HTTP to pytest-httpserver on 127.0.0.1; the fake serves
``tests/data/k8s/api/{nodes,pods}.json`` page by page (``limit`` / ``continue``), checks the
bearer token, and can fail a path with a given status or expire a continue token once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.contracts import AuditWindow, CollectContext
from agent.models import Accelerator

DATA = Path(__file__).resolve().parents[2] / "data" / "k8s"
TOKEN = "test-token-0123456789"  # noqa: S105 - fake credential for the fake server

_REASONS = {401: "Unauthorized", 403: "Forbidden", 410: "Expired", 500: "InternalError"}


def _status(code: int, message: str) -> Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }
    return Response(json.dumps(body), status=code, content_type="application/json")


@dataclass
class FakeKubeApi:
    """State and behaviour of the fake API server."""

    url: str
    lists: dict[str, dict[str, Any]]
    token: str = TOKEN
    fail: dict[str, int] = field(default_factory=dict)
    expire_continue_once: set[str] = field(default_factory=set)
    expired_tokens: set[str] = field(default_factory=set)
    snapshots: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        path = request.path
        args = {k: v for k, v in request.args.items()}
        self.requests.append((path, args))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized")
        if path in self.fail:
            code = self.fail[path]
            what = path.rsplit("/", 1)[-1]
            return _status(
                code,
                f'{what} is forbidden: User "system:serviceaccount:chipwarden:agent" cannot list '
                f'resource "{what}" in API group "" at the cluster scope',
            )
        listing = self.lists[path]
        offset, snapshot = 0, self.snapshots + 1
        if args.get("continue"):
            if path in self.expire_continue_once:  # this token (and only it) expires for good
                self.expire_continue_once.discard(path)
                self.expired_tokens.add(args["continue"])
            if args["continue"] in self.expired_tokens:
                return _status(410, "The provided continue parameter is too old")
            _, at, seen = base64.b64decode(args["continue"]).decode().split(":")
            offset, snapshot = int(at), int(seen)
        else:
            self.snapshots = snapshot  # a fresh list starts a new snapshot (new tokens)
        limit = int(args.get("limit") or len(listing["items"]) or 1)
        items = listing["items"][offset : offset + limit]
        meta: dict[str, Any] = {"resourceVersion": listing["metadata"]["resourceVersion"]}
        if offset + limit < len(listing["items"]):
            token = f"{path}:{offset + limit}:{snapshot}"
            meta["continue"] = base64.b64encode(token.encode()).decode()
            meta["remainingItemCount"] = len(listing["items"]) - offset - limit
        page = {"kind": listing["kind"], "apiVersion": "v1", "metadata": meta, "items": items}
        return Response(json.dumps(page), status=200, content_type="application/json")

    def paths_requested(self, path: str) -> list[dict[str, str]]:
        return [args for p, args in self.requests if p == path]


@pytest.fixture
def kube_api(httpserver: HTTPServer) -> FakeKubeApi:
    """A fake API server serving the recorded nodes and pods."""
    lists = {
        "/api/v1/nodes": json.loads((DATA / "api" / "nodes.json").read_text()),
        "/api/v1/pods": json.loads((DATA / "api" / "pods.json").read_text()),
    }
    api = FakeKubeApi(url=httpserver.url_for("/").rstrip("/"), lists=lists)
    for path in lists:
        httpserver.expect_request(path, method="GET").respond_with_handler(api.handle)
    return api


@pytest.fixture
def make_ctx() -> Callable[..., CollectContext]:
    """``make_ctx(since=None, until=None)``: a fresh CollectContext (explicit when bounded)."""

    def make(since: datetime | None = None, until: datetime | None = None) -> CollectContext:
        window = AuditWindow(
            since=since, until=until, explicit=since is not None or until is not None
        )
        return CollectContext(window=window, clock=lambda: datetime(2026, 11, 28, tzinfo=UTC))

    return make


@pytest.fixture
def data_dir() -> Path:
    """``tests/data/k8s``."""
    return DATA


class TableCatalog:
    """An InstanceTypeCatalog over a literal table (stands in for the cloud providers' ones)."""

    def __init__(self, table: dict[str, tuple[Accelerator, ...]]) -> None:
        self.table = table

    def accelerators(self, instance_type: str) -> tuple[Accelerator, ...] | None:
        return self.table.get(instance_type)


@pytest.fixture
def catalogs() -> Callable[[str], TableCatalog | None]:
    """Resolver with small AWS and GCP tables; Azure behaves as "catalog not installed"."""
    aws = TableCatalog(
        {
            "p5.48xlarge": (
                Accelerator(
                    model="nvidia-h100",
                    count=8,
                    source_name="H100",
                    vendor="NVIDIA",
                    memory_mib=81920,
                ),
            ),
            "g5.xlarge": (
                Accelerator(
                    model="nvidia-a10g",
                    count=1,
                    source_name="A10G",
                    vendor="NVIDIA",
                    memory_mib=22888,
                ),
            ),
            "trn1.32xlarge": (
                Accelerator(model="aws-trainium", count=16, source_name="Trainium", vendor="AWS"),
            ),
            "m5.2xlarge": (),
        }
    )
    gcp = TableCatalog(
        {
            "a2-highgpu-1g": (
                Accelerator(model="nvidia-a100", count=1, source_name="nvidia-tesla-a100"),
            )
        }
    )
    tables: dict[str, TableCatalog | None] = {"aws": aws, "gcp": gcp, "azure": None}
    return lambda cloud: tables.get(cloud)
