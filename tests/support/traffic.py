"""Pytest plugin: record the cloud API calls chipwarden's own code makes (deploy/iam checks).

Off unless ``--record-traffic=FILE`` is given (load it with ``-p tests.support.traffic``).
Then every botocore client gets a ``before-call`` handler through botocore's client-plugin
hook, and urllib3's ``HTTPConnectionPool.urlopen`` is wrapped; both only *record* (AWS
operation name, or HTTP method + path) and change nothing. A call counts only when a frame
of chipwarden's own packages is on the stack, so test set-up traffic is ignored.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

__all__ = [
    "OWN_PACKAGES",
    "Recorder",
    "body_markers",
    "caller_module",
    "initialize_client_plugin",
]

OWN_PACKAGES = ("agent.", "providers.", "policies.")
BOTOCORE_PLUGIN_ENV = "BOTOCORE_EXPERIMENTAL__PLUGINS"
BOTOCORE_PLUGIN = f"chipwarden_traffic={__name__}"
_SKIP_HTTP_FROM = ("botocore.",)  # botocore over a moto server: recorded as an AWS operation


def caller_module(frame: FrameType | None, *, unless: tuple[str, ...] = ()) -> str | None:
    """The innermost chipwarden module on the stack from ``frame`` outwards.

    None when only test code is on the stack, or when a module named by ``unless`` sits
    between ``frame`` and that chipwarden module.
    """
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if name.startswith(OWN_PACKAGES):
            return name
        if unless and name.startswith(unless):
            return None
        frame = frame.f_back
    return None


def _provider(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "providers" and len(parts) > 1 else parts[0]


class Recorder:
    """Counts recorded calls; ``dump`` appends them as JSON lines (one per distinct call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[tuple[tuple[str, Any], ...]] = Counter()

    def add(self, **fields: Any) -> None:
        """Count one call described by ``fields`` (JSON-serialisable values)."""
        key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in fields.items()))
        with self._lock:
            self.calls[key] += 1

    def records(self) -> list[dict[str, Any]]:
        """Distinct calls with their counts, in a stable order."""
        with self._lock:
            items = sorted(self.calls.items(), key=lambda kv: repr(kv[0]))
        out = []
        for key, count in items:
            rec = {k: list(v) if isinstance(v, tuple) else v for k, v in key}
            rec["count"] = count
            out.append(rec)
        return out

    def dump(self, path: Path) -> None:
        """Append the records to ``path`` (several pytest processes may share one file)."""
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records())
        with path.open("a", encoding="utf-8") as fh:
            fh.write(lines)


_recorder: Recorder | None = None


def _record_aws(model: Any = None, **_: Any) -> None:
    if _recorder is None or model is None:
        return
    module = caller_module(sys._getframe(1))
    if module is None:
        return
    _recorder.add(
        api="aws",
        provider=_provider(module),
        module=module,
        service=model.service_model.service_name,
        operation=model.name,
    )


def initialize_client_plugin(client: Any) -> None:
    """botocore's client-plugin hook: called for every client botocore creates."""
    client.meta.events.register("before-call", _record_aws)


def body_markers(body: Any, markers: tuple[str, ...]) -> list[str]:
    """Which of ``markers`` occur in a request body (bytes or str; streams are not read)."""
    if isinstance(body, bytes | bytearray):
        text = bytes(body).decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        return []
    return sorted(m for m in markers if m in text)


def _wrap_urlopen(original: Callable[..., Any], markers: tuple[str, ...]) -> Callable[..., Any]:
    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if _recorder is not None:
            module = caller_module(sys._getframe(1), unless=_SKIP_HTTP_FROM)
            if module is not None:
                parts = urlsplit(url)
                body = kwargs.get("body", args[0] if args else None)
                _recorder.add(
                    api="http",
                    provider=_provider(module),
                    module=module,
                    method=method.upper(),
                    path=parts.path,
                    query=sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}),
                    markers=body_markers(body, markers),
                )
        return original(self, method, url, *args, **kwargs)

    urlopen.__wrapped__ = original  # type: ignore[attr-defined]
    return urlopen


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--record-traffic=FILE``: append the API calls chipwarden made to FILE (JSON lines)."""
    parser.addoption(
        "--record-traffic",
        default=None,
        metavar="FILE",
        help="record cloud API calls made by chipwarden code (JSON lines, appended)",
    )
    parser.addoption(
        "--record-traffic-marker",
        action="append",
        default=[],
        metavar="TEXT",
        help="with --record-traffic: note whether TEXT occurs in each HTTP request body",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Start recording when ``--record-traffic`` is given."""
    global _recorder
    target = config.getoption("--record-traffic")
    if not target:
        return
    import urllib3.connectionpool

    _recorder = Recorder()
    config.stash[_TARGET] = Path(target)
    pool = urllib3.connectionpool.HTTPConnectionPool
    config.stash[_ORIGINAL] = pool.urlopen
    markers = tuple(config.getoption("--record-traffic-marker"))
    pool.urlopen = _wrap_urlopen(pool.urlopen, markers)  # type: ignore[method-assign]
    plugins = [p for p in os.environ.get(BOTOCORE_PLUGIN_ENV, "").split(",") if p.strip()]
    os.environ[BOTOCORE_PLUGIN_ENV] = ",".join([*plugins, BOTOCORE_PLUGIN])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Write the records and undo the urllib3 wrapper."""
    global _recorder
    if _recorder is None:
        return
    import urllib3.connectionpool

    _recorder.dump(config.stash[_TARGET])
    urllib3.connectionpool.HTTPConnectionPool.urlopen = config.stash[_ORIGINAL]  # type: ignore[method-assign]
    _recorder = None


_TARGET = pytest.StashKey[Path]()
_ORIGINAL = pytest.StashKey[Callable[..., Any]]()
