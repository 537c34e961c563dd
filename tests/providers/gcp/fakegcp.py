"""A small fake of the Google APIs the GCP source calls, for the REAL google-cloud clients.

Serves, on 127.0.0.1 (port 0), the REST paths of Compute (aggregated instances, machine
types), Cloud Logging (``POST /v2/entries:list``), Resource Manager v3 (projects, folders,
getIamPolicy) and Cloud TPU v2 (nodes), with ``nextPageToken`` pagination and injectable
Google-shaped errors. The Logging fake cannot evaluate the query language: it picks the
stream from the filter's service/log markers (as the real server-side filter would select
it) and honours the ``timestamp>=``/``timestamp<=`` clauses and ``pageSize``.

``POST /token`` is an OAuth token endpoint (refresh-token grant) for real google-auth
credentials; a request carrying a bearer token the fake did not issue, or one it expired, is
answered 401. With a ``plan`` (tests/reliability/faultlab.py ``FaultPlan``), each API request
asks ``plan.draw(identity)`` (identity = method, path, query and body) and the fault is made
for real on the wire: see ``FAULT_KINDS``.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlencode, urlparse

from providers.gcp.entries import parse_timestamp

# kind -> how the fake produces it.
FAULT_KINDS: dict[str, str] = {
    "throttle": "429 RESOURCE_EXHAUSTED with Retry-After (``retry_after``, 0 by default)",
    "server-error": "500 INTERNAL or 503 UNAVAILABLE (alternately)",
    "timeout": "the answer is sent only after fault_delay seconds (past the read timeout)",
    "reset": "the connection is reset (RST) without an answer",
    "truncated": "the body stops at half its Content-Length and the connection closes",
    "missing": "404 NOT_FOUND for a machine type a listed instance names (machineTypes.get)",
    "expired": "the presented access token expires: 401 UNAUTHENTICATED, and so does any "
    "later request with it",
}
_ANY_ROUTE = ("throttle", "server-error", "timeout", "reset", "truncated")
_MACHINE_TYPE = re.compile(r"/compute/v1/projects/[^/]+/zones/[^/]+/machineTypes/[^/]+")

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


class FaultSource(Protocol):
    """What the fake asks per request (``FaultPlan`` in tests/reliability/faultlab.py)."""

    kinds: Sequence[str]

    def draw(self, identity: str, kinds: Sequence[str] | None = None) -> str | None: ...


@dataclass(frozen=True)
class Reply:
    """An answer and how it goes on the wire: ``whole``, ``late``, ``reset`` or ``truncated``."""

    status: int
    payload: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()
    delivery: str = "whole"


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
    plan: FaultSource | None = None
    fault_delay: float = 1.0
    """How late a ``timeout`` fault answers (set it above the client's read timeout)."""
    retry_after: str = "0"
    """The ``Retry-After`` of a ``throttle`` fault."""
    produced: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, bool] = field(default_factory=dict)
    """Access tokens issued by ``POST /token`` -> still valid."""
    token_grants: list[dict[str, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _last_fault: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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

    # -- faults and tokens ---------------------------------------------------------------------

    def respond(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        raw: bytes,
        authorization: str | None,
    ) -> Reply:
        """The answer to one request: token grant, auth check, drawn fault, else ``handle``."""
        if method == "POST" and path == "/token":
            return self._grant({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
        body = json.loads(raw) if raw.strip() else {}
        with self._lock:
            self.requests.append((method, path, {**query, **body}))
        token = authorization.split(" ", 1)[1] if authorization else None
        if token is not None and not self.tokens.get(token, False):
            return self._unauthenticated()
        kind = self._draw(method, path, query, raw, token)
        if kind is not None:
            early = self._fault_reply(kind, path, token)
            if early is not None:
                return early
        status, payload = self.handle(method, path, query, body)
        delivery = {"timeout": "late", "reset": "reset", "truncated": "truncated"}
        return Reply(status, payload, delivery=delivery.get(kind or "", "whole"))

    def _draw(
        self, method: str, path: str, query: dict[str, str], raw: bytes, token: str | None
    ) -> str | None:
        if self.plan is None:
            return None
        identity = f"{method} {path}?{urlencode(sorted(query.items()))} {raw.decode()}"
        producible = list(_ANY_ROUTE)
        if method == "GET" and _MACHINE_TYPE.fullmatch(path):
            producible.append("missing")
        if token is not None and self._last_fault.get(identity) != "expired":
            producible.append("expired")  # a token expires once: its successor is fresh
        offered = [k for k in self.plan.kinds if k in producible]
        kind = self.plan.draw(identity, offered or None) if offered else None
        with self._lock:
            if kind is None:
                self._last_fault.pop(identity, None)
            else:
                self._last_fault[identity] = kind
                self.produced[kind] += 1
        return kind

    def _fault_reply(self, kind: str, path: str, token: str | None) -> Reply | None:
        """The reply of a fault that replaces the answer (``None``: the answer goes, spoiled)."""
        if kind == "throttle":
            body = google_error(
                429, "Quota exceeded for quota metric 'Read requests'", reason="rateLimitExceeded"
            )
            return Reply(429, body, headers=(("Retry-After", self.retry_after),))
        if kind == "server-error":
            status = 503 if self.produced["server-error"] % 2 else 500
            message = "The service is currently unavailable." if status == 503 else "Internal"
            return Reply(status, google_error(status, message, reason="backendError"))
        if kind == "missing":
            return Reply(
                404, google_error(404, f"The resource '{path}' was not found", reason="notFound")
            )
        if kind == "expired":
            if token is not None:
                self.tokens[token] = False
            return self._unauthenticated()
        return None

    def _unauthenticated(self) -> Reply:
        body = google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            reason="authError",
        )
        challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        return Reply(401, body, headers=(("WWW-Authenticate", challenge),))

    def _grant(self, form: dict[str, str]) -> Reply:
        """OAuth 2.0 refresh-token grant (what google-auth's user credentials send)."""
        self.token_grants.append(form)
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return Reply(400, {"error": "unsupported_grant_type"})
        with self._lock:
            token = f"ya29.fake-{len(self.tokens) + 1}"
            self.tokens[token] = True
        return Reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    # -- routing -------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
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
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms ACK stall
    fake: FakeGcp

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self, method: str) -> None:
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake: FakeGcp = self.server.fake  # type: ignore[attr-defined]
        reply = fake.respond(
            method, unquote(parsed.path), query, raw, self.headers.get("Authorization")
        )
        if reply.delivery == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # RST, no answer
            return
        if reply.delivery == "late":
            self.close_connection = True
            if fake.stopping.wait(fake.fault_delay):
                return
        data = json.dumps(reply.payload).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if reply.delivery == "truncated":
                self.close_connection = True
                data = data[: len(data) // 2]
            self.wfile.write(data)
        except OSError:  # the client gave up (late answer): nothing to do
            self.close_connection = True

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
        self.fake.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
