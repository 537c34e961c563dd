"""Unwrap the shapes Kubernetes audit events arrive in (pure).

Raw ``audit.k8s.io/v1`` Events (log backend, JSON lines), ``EventList`` (webhook backend), EKS
CloudWatch exports (``message`` / ``@message`` / subscription ``logEvents``), AKS diagnostic
records (``properties.log`` as string or object, Event Hub ``records``) and GKE Cloud Audit
``LogEntry`` with a ``protoPayload``. Each input record yields zero or more :class:`RawEvent`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from agent.errors import RecordError

__all__ = ["RawEvent", "Unwrapped", "parse_time", "unwrap"]

MAX_DEPTH = 4


@dataclass(frozen=True)
class RawEvent:
    """One audit event still in its source dialect (``k8s`` Event or ``gke`` LogEntry)."""

    dialect: Literal["k8s", "gke"]
    data: Mapping[str, Any]
    shape: str
    fallback_time: datetime | None = None
    log_cluster: str | None = None


Unwrapped = tuple[str, RawEvent | RecordError]
"""``(position suffix such as " items[2]", event or the reason it is malformed)``."""


def parse_time(value: Any, *, field: str) -> datetime:
    """RFC 3339 text (nanoseconds allowed) or epoch milliseconds -> aware UTC datetime."""
    if isinstance(value, bool) or value is None:
        raise RecordError(f"{field} is missing")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise RecordError(f"{field} {value!r} is not epoch milliseconds") from exc
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{field} is not a timestamp: {value!r}")
    text = value.strip()
    if text.isdigit():
        return parse_time(int(text), field=field)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordError(f"{field} is not RFC 3339: {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _soft_time(value: Any) -> datetime | None:
    try:
        return parse_time(value, field="wrapper time")
    except RecordError:
        return None


def _inner(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise RecordError(f"{what} is not JSON: {exc}") from exc
    return value


def _aks_cluster(resource_id: Any) -> str | None:
    if not isinstance(resource_id, str) or "/MANAGEDCLUSTERS/" not in resource_id.upper():
        return None
    return resource_id.rstrip("/").rsplit("/", 1)[-1].lower()


def _gke_cluster(entry: Mapping[str, Any]) -> str | None:
    resource = entry.get("resource")
    labels = resource.get("labels") if isinstance(resource, Mapping) else None
    name = labels.get("cluster_name") if isinstance(labels, Mapping) else None
    return str(name) if name else None


def _is_event(data: Mapping[str, Any]) -> bool:
    if data.get("kind") == "Event":
        return True
    return "verb" in data and ("objectRef" in data or "requestURI" in data)


def unwrap(record: Any, *, depth: int = 0) -> list[Unwrapped]:
    """All audit events inside ``record``; malformed parts come back as RecordError."""
    if depth > MAX_DEPTH:
        return [("", RecordError("wrappers nested too deeply"))]
    if isinstance(record, list):
        return _many(record, "", "audit.k8s.io/v1", None, None, depth)
    if not isinstance(record, Mapping):
        return [("", RecordError(f"record is a JSON {type(record).__name__}, not an object"))]
    if isinstance(record.get("protoPayload"), Mapping):
        return [("", RawEvent("gke", record, "gke-cloud-audit", log_cluster=_gke_cluster(record)))]
    if record.get("kind") == "EventList" or (
        isinstance(record.get("items"), list)
        and str(record.get("apiVersion", "")).startswith("audit.k8s.io/")
    ):
        items = record.get("items")
        if not isinstance(items, list):
            return [("", RecordError("EventList has no items list"))]
        return _many(items, "items", "audit.k8s.io/v1", None, None, depth)
    if _is_event(record):
        return [("", RawEvent("k8s", record, "audit.k8s.io/v1"))]
    if isinstance(record.get("records"), list):
        return _many(record["records"], "records", "azure-records", None, None, depth)
    if isinstance(record.get("logEvents"), list):
        return _cloudwatch_subscription(record, depth)
    props = record.get("properties")
    if isinstance(props, Mapping) and "log" in props:
        return _single(
            props["log"],
            "properties.log",
            "aks-diagnostic",
            _soft_time(record.get("time")),
            _aks_cluster(record.get("resourceId")),
            depth,
        )
    for key in ("@message", "message"):
        if key in record:
            when = record.get("@timestamp", record.get("timestamp"))
            return _single(record[key], key, "eks-cloudwatch", _soft_time(when), None, depth)
    keys = ", ".join(sorted(str(k) for k in record)[:8]) or "none"
    return [("", RecordError(f"not a Kubernetes audit event or known wrapper (keys: {keys})"))]


def _cloudwatch_subscription(record: Mapping[str, Any], depth: int) -> list[Unwrapped]:
    out: list[Unwrapped] = []
    for i, item in enumerate(record["logEvents"]):
        where = f" logEvents[{i}]"
        if not isinstance(item, Mapping) or "message" not in item:
            out.append((where, RecordError("CloudWatch log event has no message")))
            continue
        for suffix, ev in _single(
            item["message"],
            "message",
            "eks-cloudwatch",
            _soft_time(item.get("timestamp")),
            None,
            depth,
        ):
            out.append((where + suffix, ev))
    return out


def _single(
    value: Any,
    what: str,
    shape: str,
    when: datetime | None,
    cluster: str | None,
    depth: int,
) -> list[Unwrapped]:
    try:
        inner = _inner(value, what)
    except RecordError as exc:
        return [("", exc)]
    return [
        (suffix, _restyle(ev, shape, when, cluster))
        for suffix, ev in unwrap(inner, depth=depth + 1)
    ]


def _many(
    items: list[Any],
    what: str,
    shape: str,
    when: datetime | None,
    cluster: str | None,
    depth: int,
) -> list[Unwrapped]:
    out: list[Unwrapped] = []
    for i, item in enumerate(items):
        where = f" {what}[{i}]" if what else f" [{i}]"
        for suffix, ev in unwrap(item, depth=depth + 1):
            out.append((where + suffix, _restyle(ev, shape, when, cluster)))
    return out


def _restyle(
    ev: RawEvent | RecordError, shape: str, when: datetime | None, cluster: str | None
) -> RawEvent | RecordError:
    """Keep the innermost wrapper's facts, fill gaps from the outer one."""
    if isinstance(ev, RecordError):
        return ev
    inner_shape = ev.shape if ev.shape != "audit.k8s.io/v1" else shape
    return RawEvent(
        ev.dialect,
        ev.data,
        inner_shape,
        fallback_time=ev.fallback_time or when,
        log_cluster=ev.log_cluster or cluster,
    )
