"""A local HTTPS fake of the Azure APIs the azure source reads, for the REAL SDK clients.

Serves ARM (subscriptions, VMs, scale sets and their VMs, resource SKUs, resources by id,
Activity Log), Log Analytics (``POST /v1/workspaces/{id}/query``) and Blob storage
(path-style ``/{account}/{container}``) in their wire shapes: absolute ``nextLink`` /
``NextMarker`` pagination, ARM error bodies, partial Log Analytics results, bearer-token
checks. One server per test session; ``reset()`` between tests.

It is also a Microsoft Entra ID token endpoint (``/{tenant}/oauth2/v2.0/token``, client
credentials) issuing short-lived tokens, so a real azure-identity credential can sign in and
refresh mid-run; and, given a ``FaultPlan`` (tests/reliability/faultlab.py), it answers the
drawn calls with a fault produced on the wire (see ``fakefaults.py``).
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import threading
import time
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

from tests.providers.azure import fakefaults

if TYPE_CHECKING:
    from tests.reliability.faultlab import FaultPlan

TOKEN = "fake-token"  # noqa: S105 - a test double
TENANT = "72f988bf-0000-4000-8000-00000000c0de"
CLIENT_ID = "5f1a2b3c-0000-4000-8000-0000000a0d17"
CLIENT_SECRET = "fake-client-secret"  # noqa: S105 - a test double
_LAST_MODIFIED = format_datetime(datetime(2024, 5, 1, 12, 0, 0).astimezone(), usegmt=True)


def arm_denied(action: str, scope: str) -> dict[str, Any]:
    """ARM's AuthorizationFailed body, as returned with HTTP 403."""
    return {
        "error": {
            "code": "AuthorizationFailed",
            "message": f"The client 'auditor@example.com' with object id "
            f"'11111111-2222-3333-4444-555555555555' does not have authorization to perform "
            f"action '{action}' over scope '{scope}' or the scope is invalid. If access was "
            f"recently granted, please refresh your credentials.",
        }
    }


class FakeAzure:
    """State the tests fill in, plus the server that answers from it."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context
        self._server: ThreadingHTTPServer | None = None
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeAzure:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = self._ssl.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"https://127.0.0.1:{port}"

    def reset(self) -> None:
        self.token = TOKEN
        self.tenant = TENANT
        self.token_lifetime = 3600
        """``expires_in`` of issued tokens; under 300 s azure-identity fetches one per call."""
        self.issued: dict[str, float] = {}
        """Issued token -> expiry (epoch seconds)."""
        self.plan: FaultPlan | None = None
        self.fault_delay = 1.0
        """How long a ``timeout`` fault withholds its answer (above the client's timeout)."""
        self._issued_count = itertools.count()
        self.page_size = 2
        self.subscriptions: list[dict[str, Any]] = []
        self.vms: dict[str, list[dict[str, Any]]] = {}
        self.scale_sets: dict[str, list[dict[str, Any]]] = {}
        self.scale_set_vms: dict[str, list[dict[str, Any]]] = {}
        self.skus: list[dict[str, Any]] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.activity: dict[str, list[dict[str, Any]]] = {}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.partial: dict[str, dict[str, Any]] = {}
        self.blobs: dict[tuple[str, str], dict[str, bytes]] = {}
        self.denied: dict[str, dict[str, Any]] = {}
        self.failing: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.bearers: list[str] = []
        """The bearer token of each request in ``requests`` (same order)."""
        self.bodies: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    # -- helpers for tests -------------------------------------------------------------------
    def deny(self, path_prefix: str, body: dict[str, Any]) -> None:
        """Answer 403 with ``body`` for every path starting with ``path_prefix``."""
        self.denied[path_prefix.lower()] = body

    def table(
        self, workspace: str, name: str, columns: list[dict[str, str]], rows: list[list[Any]]
    ) -> None:
        self.tables.setdefault(workspace, {})[name] = {"columns": columns, "rows": rows}

    def calls(self, fragment: str) -> list[str]:
        """Request paths (with query) containing ``fragment`` (case-insensitive)."""
        return [p for _, p in self.requests if fragment.lower() in p.lower()]

    def issue(self) -> str:
        """A new access token valid for ``token_lifetime`` seconds."""
        with self.lock:
            token = f"issued-{next(self._issued_count)}-{time.monotonic_ns() % 10**9}"
            self.issued[token] = time.time() + self.token_lifetime
        return token

    def expire(self, token: str) -> None:
        """From now on ``token`` (if the fake issued it) is expired."""
        with self.lock:
            if token in self.issued:
                self.issued[token] = 0.0

    def valid(self, token: str) -> bool:
        """The static token, or an issued one that has not expired."""
        with self.lock:
            return token == self.token or self.issued.get(token, 0.0) > time.time()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per response: no Nagle / delayed-ACK stall on keep-alive
    owner: FakeAzure
    fault: str | None = None
    """A fault the route itself makes from the real answer (``truncated``, ``missing``)."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing ----------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-ms-request-id", "fake-request")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.fault == "truncated" and status < 300 and body:
            self.wfile.write(body[: len(body) // 2])  # then hang up, short of Content-Length
            fakefaults.drop(self, abort=False)
            return
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

    def _page(self, items: list[Any], path: str, query: dict[str, list[str]]) -> None:
        size = self.owner.page_size
        offset = int(query.get("$skiptoken", ["0"])[0])
        body: dict[str, Any] = {"value": items[offset : offset + size]}
        if offset + size < len(items):
            params = {k: v[0] for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = str(offset + size)
            body["nextLink"] = f"{self.owner.url}{path}?{urlencode(params)}"
        self._json(200, body)

    def _authorized(self, route: str) -> bool:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.owner.valid(token):
            return True
        if token in self.owner.issued:
            fakefaults.produce(self, "expired", route, serial=0)
            return False
        self._json(
            401,
            {
                "error": {
                    "code": "InvalidAuthenticationToken",
                    "message": "The access token is invalid.",
                }
            },
        )
        return False

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self.fault = None
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        lower = path.lower()
        if "/oauth2/" in lower or "/.well-known/" in lower:
            return self._entra(method, path, body)
        with self.owner.lock:
            self.owner.requests.append((method, self.path))
            self.owner.bearers.append((self.headers.get("Authorization") or "")[7:])
            if method == "POST" and body:
                self.owner.bodies.append((self.path, json.loads(body)))
        route = fakefaults.route_of(method, lower)
        plan = self.owner.plan
        if plan is not None:
            kind = fakefaults.draw(plan, method=method, raw_path=self.path, body=body, route=route)
            if kind in ("truncated", "missing") and route == "blob":
                self.fault = kind  # made below from the real blob
            elif kind is not None:
                return fakefaults.produce(self, kind, route, serial=len(self.owner.requests))
        if not self._authorized(route):
            return
        for prefix, denial in self.owner.denied.items():
            if lower.startswith(prefix):
                self._json(403, denial)
                return
        for prefix in list(self.owner.failing):
            if lower.startswith(prefix) and self.owner.failing[prefix] > 0:
                self.owner.failing[prefix] -= 1
                self._json(503, {"error": {"code": "ServerBusy", "message": "try later"}})
                return
        if lower.startswith("/v1/workspaces/") and method == "POST":
            self._logs(lower.split("/")[3], json.loads(body or b"{}"))
        elif lower.startswith("/subscriptions"):
            self._arm(path, lower, query)
        else:
            self._blob(path, query)

    # -- Entra ID ----------------------------------------------------------------------------
    def _entra(self, method: str, path: str, body: bytes) -> None:
        """OpenID metadata and the client-credentials token endpoint of ``/{tenant}``."""
        tenant = path.strip("/").split("/")[0]
        base = f"{self.owner.url}/{tenant}"
        if method == "GET" and path.endswith("/openid-configuration"):
            return self._json(
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                },
            )
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        known = (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, CLIENT_SECRET)
        if not path.endswith("/oauth2/v2.0/token") or tenant != self.owner.tenant or not known:
            return self._json(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
            )
        lifetime = self.owner.token_lifetime
        return self._json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": self.owner.issue(),
            },
        )

    # -- ARM ---------------------------------------------------------------------------------
    def _arm(self, path: str, lower: str, query: dict[str, list[str]]) -> None:
        o = self.owner
        seg = lower.strip("/").split("/")
        if lower.rstrip("/") == "/subscriptions":
            return self._page(o.subscriptions, path, query)
        sub = seg[1]
        tail = "/".join(seg[2:])
        if tail == "providers/microsoft.compute/virtualmachines":
            return self._page(o.vms.get(sub, []), path, query)
        if tail == "providers/microsoft.compute/virtualmachinescalesets":
            return self._page(o.scale_sets.get(sub, []), path, query)
        if tail == "providers/microsoft.compute/skus":
            found = re.search(r"location eq '([^']+)'", query.get("$filter", [""])[0])
            wanted = found.group(1).lower() if found else None
            items = [
                s
                for s in o.skus
                if wanted is None or wanted in [x.lower() for x in s.get("locations", [])]
            ]
            return self._page(items, path, query)
        if tail == "providers/microsoft.insights/eventtypes/management/values":
            return self._page(self._activity(sub, query.get("$filter", [""])[0]), path, query)
        if lower.endswith("/virtualmachines") and "/virtualmachinescalesets/" in lower:
            return self._page(
                o.scale_set_vms.get(lower.rsplit("/virtualmachines", 1)[0], []), path, query
            )
        resource = o.resources.get(lower.rstrip("/"))
        if resource is None:
            return self._json(
                404, {"error": {"code": "ResourceNotFound", "message": f"{path} was not found."}}
            )
        return self._json(200, resource)

    def _activity(self, sub: str, flt: str) -> list[dict[str, Any]]:
        ge = re.search(r"eventTimestamp ge '([^']+)'", flt)
        le = re.search(r"eventTimestamp le '([^']+)'", flt)
        provider = re.search(r"resourceProvider eq '([^']+)'", flt)
        if not ge:  # the real API refuses a filter without a start time
            return []
        start = datetime.fromisoformat(ge.group(1))
        end = datetime.fromisoformat(le.group(1)) if le else None
        out = []
        for event in self.owner.activity.get(sub, []):
            when = datetime.fromisoformat(event["eventTimestamp"])
            rp = (event.get("resourceProviderName") or {}).get("value", "")
            if when < start or (end is not None and when > end):
                continue
            if provider and rp.lower() != provider.group(1).lower():
                continue
            out.append(event)
        return out

    # -- Log Analytics -----------------------------------------------------------------------
    def _logs(self, workspace: str, request: dict[str, Any]) -> None:
        query = request.get("query", "")
        tables = self.owner.tables.get(workspace)
        if tables is None:
            return self._json(
                404,
                {
                    "error": {
                        "code": "WorkspaceNotFoundError",
                        "message": f"workspace {workspace} not found",
                    }
                },
            )
        name = next((t for t in tables if t in query), None)
        if name is None:
            return self._json(
                400,
                {
                    "error": {
                        "code": "BadArgumentError",
                        "message": "The request had some invalid properties",
                        "innererror": {
                            "code": "SemanticError",
                            "message": "table could not be resolved",
                        },
                    }
                },
            )
        table = tables[name]
        start, _, end = str(request.get("timespan") or "/").partition("/")
        columns = [c["name"] for c in table["columns"]]
        rows = []
        for row in table["rows"]:
            try:
                when = datetime.fromisoformat(dict(zip(columns, row, strict=True))["TimeGenerated"])
            except ValueError:  # a malformed value is returned as-is, like the service does
                rows.append(row)
                continue
            if start and when < datetime.fromisoformat(start):
                continue
            if end and when > datetime.fromisoformat(end):
                continue
            rows.append(row)
        body: dict[str, Any] = {
            "tables": [{"name": "PrimaryResult", "columns": table["columns"], "rows": rows}]
        }
        if name in self.owner.partial:
            body["error"] = self.owner.partial[name]
        return self._json(200, body)

    # -- Blob storage ------------------------------------------------------------------------
    def _blob(self, path: str, query: dict[str, list[str]]) -> None:
        account, _, rest = path.strip("/").partition("/")
        container, _, name = rest.partition("/")
        blobs = self.owner.blobs.get((account, container))
        if blobs is None:
            return self._send(
                404,
                b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ContainerNotFound</Code>'
                b"<Message>The specified container does not exist.</Message></Error>",
                "application/xml",
                {"x-ms-error-code": "ContainerNotFound"},
            )
        if not name:
            return self._list(account, container, blobs, query)
        data = blobs.get(name)
        if data is None or self.fault == "missing":
            body = (
                b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code>'
                b"<Message>The specified blob does not exist.</Message></Error>"
            )
            return self._send(404, body, "application/xml", {"x-ms-error-code": "BlobNotFound"})
        headers = {
            "Last-Modified": _LAST_MODIFIED,
            "ETag": '"0x1"',
            "x-ms-blob-type": "BlockBlob",
            "Accept-Ranges": "bytes",
            "x-ms-version": "2025-01-05",
        }
        wanted = self.headers.get("x-ms-range") or self.headers.get("Range")
        if wanted:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            lo, hi = int(first), min(int(last or len(data) - 1), len(data) - 1)
            headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
            return self._send(206, data[lo : hi + 1], "application/octet-stream", headers)
        return self._send(200, data, "application/octet-stream", headers)

    def _list(
        self, account: str, container: str, blobs: dict[str, bytes], query: dict[str, list[str]]
    ) -> None:
        prefix = query.get("prefix", [""])[0]
        marker = query.get("marker", [""])[0]
        names = sorted(n for n in blobs if n.startswith(prefix) and n > marker)
        page, more = names[: self.owner.page_size], len(names) > self.owner.page_size
        items = "".join(
            f"<Blob><Name>{escape(n)}</Name><Properties><Last-Modified>{_LAST_MODIFIED}</Last-Modified>"
            f"<Etag>0x1</Etag><Content-Length>{len(blobs[n])}</Content-Length>"
            f"<Content-Type>application/json</Content-Type><BlobType>BlockBlob</BlobType></Properties></Blob>"
            for n in page
        )
        next_marker = escape(page[-1]) if more else ""
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults '
            f'ServiceEndpoint="{self.owner.url}/{quote(account)}/" '
            f'ContainerName="{escape(container)}">'
            f"<Prefix>{escape(prefix)}</Prefix><Blobs>{items}</Blobs><NextMarker>{next_marker}</NextMarker>"
            f"</EnumerationResults>"
        )
        return self._send(200, xml.encode(), "application/xml", {"x-ms-version": "2025-01-05"})
