"""Fake AWS answers through botocore's real parser and retry handler (before-send seam).

moto implements EC2 but not CloudTrail LookupEvents or SSM DescribeSessions; this hook answers
chosen operations (and injects throttling or AccessDenied) for one boto3 client (``FakeAws``)
or, like moto itself, for every client of every botocore session created while it is
installed (``GlobalFake``: reaches the clients a source builds itself, assumed-role ones
included). Answered requests are pointed at a non-AWS URL so moto's own stub ignores them.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from tests.reliability.faultlab import FaultPlan

__all__ = [
    "Call",
    "FakeAws",
    "GlobalFake",
    "describe_sessions_pages",
    "error_response",
    "lookup_events_pages",
]

Handler = Callable[[dict[str, Any]], Any]  # a JSON-able dict, or XML text

# (status, code) of a throttling / server error answer in each wire protocol.
_THROTTLE = {
    "ec2": (503, "RequestLimitExceeded"),
    "rest-xml": (503, "SlowDown"),
    "query": (400, "Throttling"),
    "json": (400, "ThrottlingException"),
}
_SERVER_ERROR = {
    "ec2": (500, "InternalError"),
    "rest-xml": (500, "InternalError"),
    "query": (500, "InternalFailure"),
    "json": (500, "InternalFailure"),
}
_EXPIRED = {"json": "ExpiredTokenException"}  # the others answer ExpiredToken


class _Raw(io.BytesIO):
    def stream(self, **_kw: Any) -> Iterator[bytes]:
        while chunk := self.read(65536):
            yield chunk


def error_response(protocol: str, status: int, code: str, message: str) -> AWSResponse:
    """An AWS error reply in the wire shape of ``protocol`` (ec2, query, rest-xml, json)."""
    if protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            "</Error></Errors><RequestID>r1</RequestID></Response>"
        ).encode()
        return AWSResponse("http://fakeaws.invalid/", status, {}, _Raw(body))
    if protocol == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>r1</RequestId>"
            "</ErrorResponse>"
        ).encode()
        return AWSResponse("http://fakeaws.invalid/", status, {}, _Raw(body))
    if protocol == "rest-xml":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>r1</RequestId></Error>"
        ).encode()
        return AWSResponse("http://fakeaws.invalid/", status, {}, _Raw(body))
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    return AWSResponse("http://fakeaws.invalid/", status, headers, _Raw(body))


class FakeAws:
    """Answers operations of one client: ``on(op, fn)``, ``throttle(op)``, ``fail(op, code)``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.handlers: dict[str, Handler] = {}
        self.errors: dict[str, list[tuple[int, str, str]]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register_first("before-send", self._before_send)

    @property
    def protocol(self) -> str:
        return str(self.client.meta.service_model.protocol)

    def on(self, operation: str, handler: Handler) -> None:
        self.handlers[operation] = handler

    def fail(
        self, operation: str, code: str, message: str, *, status: int = 400, times: int = 1
    ) -> None:
        self.errors.setdefault(operation, []).extend([(status, code, message)] * times)

    def throttle(self, operation: str, *, times: int = 1) -> None:
        if self.protocol == "ec2":
            self.fail(
                operation,
                "RequestLimitExceeded",
                "Request limit exceeded.",
                status=503,
                times=times,
            )
        else:
            self.fail(operation, "ThrottlingException", "Rate exceeded", times=times)

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        return [params for op, params in self.calls if op == operation]

    def _error(self, status: int, code: str, message: str) -> AWSResponse:
        return error_response(self.protocol, status, code, message)

    def _before_send(self, request: Any, event_name: str = "", **_kw: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]  # "before-send.ec2.DescribeRegions"
        params: dict[str, Any] = {}
        if request.body and self.protocol == "json":
            params = json.loads(request.body)
        elif request.body and self.protocol in ("query", "ec2"):
            body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
            params = dict(parse_qsl(body))
        self.calls.append((operation, params))
        queued = self.errors.get(operation)
        if not queued and operation not in self.handlers:
            return None  # moto (in-process) answers
        request.url = "http://fakeaws.invalid/"
        if queued:
            return self._error(*queued.pop(0))
        answer = self.handlers[operation](params)
        if isinstance(answer, str):  # an XML body for query/ec2 protocol services
            return AWSResponse(
                request.url, 200, {"Content-Type": "text/xml"}, _Raw(answer.encode())
            )
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, 200, headers, _Raw(json.dumps(answer).encode()))


def _epoch(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["eventTime"]).timestamp()


def lookup_events_pages(records: list[dict[str, Any]], *, page_size: int = 2) -> Handler:
    """A LookupEvents handler: filters by EventSource and time, pages with NextToken."""

    def handle(params: dict[str, Any]) -> dict[str, Any]:
        source = params["LookupAttributes"][0]["AttributeValue"]
        start, end = float(params["StartTime"]), float(params["EndTime"])
        matching = [
            r for r in records if r.get("eventSource") == source and start <= _epoch(r) <= end
        ]
        offset = int(params.get("NextToken") or 0)
        page = matching[offset : offset + page_size]
        body: dict[str, Any] = {
            "Events": [
                {
                    "EventId": r.get("eventID"),
                    "EventName": r.get("eventName"),
                    "EventSource": source,
                    "EventTime": _epoch(r),
                    "CloudTrailEvent": r["_raw"] if "_raw" in r else json.dumps(r),
                }
                for r in page
            ]
        }
        if offset + page_size < len(matching):
            body["NextToken"] = str(offset + page_size)
        return body

    return handle


# ----------------------------------------------------------------------------- every client

_WIRE_KINDS = frozenset({"throttle", "server-error", "timeout", "reset"})
_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/([a-z0-9-]+)/")
_PROTOCOLS = {"ec2": "ec2", "sts": "query", "s3": "rest-xml"}  # the rest speak JSON


@dataclass(frozen=True)
class Call:
    """One request on the wire: operation, signing region and access key, S3 key."""

    service: str
    operation: str
    region: str | None
    access_key: str | None
    path: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Rule:
    operation: str
    when: Callable[[Call], bool]
    status: int
    code: str
    message: str


class GlobalFake:
    """A before-send handler on every botocore session created while installed (the way
    moto hooks in): records every call, answers chosen operations, denies chosen calls."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.handlers: dict[str, Handler] = {}
        self.rules: list[_Rule] = []
        self.plan: FaultPlan | None = None
        self.object_bytes: Callable[[str], bytes] | None = None
        self.account_of: Callable[[str], str] | None = None
        self._by_call: set[str] = set()
        self._expired: set[str] = set()
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> GlobalFake:
        spec = ("before-send", self._before_send, botocore.handlers.REGISTER_FIRST)
        monkeypatch.setattr(
            botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, spec]
        )
        return self

    def on(self, operation: str, handler: Handler) -> None:
        self.handlers[operation] = handler

    def on_call(self, operation: str, handler: Callable[[Call], Any]) -> None:
        """Answer ``operation`` from the whole call (region, access key, ...)."""
        self.handlers[operation] = handler
        self._by_call.add(operation)

    def deny(
        self,
        operation: str,
        *,
        when: Callable[[Call], bool] = lambda _call: True,
        code: str = "AccessDenied",
        message: str = "not authorized",
        status: int = 403,
    ) -> None:
        self.rules.append(_Rule(operation, when, status, code, message))

    def calls_to(self, operation: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.operation == operation]

    def chaos(
        self,
        plan: FaultPlan | None,
        object_bytes: Callable[[str], bytes] | None = None,
        account_of: Callable[[str], str] | None = None,
    ) -> None:
        """Fail calls as ``plan`` draws (``None`` stops). Besides the transient kinds: GetObject
        can answer ``truncated`` (a body shorter than its Content-Length; ``object_bytes``
        gives an object's bytes by URL path) or ``missing`` (NoSuchKey for a listed key), and
        a call signed with assumed-role credentials (ASIA...) ``expired`` (ExpiredToken).
        A call's identity (what ``plan.matches`` sees) starts with the signing account
        (``account_of(access key)``) and region, then operation, path and parameters."""
        self.plan, self.object_bytes, self.account_of = plan, object_bytes, account_of

    def _fault(
        self, plan: FaultPlan, call: Call, request: Any, protocol: str
    ) -> AWSResponse | None:
        params = json.dumps(call.params, sort_keys=True, default=str)
        account = self.account_of(call.access_key or "") if self.account_of else "-"
        where = urlsplit(request.url)  # the query string too: S3 lists by ?prefix=
        identity = (
            f"{account} {call.region} {call.service}.{call.operation} {unquote(where.path)}"
            f"?{where.query} {params}"
        )
        kinds = [k for k in plan.kinds if k in _WIRE_KINDS]
        if call.operation == "GetObject" and self.object_bytes is not None:
            kinds += [k for k in ("truncated", "missing") if k in plan.kinds]
        if (call.access_key or "").startswith("ASIA") and "expired" in plan.kinds:
            with self._lock:
                if identity not in self._expired:
                    kinds.append("expired")
        kind = plan.draw(identity, kinds)
        with self._lock:
            if kind == "expired":
                self._expired.add(identity)
            elif kind is None:
                self._expired.discard(identity)
        if kind is None:
            return None
        url = request.url
        request.url = "http://fakeaws.invalid/"
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url=url, error="Read timed out (injected)")
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=url)
        if kind == "truncated":
            assert self.object_bytes is not None
            data = self.object_bytes(call.path)
            headers = {"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"}
            return AWSResponse(request.url, 200, headers, _Raw(data[: len(data) // 2]))
        if kind == "missing":
            return error_response(protocol, 404, "NoSuchKey", "The specified key does not exist.")
        if kind == "expired":
            code = _EXPIRED.get(protocol, "ExpiredToken")
            return error_response(
                protocol, 400, code, "The security token included in the request is expired"
            )
        status, code = (_THROTTLE if kind == "throttle" else _SERVER_ERROR)[protocol]
        return error_response(protocol, status, code, f"injected {kind}")

    def _before_send(self, request: Any, event_name: str = "", **_kw: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        auth = request.headers.get("Authorization") or b""
        match = _CREDENTIAL.search(auth.decode() if isinstance(auth, bytes) else str(auth))
        protocol = _PROTOCOLS.get(service, "json")
        params: dict[str, Any] = {}
        if request.body and protocol == "json":
            params = json.loads(request.body)
        elif request.body and protocol in ("query", "ec2"):
            body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
            params = dict(parse_qsl(body))
        call = Call(
            service=service,
            operation=operation,
            region=match.group(2) if match else None,
            access_key=match.group(1) if match else None,
            path=unquote(urlsplit(request.url).path),
            params=params,
        )
        with self._lock:
            self.calls.append(call)
        if self.plan is not None:
            faulted = self._fault(self.plan, call, request, protocol)
            if faulted is not None:
                return faulted
        for rule in self.rules:
            if rule.operation == operation and rule.when(call):
                request.url = "http://fakeaws.invalid/"
                return error_response(protocol, rule.status, rule.code, rule.message)
        if operation not in self.handlers:
            return None
        request.url = "http://fakeaws.invalid/"
        handler = self.handlers[operation]
        answer = handler(call) if operation in self._by_call else handler(params)
        if isinstance(answer, str):  # an XML body for query/ec2 protocol services
            return AWSResponse(
                request.url, 200, {"Content-Type": "text/xml"}, _Raw(answer.encode())
            )
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, 200, headers, _Raw(json.dumps(answer).encode()))


def describe_sessions_pages(history: list[dict[str, Any]], *, page_size: int = 2) -> Handler:
    """An SSM DescribeSessions handler over ``history`` ({SessionId, Target, StartDate,
    EndDate} with datetimes): honours State=History, the Target filter and NextToken."""

    def handle(params: dict[str, Any]) -> dict[str, Any]:
        filters = {f["key"]: f["value"] for f in params.get("Filters", [])}
        items = [
            h
            for h in history
            if params.get("State") == "History" and filters.get("Target") in (None, h["Target"])
        ]
        offset = int(params.get("NextToken") or 0)
        page = items[offset : offset + page_size]
        body: dict[str, Any] = {
            "Sessions": [
                {
                    "SessionId": h["SessionId"],
                    "Target": h["Target"],
                    "Status": "Terminated",
                    "StartDate": h["StartDate"].timestamp(),
                    "EndDate": h["EndDate"].timestamp(),
                    "Owner": h.get("Owner", "arn:aws:iam::123456789012:user/someone"),
                }
                for h in page
            ]
        }
        if offset + page_size < len(items):
            body["NextToken"] = str(offset + page_size)
        return body

    return handle
