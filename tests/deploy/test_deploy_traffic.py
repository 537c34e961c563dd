"""The traffic recorder counts calls made from chipwarden's modules and ignores test set-up."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest
import urllib3
import urllib3.connectionpool
from moto import mock_aws

from tests.support import traffic


def _as_module(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Re-create ``fn`` with ``__name__ == name`` in its globals, as if defined in ``name``."""
    namespace: dict[str, Any] = {"__name__": name, "fn": fn}
    exec("def call(*a, **kw):\n    return fn(*a, **kw)\n", namespace)  # noqa: S102 - test helper
    return namespace["call"]  # type: ignore[no-any-return]


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> traffic.Recorder:
    rec = traffic.Recorder()
    monkeypatch.setattr(traffic, "_recorder", rec)
    pool = urllib3.connectionpool.HTTPConnectionPool
    monkeypatch.setattr(pool, "urlopen", traffic._wrap_urlopen(pool.urlopen, ("data_access",)))
    return rec


def test_caller_module_is_the_innermost_chipwarden_frame() -> None:
    import sys

    inner = _as_module("providers.demo.client", lambda: traffic.caller_module(sys._getframe()))
    outer = _as_module("agent.pipeline", inner)
    assert outer() == "providers.demo.client"
    assert traffic.caller_module(sys._getframe()) is None


def test_http_calls_are_recorded_only_from_chipwarden_code(
    server: str, recorder: traffic.Recorder
) -> None:
    http = urllib3.PoolManager()
    get = _as_module("providers.demo.client", http.request)
    get("GET", f"{server}/v1/things?limit=5&continue=abc")
    get("GET", f"{server}/v1/things?limit=5")
    get("POST", f"{server}/v2/entries:list", body=b'{"filter": "logs/x%2Fdata_access"}')
    http.request("GET", f"{server}/set-up/by/the/test")
    records = recorder.records()
    seen = sorted((r["method"], r["path"], r["query"], r["markers"]) for r in records)
    assert seen == [
        ("GET", "/v1/things", ["continue", "limit"], []),
        ("GET", "/v1/things", ["limit"], []),
        ("POST", "/v2/entries:list", [], ["data_access"]),
    ]
    assert all(r["count"] == 1 and r["provider"] == "demo" for r in records)


def test_repeated_calls_are_counted_once_per_distinct_call(
    server: str, recorder: traffic.Recorder, tmp_path: Any
) -> None:
    get = _as_module("providers.demo.client", urllib3.PoolManager().request)
    for _ in range(3):
        get("GET", f"{server}/v1/things")
    out = tmp_path / "traffic.jsonl"
    recorder.dump(out)
    recorder.dump(out)
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and '"count": 3' in lines[0]


def test_botocore_operations_are_recorded_through_the_client_plugin_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = traffic.Recorder()
    monkeypatch.setattr(traffic, "_recorder", rec)
    monkeypatch.setenv(traffic.BOTOCORE_PLUGIN_ENV, traffic.BOTOCORE_PLUGIN)
    with mock_aws():
        sts = boto3.Session().client("sts", region_name="us-east-1")
        _as_module("providers.aws.client", sts.get_caller_identity)()
        sts.get_caller_identity()  # test set-up: not recorded
    assert [(r["service"], r["operation"], r["count"]) for r in rec.records()] == [
        ("sts", "GetCallerIdentity", 1)
    ]


def test_http_made_by_botocore_is_left_to_the_operation_hook(
    server: str, recorder: traffic.Recorder
) -> None:
    pool = urllib3.PoolManager()
    via_botocore = _as_module("botocore.endpoint", pool.request)
    _as_module("providers.aws.client", via_botocore)("GET", f"{server}/")
    assert recorder.records() == []
