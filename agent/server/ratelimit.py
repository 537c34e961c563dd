"""Rate limiting of authentication failures, per client address.

After ``limit`` failed authentications (a presented bearer token that is malformed, unknown,
wrong or revoked; a failed console login) from one client within ``window`` seconds, every
request from that client gets 429 with ``Retry-After`` for ``lockout`` seconds, even one with
a valid token: answering a good token differently would let a locked-out guesser still tell
right from wrong. Requests without credentials, 403s and successes do not count;
``/healthz`` and ``/readyz`` are never limited.

The client is the socket peer, or, when the peer is a trusted proxy, the right-most
``X-Forwarded-For`` hop that is not a trusted proxy. IPv6 clients are keyed by their /64 (one
host usually owns a whole /64). Memory is bounded: at most ``max_clients`` addresses are
tracked, each with at most ``limit`` timestamps; when full, the least recently failing address
is forgotten first.
"""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agent.server.metrics import ServerMetrics
from agent.server.middleware import ASGIApp, Receive, Scope, Send

__all__ = [
    "EXEMPT_PATHS",
    "AuthFailureLimiter",
    "AuthGuard",
    "AuthRateLimitMiddleware",
    "client_address",
    "client_key",
    "parse_networks",
    "record_auth_failure",
]

log = structlog.get_logger(__name__)

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
SCOPE_CLIENT_KEY = "auth_client"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Client:
    failures: deque[float]
    locked_until: float | None = None


class AuthFailureLimiter:
    """Sliding-window failure counts and lockouts per client key (thread-safe, bounded).

    ``limit`` 0 disables it. ``evictions`` counts clients forgotten while still relevant (the
    table was full of recent failures: an address-rotating flood); ``on_evict`` is told each."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        lockout: float,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.max_clients = max(1, max_clients)
        self.clock = clock
        self.evictions = 0
        self.on_evict = on_evict
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, key: str) -> float | None:
        """Seconds left of ``key``'s lockout, or ``None`` when it may proceed."""
        if self.limit <= 0:
            return None
        now = self.clock()
        with self._lock:
            entry = self._clients.get(key)
            if entry is None or entry.locked_until is None:
                return None
            if entry.locked_until > now:
                return entry.locked_until - now
            del self._clients[key]  # lockout over: start afresh
            return None

    def failure(self, key: str) -> int | None:
        """Record one failure; the failure count when this one starts a lockout, else ``None``."""
        if self.limit <= 0:
            return None
        now = self.clock()
        with self._lock:
            entry = self._clients.get(key)
            if entry is None:
                self._make_room(now)
                entry = self._clients[key] = _Client(failures=deque(maxlen=self.limit))
            else:
                self._clients.move_to_end(key)
            if entry.locked_until is not None:
                if entry.locked_until > now:
                    return None  # already locked (a request that raced the lockout)
                entry.failures.clear()
                entry.locked_until = None
            entry.failures.append(now)
            while entry.failures and entry.failures[0] <= now - self.window:
                entry.failures.popleft()
            if len(entry.failures) < self.limit:
                return None
            entry.locked_until = now + self.lockout
            return len(entry.failures)

    def _make_room(self, now: float) -> None:
        while self._clients and self._stale(next(iter(self._clients.values())), now):
            self._clients.popitem(last=False)
        while len(self._clients) >= self.max_clients:
            key, oldest = next(iter(self._clients.items()))
            del self._clients[key]
            if not self._stale(oldest, now):
                self.evictions += 1
                if self.on_evict is not None:
                    self.on_evict()

    def _stale(self, entry: _Client, now: float) -> bool:
        if entry.locked_until is not None:
            return entry.locked_until <= now
        return not entry.failures or entry.failures[-1] <= now - self.window


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs (or single addresses) as networks; raises ``ValueError`` on a bad one."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:80`` or ``fe80::1%eth0``."""
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: str, proxies: Sequence[IpNetwork]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in proxies)


def client_address(scope: Scope, proxies: Sequence[IpNetwork] = ()) -> str:
    """The client of a request: the peer, or behind trusted proxies the first untrusted hop."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-for"]
    hops = [h.strip() for h in ",".join(values).split(",") if h.strip()]
    for hop in reversed(hops):
        if _ip(hop) is None:
            return peer  # a proxy we trust wrote garbage: do not let it name the client
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def client_key(address: str) -> str:
    """The limiter key of an address: IPv4 as is, IPv6 by its /64, anything else verbatim."""
    ip = _ip(address)
    if ip is None:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class AuthGuard:
    """The limiter wired to settings, metrics and the log; one per app."""

    def __init__(
        self,
        limiter: AuthFailureLimiter,
        *,
        proxies: Sequence[IpNetwork] = (),
        metrics: Callable[[], ServerMetrics | None] = lambda: None,
    ) -> None:
        self.limiter = limiter
        self.proxies = tuple(proxies)
        self._metrics = metrics

    def client(self, scope: Scope) -> str:
        """The client address of ``scope`` (cached on the request state by the middleware)."""
        state = scope.get("state")
        if isinstance(state, dict) and isinstance(state.get(SCOPE_CLIENT_KEY), str):
            return str(state[SCOPE_CLIENT_KEY])
        return client_address(scope, self.proxies)

    def refused(self, scope: Scope) -> float | None:
        """Seconds to wait when the request's client is locked out (counted), else ``None``."""
        wait = self.limiter.retry_after(client_key(self.client(scope)))
        metrics = self._metrics()
        if wait is not None and metrics is not None:
            metrics.auth_rate_limited.inc()
        return wait

    def failed(self, scope: Scope, *, reason: str) -> None:
        """Count one failed authentication; log ``auth_rate_limited`` when it locks the client."""
        address = self.client(scope)
        metrics = self._metrics()
        if metrics is not None:
            metrics.auth_failures.labels(reason).inc()
        failures = self.limiter.failure(client_key(address))
        if failures is None:
            return
        if metrics is not None:
            metrics.auth_lockouts.inc()
        log.warning(
            "auth_rate_limited",
            client=address,
            client_key=client_key(address),
            failures=failures,
            window_seconds=self.limiter.window,
            retry_after_seconds=self.limiter.lockout,
            path=scope.get("path"),
            reason=reason,
        )


def record_auth_failure(app_state: Any, scope: Scope, *, reason: str) -> None:
    """Count a failed authentication of this request (no-op on apps without a guard)."""
    guard = getattr(app_state, "auth_guard", None)
    if isinstance(guard, AuthGuard):
        guard.failed(scope, reason=reason)


class AuthRateLimitMiddleware:
    """429 + ``Retry-After`` for locked-out clients, before any route or auth runs."""

    def __init__(self, app: ASGIApp, *, guard: Callable[[], AuthGuard | None]) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.guard()
        if scope["type"] != "http" or guard is None or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state[SCOPE_CLIENT_KEY] = client_address(scope, guard.proxies)
        wait = guard.refused(scope)
        if wait is None:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        body = json.dumps(
            {
                "detail": "too many failed authentications from this address",
                "code": "auth_rate_limited",
                "hint": f"retry after {seconds} s with a valid token",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(seconds).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
