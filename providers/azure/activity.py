"""Pure normalisation of Activity Log events (run command, serial console) into Sessions.

One operation writes several events (Started, Accepted, Succeeded...) sharing an
``operationId``; they fold into one session keyed by it. A session is made only from a window
that holds the request event (it carries the caller's IP); an operation that finishes after
the run keeps outcome ``unknown`` rather than being overwritten by an IP-less tail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.errors import RecordError
from agent.models import AccessMethod, EvidenceRef, Outcome, Session
from providers.azure.normalize import parse_time, subscription_of, vm_id_of

__all__ = ["ACCESS_OPERATIONS", "ACTIVITY_PROVIDERS", "ActivityResult", "activity_sessions"]

# operationName.value (lower-case) -> method. The first is named by the brief and by the
# Microsoft.Compute operations list; the others are [U]: confirm against a tenant's logs.
ACCESS_OPERATIONS: dict[str, AccessMethod] = {
    "microsoft.compute/virtualmachines/runcommand/action": AccessMethod.RUN_COMMAND,
    "microsoft.compute/virtualmachinescalesets/virtualmachines/runcommand/action": (
        AccessMethod.RUN_COMMAND
    ),
    "microsoft.compute/virtualmachines/runcommands/write": AccessMethod.RUN_COMMAND,  # managed [U]
    "microsoft.serialconsole/serialports/connect/action": AccessMethod.SERIAL_PORT,  # [U]
}
ACTIVITY_PROVIDERS = ("Microsoft.Compute", "Microsoft.SerialConsole")
_LOCATOR = "activitylog:Microsoft.Insights/eventtypes/management/values"


def _value(field_value: Any) -> str:
    if isinstance(field_value, Mapping):
        field_value = field_value.get("value")
    return str(field_value).strip() if field_value is not None else ""


@dataclass
class ActivityResult:
    """Sessions folded from events, plus what was ignored or malformed (position, reason)."""

    sessions: list[Session] = field(default_factory=list)
    ignored: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    newest: datetime | None = None


@dataclass
class _Op:
    first: datetime
    last: datetime
    event: Mapping[str, Any]
    statuses: list[tuple[str, str]] = field(default_factory=list)
    client_ip: str | None = None
    caller: str | None = None
    count: int = 0
    has_request: bool = False


def _outcome(statuses: list[tuple[str, str]]) -> tuple[Outcome, bool]:
    names = {s.lower() for s, _ in statuses}
    subs = {sub.lower() for _, sub in statuses}
    if "failed" in names:
        denied = bool(subs & {"forbidden", "unauthorized"})
        return (Outcome.DENIED if denied else Outcome.FAILED), True
    if "succeeded" in names:
        return Outcome.SUCCESS, True
    return Outcome.UNKNOWN, False


def activity_sessions(
    events: Iterable[tuple[str, Mapping[str, Any]]], *, source: str, subscription_id: str
) -> ActivityResult:
    """Fold ``(position, event)`` pairs into run-command / serial-console sessions."""
    result = ActivityResult()
    ops: dict[str, _Op] = {}
    for position, event in events:
        try:
            if not isinstance(event, Mapping):
                raise RecordError("event is not an object")
            operation = _value(event.get("operationName")).lower()
            when = parse_time(event.get("eventTimestamp"), field="eventTimestamp")
        except RecordError as exc:
            result.quarantined.append((position, exc.message))
            continue
        result.newest = when if result.newest is None else max(result.newest, when)
        if operation not in ACCESS_OPERATIONS or not vm_id_of(_value(event.get("resourceId"))):
            result.ignored += 1
            continue
        op_key = (
            _value(event.get("operationId"))
            or _value(event.get("correlationId"))
            or _value(event.get("eventDataId"))
        ).lower()
        if not op_key:
            result.quarantined.append((position, "event without operationId or eventDataId"))
            continue
        op = ops.setdefault(op_key, _Op(first=when, last=when, event=event))
        op.count += 1
        if when < op.first:
            op.first, op.event = when, event
        op.last = max(op.last, when)
        op.statuses.append((_value(event.get("status")), _value(event.get("subStatus"))))
        http = _http(event)
        op.client_ip = op.client_ip or (_value(http.get("clientIpAddress")) or None)
        op.caller = op.caller or (_value(event.get("caller")) or None)
        op.has_request = op.has_request or _is_request(event)
    for op_key, op in ops.items():
        if not op.has_request:  # the tail of an operation begun before this window: its
            result.ignored += op.count  # session (with the caller's IP) was emitted already
            continue
        result.ignored += op.count - 1
        result.sessions.append(_session(op_key, op, source=source, subscription_id=subscription_id))
    return result


def _http(event: Mapping[str, Any]) -> Mapping[str, Any]:
    http = event.get("httpRequest")
    return http if isinstance(http, Mapping) else {}


def _is_request(event: Mapping[str, Any]) -> bool:
    """The event that records the caller's request: BeginRequest / Started, or any event
    carrying ``httpRequest.clientIpAddress``."""
    http = _http(event)
    return (
        _value(event.get("eventName")).lower() == "beginrequest"
        or _value(event.get("status")).lower() == "started"
        or bool(_value(http.get("clientIpAddress")))
    )


def _session(op_key: str, op: _Op, *, source: str, subscription_id: str) -> Session:
    event = op.event
    operation = _value(event.get("operationName"))
    target = _value(event.get("resourceId"))
    outcome, finished = _outcome(op.statuses)
    return Session(
        key=f"activity:{op_key}",
        provider="azure",
        source=source,
        account=subscription_of(target) or subscription_id,
        instance_id=vm_id_of(target),
        principal=op.caller,
        principal_type="entra-principal" if op.caller else None,
        source_ip=op.client_ip,
        method=ACCESS_OPERATIONS[operation.lower()],
        outcome=outcome,
        started_at=op.first,
        ended_at=op.last if finished else None,
        evidence=(
            EvidenceRef(
                kind="api",
                locator=_LOCATOR,
                position=f"subscriptions/{subscription_id}",
                event_id=_value(event.get("eventDataId")) or None,
                event_name=operation,
            ),
        ),
        attributes={
            "operation": operation,
            "operation_id": op_key,
            "statuses": ",".join(s for s, _ in op.statuses if s),
            "target_resource": target.lower(),
        },
    )
