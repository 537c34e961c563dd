"""A small fake of the Google APIs the GCP source calls, for the REAL google-cloud clients.

Serves, on 127.0.0.1 (port 0), the REST paths of Compute (aggregated instances, machine
types), Cloud Logging (``POST /v2/entries:list``), Resource Manager v3 (projects, folders,
getIamPolicy) and Cloud TPU v2 (nodes), with ``nextPageToken`` pagination and injectable
Google-shaped errors. The Logging fake cannot evaluate the query language: it picks the
stream from the filter's service/log markers (as the real server-side filter would select
it) and honours the ``timestamp>=``/``timestamp<=`` clauses and ``pageSize``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from providers.gcp.entries import parse_timestamp

# (marker in the filter, stream) in the order the fake tests them.
_FILTER_MARKERS = (
    ("vpc_flows", "vpc-flows"),
    ('"iap.googleapis.com"', "iap"),
    ('"oslogin.googleapis.com"', "oslogin"),
    ("ssh-serialport", "serial-port"),
    ("setMetadata", "ssh-keys"),
    ('"k8s.io"', "gke"),
)
_TS_CLAUSE = re.compile(r'timestamp(?P<op>>=|<=)"(?P<ts>[^"]+)"')


def entry_stream(entry: dict[str, Any]) -> str | None:
    """Which stream's server-side filter would select ``entry`` (mirrors streams.py)."""
    if "vpc_flows" in str(entry.get("logName", "")):
        return "vpc-flows"
    proto = entry.get("protoPayload") or {}
    service = str(proto.get("serviceName", ""))
    method = str(proto.get("methodName", ""))
    if service == "iap.googleapis.com":
        return "iap"
    if service == "oslogin.googleapis.com":
        return "oslogin"
    if "ssh-serialport" in method:
        return "serial-port"
    if "setMetadata" in method or "setCommonInstanceMetadata" in method:
        return "ssh-keys"
    if service == "k8s.io":
        return "gke"
    return None


def google_error(status: int, message: str, *, reason: str | None = None) -> dict[str, Any]:
    """A Google API error body (JSON error model)."""
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
    }
    body: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": names.get(status, "UNKNOWN"),
        "errors": [{"message": message, "domain": "global", "reason": reason or "forbidden"}],
    }
    if reason:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return {"error": body}


@dataclass
class Fault:
    """Answer requests matching ``method`` + ``pattern`` with ``status`` (``times`` or forever)."""

    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    times: int | None = None


@dataclass
class FakeGcp:
    """State behind the fake server; tests fill it, then point clients at ``url``."""

    instance_pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    machine_types: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    projects_by_parent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    folders_by_parent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    tpu_nodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    denied_log_projects: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def fail(
        self,
        method: str,
        pattern: str,
        status: int = 403,
        *,
        message: str = "denied",
        reason: str | None = None,
        times: int | None = None,
    ) -> None:
        """Inject an error for requests whose path matches ``pattern`` (a regex)."""
        self.faults.append(
            Fault(
                method,
                re.compile(pattern),
                status,
                google_error(status, message, reason=reason),
                times,
            )
        )

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        """Recorded requests (query + body merged) whose path matches ``pattern``."""
        rx = re.compile(pattern)
        return [body for m, path, body in self.requests if m == method and rx.search(path)]

    # -- routing -------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path, {**query, **body}))
        for fault in self.faults:
            if fault.method == method and fault.pattern.search(path) and fault.times != 0:
                if fault.times is not None:
                    fault.times -= 1
                return fault.status, fault.body
        for rx, verb, handler in _ROUTES:
            match = rx.fullmatch(path)
            if match and verb == method:
                return handler(self, match, query, body)
        return 404, google_error(404, f"no fake route for {method} {path}", reason="notFound")

    def _aggregated(self, m: re.Match[str], q: dict[str, str], _b: Any) -> tuple[int, Any]:
        pages = self.instance_pages.get(m["project"])
        if pages is None:
            return 404, google_error(404, f"project {m['project']} not found", reason="notFound")
        index = int(q.get("pageToken") or 0)
        page = dict(pages[index])
        if index + 1 < len(pages):
            page["nextPageToken"] = str(index + 1)
        return 200, page

    def _machine_type(self, m: re.Match[str], _q: Any, _b: Any) -> tuple[int, Any]:
        found = self.machine_types.get((m["zone"], m["type"]))
        if found is None:
            return 404, google_error(404, "machine type not found", reason="notFound")
        return 200, found

    def _entries(self, _m: Any, _q: Any, body: dict[str, Any]) -> tuple[int, Any]:
        (resource,) = body["resourceNames"]
        project = resource.split("/", 1)[1]
        if project in self.denied_log_projects:
            return 403, google_error(403, "The caller does not have permission")
        flt = str(body.get("filter", ""))
        stream = next((s for marker, s in _FILTER_MARKERS if marker in flt), None)
        bounds = {c["op"]: parse_timestamp(c["ts"])[1] for c in _TS_CLAUSE.finditer(flt)}
        picked = []
        for entry in self.entries.get(project, []):
            if entry_stream(entry) != stream:
                continue
            try:
                ts = parse_timestamp(entry.get("timestamp"))[1]
            except Exception:  # malformed on purpose: the real API would not filter it out
                picked.append(("", str(entry.get("insertId", "")), entry))
                continue
            if ">=" in bounds and ts < bounds[">="]:
                continue
            if "<=" in bounds and ts > bounds["<="]:
                continue
            picked.append((ts, str(entry.get("insertId", "")), entry))
        picked.sort(key=lambda t: (t[0], t[1]))
        start = int(body.get("pageToken") or 0)
        size = int(body.get("pageSize") or 1000)
        out: dict[str, Any] = {"entries": [e for _, _, e in picked[start : start + size]]}
        if start + size < len(picked):
            out["nextPageToken"] = str(start + size)
        return 200, out

    def _list(self, items: list[dict[str, Any]], key: str, q: dict[str, str]) -> dict[str, Any]:
        start = int(q.get("pageToken") or 0)
        size = int(q.get("pageSize") or 100)
        out: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    def _projects(self, _m: Any, q: dict[str, str], _b: Any) -> tuple[int, Any]:
        return 200, self._list(self.projects_by_parent.get(q.get("parent", ""), []), "projects", q)

    def _folders(self, _m: Any, q: dict[str, str], _b: Any) -> tuple[int, Any]:
        return 200, self._list(self.folders_by_parent.get(q.get("parent", ""), []), "folders", q)

    def _get(self, store: dict[str, dict[str, Any]], key: str) -> tuple[int, Any]:
        if key not in store:
            return 403, google_error(403, f"{key}: permission denied or not found")
        return 200, store[key]

    def _get_project(self, m: re.Match[str], _q: Any, _b: Any) -> tuple[int, Any]:
        return self._get(self.projects, m["id"])

    def _get_folder(self, m: re.Match[str], _q: Any, _b: Any) -> tuple[int, Any]:
        return self._get(self.folders, f"folders/{m['id']}")

    def _policy(self, m: re.Match[str], _q: Any, _b: Any) -> tuple[int, Any]:
        return self._get(self.policies, m["resource"])

    def _tpu(self, m: re.Match[str], q: dict[str, str], _b: Any) -> tuple[int, Any]:
        return 200, self._list(self.tpu_nodes.get(m["project"], []), "nodes", q)


_ROUTES = [
    (
        re.compile(r"/compute/v1/projects/(?P<project>[^/]+)/aggregated/instances"),
        "GET",
        FakeGcp._aggregated,
    ),
    (
        re.compile(
            r"/compute/v1/projects/[^/]+/zones/(?P<zone>[^/]+)/machineTypes/(?P<type>[^/]+)"
        ),
        "GET",
        FakeGcp._machine_type,
    ),
    (re.compile(r"/v2/entries:list"), "POST", FakeGcp._entries),
    (re.compile(r"/v3/projects"), "GET", FakeGcp._projects),
    (re.compile(r"/v3/folders"), "GET", FakeGcp._folders),
    (re.compile(r"/v3/projects/(?P<id>[^/:]+)"), "GET", FakeGcp._get_project),
    (re.compile(r"/v3/folders/(?P<id>[^/:]+)"), "GET", FakeGcp._get_folder),
    (
        re.compile(r"/v3/(?P<resource>(?:projects|folders|organizations)/[^/:]+):getIamPolicy"),
        "POST",
        FakeGcp._policy,
    ),
    (re.compile(r"/v2/projects/(?P<project>[^/]+)/locations/-/nodes"), "GET", FakeGcp._tpu),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeGcp

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self, method: str) -> None:
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else {}
        status, payload = self.server.fake.handle(  # type: ignore[attr-defined]
            method, unquote(parsed.path), query, body
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class FakeGcpServer:
    """Runs a ``FakeGcp`` on a daemon thread; ``reset()`` gives a clean state per test."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.url = "http://{}:{}".format(*self.httpd.server_address)
        self.fake = self.reset()
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def reset(self) -> FakeGcp:
        self.fake = FakeGcp(url=self.url)
        self.httpd.fake = self.fake  # type: ignore[attr-defined]
        return self.fake

    def start(self) -> FakeGcpServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
