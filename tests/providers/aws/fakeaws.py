"""Fake AWS answers through botocore's real parser and retry handler (before-send seam).

moto implements EC2 but not CloudTrail LookupEvents; this hook answers chosen operations
(and injects throttling or AccessDenied) for one boto3 client. Answered requests are pointed
at a non-AWS URL so moto's own before-send stub ignores them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from botocore.awsrequest import AWSResponse

__all__ = ["FakeAws", "lookup_events_pages"]

Handler = Callable[[dict[str, Any]], Any]  # a JSON-able dict, or XML text


class _Raw(io.BytesIO):
    def stream(self, **_kw: Any) -> Iterator[bytes]:
        while chunk := self.read(65536):
            yield chunk


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
        if self.protocol == "ec2":
            body = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
                "</Error></Errors><RequestID>r1</RequestID></Response>"
            ).encode()
            return AWSResponse("http://fakeaws.invalid/", status, {}, _Raw(body))
        if self.protocol == "query":
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error><RequestId>r1</RequestId>"
                "</ErrorResponse>"
            ).encode()
            return AWSResponse("http://fakeaws.invalid/", status, {}, _Raw(body))
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        return AWSResponse("http://fakeaws.invalid/", status, headers, _Raw(body))

    def _before_send(self, request: Any, event_name: str = "", **_kw: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]  # "before-send.ec2.DescribeRegions"
        params = json.loads(request.body) if request.body and self.protocol == "json" else {}
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
