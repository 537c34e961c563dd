"""Faults the fake Azure server produces on the wire when its ``FaultPlan`` draws one.

Each kind is what the client really meets, in the shape of the service that answers:

- ``throttle``: ARM / Log Analytics answer 429 with ``Retry-After: 0`` and their error body;
  Blob storage throttles with 503 ``ServerBusy`` (it never sends 429).
- ``server-error``: 500 or 503 (alternating) with the service's error body.
- ``timeout``: no answer until ``fault_delay`` seconds have passed (longer than the client's
  read timeout), then the connection is closed.
- ``reset``: the connection is aborted (TCP RST) without an answer.
- ``expired``: the presented token is expired from now on (if the fake issued it) and the call
  answers 401 with the service's expired-token body and ``WWW-Authenticate`` challenge.
- ``truncated`` (blob reads): the body stops half-way, short of its ``Content-Length``.
- ``missing`` (blob reads): 404 ``BlobNotFound`` for a blob that a listing just returned.

The request identity handed to the plan is method + path with query + body.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.reliability.faultlab import FaultPlan

__all__ = ["ROUTE_KINDS", "draw", "drop", "produce", "route_of"]

_TRANSIENT = ("throttle", "server-error", "timeout", "reset", "expired")
ROUTE_KINDS: dict[str, tuple[str, ...]] = {
    "arm": _TRANSIENT,
    "logs": _TRANSIENT,
    "blob-list": _TRANSIENT,
    "blob": (*_TRANSIENT, "truncated", "missing"),
}
"""What each route can produce; a plan's other kinds are never drawn there."""


def route_of(method: str, lower_path: str) -> str:
    """``arm``, ``logs``, ``blob-list`` (a container listing) or ``blob`` (one blob)."""
    if lower_path.startswith("/v1/workspaces/") and method == "POST":
        return "logs"
    if lower_path.startswith("/subscriptions"):
        return "arm"
    _, _, name = lower_path.strip("/").partition("/")[2].partition("/")
    return "blob" if name else "blob-list"


def draw(plan: FaultPlan, *, method: str, raw_path: str, body: bytes, route: str) -> str | None:
    """The plan's fault for this call (``None``: answer normally)."""
    identity = f"{method} {raw_path} {body.decode('utf-8', 'replace')}"
    if plan.permanent_after is not None:
        return plan.draw(identity)
    kinds = [k for k in plan.kinds if k in ROUTE_KINDS[route]]
    return plan.draw(identity, kinds) if kinds else None


def drop(handler: Any, *, abort: bool) -> None:
    """End the connection after this request: ``abort`` sends a TCP RST instead of a FIN."""
    handler.close_connection = True
    if abort:
        linger = struct.pack("ii", 1, 0)
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)


def _xml_error(code: str, message: str, detail: str = "") -> bytes:
    extra = f"<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>" if detail else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message>{extra}</Error>"
    ).encode()


def _json_error(code: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


def _expired(route: str, tenant: str) -> tuple[bytes, str, dict[str, str]]:
    now = datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S")
    if route.startswith("blob"):
        body = _xml_error(
            "InvalidAuthenticationInfo",
            "Server failed to authenticate the request. Please refer to the information in "
            "the www-authenticate header.",
            "Lifetime validation failed. The token is expired.",
        )
        challenge = (
            f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/"
            "authorize resource_id=https://storage.azure.com"
        )
        return (
            body,
            "application/xml",
            {
                "WWW-Authenticate": challenge,
                "x-ms-error-code": "InvalidAuthenticationInfo",
            },
        )
    challenge = (
        f'Bearer authorization_uri="https://login.microsoftonline.com/{tenant}", '
        'error="invalid_token", error_description="The access token has expired."'
    )
    if route == "logs":
        body = _json_error(
            "InvalidTokenError",
            "The provided authentication is not valid for this resource",
            innererror={"code": "TokenExpiredError", "message": "The access token is expired."},
        )
    else:
        body = _json_error(
            "ExpiredAuthenticationToken",
            f"The access token expiry UTC time '{now}' is earlier than current UTC time '{now}'.",
        )
    return body, "application/json; charset=utf-8", {"WWW-Authenticate": challenge}


def produce(handler: Any, kind: str, route: str, *, serial: int) -> None:
    """Answer the current request with ``kind`` (not ``truncated`` / ``missing``: the blob
    route makes those from the real blob). ``serial`` alternates 500 and 503."""
    owner = handler.owner
    if kind == "timeout":
        time.sleep(owner.fault_delay)
        drop(handler, abort=False)
        return
    if kind == "reset" or (kind in ("truncated", "missing") and route != "blob"):
        drop(handler, abort=True)
        return
    if kind == "expired":
        owner.expire(handler.headers.get("Authorization", "").removeprefix("Bearer "))
        body, ctype, headers = _expired(route, owner.tenant)
        handler._send(401, body, ctype, headers)
        return
    blob = route.startswith("blob")
    if kind == "throttle" and blob:
        status, code, message = 503, "ServerBusy", "Egress is over the account limit."
    elif kind == "throttle":
        status, code = 429, "TooManyRequests"
        message = (
            "The request is being throttled as the limit has been reached for operation "
            "type - Read_ObservationWindow_00:05:00."
        )
        if route == "logs":
            code, message = "ThrottledError", "Your request was throttled; too many requests."
    elif serial % 2:
        status, code, message = 503, "ServiceUnavailable", "The service is temporarily unavailable."
        code = "ServerBusy" if blob else code
    else:
        status, code, message = 500, "InternalServerError", "Encountered an internal error."
        code = "InternalError" if blob else code
    headers = {"Retry-After": "0"} if kind == "throttle" and not blob else {}
    if blob:
        headers["x-ms-error-code"] = code
        handler._send(status, _xml_error(code, message), "application/xml", headers)
    else:
        handler._send(
            status, _json_error(code, message), "application/json; charset=utf-8", headers
        )
