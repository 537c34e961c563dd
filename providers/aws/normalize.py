"""Pure conversion of CloudTrail records into ``Session`` models (no SDK imports).

Each function takes a parsed CloudTrail record and returns frozen models, ``None`` for events
that are not sessions, or raises ``RecordError`` naming the offending field. EC2 shapes live
in ``normalize_ec2`` and are re-exported here. Tested from recorded JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.errors import RecordError
from agent.models import AccessMethod, EvidenceRef, Outcome, Session, ensure_utc
from providers.aws.fields import mapping_field, scalar, text_field
from providers.aws.normalize_ec2 import (
    PROVIDER,
    accelerators_from_type_info,
    canonical_model,
    instance_from_ec2,
)

__all__ = [
    "PROVIDER",
    "SESSION_EVENT_SOURCES",
    "accelerators_from_type_info",
    "canonical_model",
    "event_time",
    "instance_from_ec2",
    "join_ssm_sessions",
    "session_from_cloudtrail",
    "ssm_session_end",
]

# --------------------------------------------------------------------------- CloudTrail

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_DENIED_CODES = frozenset(
    {"UnauthorizedOperation", "Client.UnauthorizedOperation", "UnauthorizedException"}
)


def _check_record(record: Any) -> tuple[Mapping[str, Any], str]:
    if isinstance(record, str):
        raise RecordError("record is text, not a JSON object (invalid CloudTrail JSON?)")
    if not isinstance(record, Mapping):
        raise RecordError(f"record must be a JSON object, got {type(record).__name__}")
    name = record.get("eventName")
    if name is None:
        raise RecordError("eventName is missing")
    if not isinstance(name, str) or not name.strip():
        raise RecordError(f"eventName must be a non-empty string, got {name!r}")
    return record, name.strip()


def event_time(record: Any) -> datetime:
    """``eventTime`` as an aware UTC datetime; ``RecordError`` if the record is not an
    object with an ``eventName`` or its ``eventTime`` is missing or invalid."""
    record, _ = _check_record(record)
    value = record.get("eventTime")
    if value is None:
        raise RecordError("eventTime is missing")
    if not isinstance(value, str) or not _TIME_RE.match(value):
        raise RecordError(f"eventTime {value!r} is not an ISO-8601 timestamp")
    try:
        return ensure_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise RecordError(f"eventTime {value!r} is not a valid timestamp: {exc}") from exc


def _error_outcome(record: Mapping[str, Any]) -> Outcome | None:
    code = text_field(record, "errorCode")
    if code is None:
        return None
    if code.startswith("AccessDenied") or code in _DENIED_CODES:
        return Outcome.DENIED
    return Outcome.FAILED


@dataclass(frozen=True)
class _Parts:
    """What an event-specific rule contributes to a Session."""

    method: AccessMethod
    instance_id: str | None = None
    attributes: dict[str, str | None] = field(default_factory=dict)
    outcome: Outcome | None = None
    notes: tuple[str, ...] = ()


_Rule = Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]], _Parts]


def _ssm_start(
    record: Mapping[str, Any], req: Mapping[str, Any], resp: Mapping[str, Any]
) -> _Parts:
    document = text_field(req, "documentName", "requestParameters.")
    forward = bool(document and document.startswith("AWS-StartPortForwardingSession"))
    notes: tuple[str, ...] = ()
    agent = record.get("userAgent")
    if isinstance(agent, str) and agent.startswith("aws-internal"):
        notes = (
            "started from the AWS console: sourceIPAddress is an AWS address; "
            "see the principal's ConsoleLogin for the client IP",
        )
    return _Parts(
        method=AccessMethod.SSM_PORT_FORWARD if forward else AccessMethod.SSM_SESSION,
        instance_id=text_field(req, "target", "requestParameters."),
        attributes={"documentName": document, "sessionId": scalar(resp.get("sessionId"))},
        notes=notes,
    )


def _ssm_resume(
    record: Mapping[str, Any], req: Mapping[str, Any], resp: Mapping[str, Any]
) -> _Parts:
    session_id = scalar(req.get("sessionId")) or scalar(resp.get("sessionId"))
    return _Parts(
        method=AccessMethod.SSM_SESSION,
        attributes={"sessionId": session_id, "resumed": "true"},
    )


def _eic_push(record: Mapping[str, Any], req: Mapping[str, Any], resp: Mapping[str, Any]) -> _Parts:
    user = scalar(req.get("instanceOSUser")) or scalar(req.get("osUser"))
    return _Parts(
        method=AccessMethod.EC2_INSTANCE_CONNECT,
        instance_id=text_field(req, "instanceId", "requestParameters."),
        attributes={"osUser": user, "availabilityZone": scalar(req.get("availabilityZone"))},
    )


def _serial(record: Mapping[str, Any], req: Mapping[str, Any], resp: Mapping[str, Any]) -> _Parts:
    return _Parts(
        method=AccessMethod.EC2_SERIAL_CONSOLE,
        instance_id=text_field(req, "instanceId", "requestParameters."),
        attributes={
            "serialPort": scalar(req.get("serialPort")),
            "monitorMode": scalar(req.get("monitorMode")),
        },
    )


def _open_tunnel(
    record: Mapping[str, Any], req: Mapping[str, Any], resp: Mapping[str, Any]
) -> _Parts:
    keys = ("instanceConnectEndpointId", "privateIpAddress", "remotePort", "maxTunnelDuration")
    return _Parts(
        method=AccessMethod.EC2_INSTANCE_CONNECT_ENDPOINT,
        attributes={k: scalar(req.get(k)) for k in keys},
        notes=(
            "EC2 Instance Connect Endpoint logs no instance id; the target is "
            "privateIpAddress behind the endpoint",
        ),
    )


def _console_login(
    record: Mapping[str, Any], req: Mapping[str, Any], resp: Mapping[str, Any]
) -> _Parts:
    extra = mapping_field(record, "additionalEventData")
    result = scalar(resp.get("ConsoleLogin"))
    outcome = {"Success": Outcome.SUCCESS, "Failure": Outcome.FAILED}.get(result or "")
    return _Parts(
        method=AccessMethod.CONSOLE,
        attributes={
            "MFAUsed": scalar(extra.get("MFAUsed")),
            "LoginTo": scalar(extra.get("LoginTo")),
            "ConsoleLogin": result,
        },
        outcome=outcome,
    )


# eventName -> (eventSource, rule). A registry, so a new access path is one entry.
_SESSION_RULES: dict[str, tuple[str, _Rule]] = {
    "StartSession": ("ssm.amazonaws.com", _ssm_start),
    "ResumeSession": ("ssm.amazonaws.com", _ssm_resume),
    "SendSSHPublicKey": ("ec2-instance-connect.amazonaws.com", _eic_push),
    "SendSerialConsoleSSHPublicKey": ("ec2-instance-connect.amazonaws.com", _serial),
    "OpenTunnel": ("ec2-instance-connect.amazonaws.com", _open_tunnel),
    "ConsoleLogin": ("signin.amazonaws.com", _console_login),
}

SESSION_EVENT_SOURCES: tuple[str, ...] = tuple(
    sorted({source for source, _ in _SESSION_RULES.values()})
)
"""CloudTrail event sources that can carry a session event (LookupEvents passes)."""


def _rule_for(record: Mapping[str, Any], name: str) -> _Rule | None:
    entry = _SESSION_RULES.get(name)
    if entry is None:
        return None
    source = text_field(record, "eventSource")
    return entry[1] if source is None or source == entry[0] else None


def _principal(identity: Mapping[str, Any]) -> str | None:
    for key in ("arn", "userName", "principalId"):
        value = text_field(identity, key, "userIdentity.")
        if value:
            return value
    return None


def _common_attributes(
    record: Mapping[str, Any], identity: Mapping[str, Any]
) -> dict[str, str | None]:
    context = mapping_field(identity, "sessionContext")
    issuer = mapping_field(context, "sessionIssuer")
    ctx_attrs = mapping_field(context, "attributes")
    message = scalar(record.get("errorMessage"))
    return {
        "eventSource": scalar(record.get("eventSource")),
        "errorCode": scalar(record.get("errorCode")),
        "errorMessage": message[:500] if message else None,
        "sessionIssuer": scalar(issuer.get("arn")),
        "mfaAuthenticated": scalar(ctx_attrs.get("mfaAuthenticated")),
        "invokedBy": scalar(identity.get("invokedBy")),
    }


def _event_key(record: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    event_id = text_field(record, "eventID")
    if event_id:
        return event_id, ()
    canonical = json.dumps(record, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return f"sha256:{digest}", ("record has no eventID; key derived from its content",)


def session_from_cloudtrail(
    record: Any,
    *,
    locator: str,
    position: str | None,
    source: str = "cloudtrail",
    kind: str = "file",
) -> Session | None:
    """One CloudTrail record -> ``Session``; ``None`` when it is not a session event.

    ``RecordError`` (with the field at fault) when the record is malformed.
    """
    rec, name = _check_record(record)
    started = event_time(rec)
    rule = _rule_for(rec, name)
    if rule is None:
        return None
    identity = mapping_field(rec, "userIdentity")
    request = mapping_field(rec, "requestParameters")
    response = mapping_field(rec, "responseElements")
    parts = rule(rec, request, response)
    key, key_notes = _event_key(rec)
    attributes = {**_common_attributes(rec, identity), **parts.attributes}
    return Session(
        key=key,
        provider=PROVIDER,
        source=source,
        account=text_field(rec, "recipientAccountId")
        or text_field(identity, "accountId", "userIdentity."),
        region=text_field(rec, "awsRegion"),
        instance_id=parts.instance_id,
        principal=_principal(identity),
        principal_type=text_field(identity, "type", "userIdentity."),
        source_ip=text_field(rec, "sourceIPAddress"),
        user_agent=text_field(rec, "userAgent"),
        method=parts.method,
        outcome=_error_outcome(rec) or parts.outcome or Outcome.SUCCESS,
        started_at=started,
        evidence=(
            EvidenceRef(
                kind=kind,
                locator=locator,
                position=position,
                event_id=text_field(rec, "eventID"),
                event_name=name,
            ),
        ),
        attributes={k: v for k, v in attributes.items() if v is not None},
        notes=(*parts.notes, *key_notes),
    )


def ssm_session_end(record: Any) -> tuple[str, datetime] | None:
    """``(sessionId, eventTime)`` of a successful SSM TerminateSession, else ``None``."""
    rec, name = _check_record(record)
    when = event_time(rec)
    if name != "TerminateSession" or text_field(rec, "eventSource") not in (
        None,
        "ssm.amazonaws.com",
    ):
        return None
    if text_field(rec, "errorCode"):
        return None
    session_id = scalar(mapping_field(rec, "requestParameters").get("sessionId")) or scalar(
        mapping_field(rec, "responseElements").get("sessionId")
    )
    return (session_id, when) if session_id else None


_SSM_METHODS = frozenset({AccessMethod.SSM_SESSION, AccessMethod.SSM_PORT_FORWARD})


def join_ssm_sessions(sessions: Sequence[Session], ends: Mapping[str, datetime]) -> list[Session]:
    """Attach TerminateSession end times (by ``sessionId``) and give ResumeSession events
    the target and method of the StartSession they resume, when both are in ``sessions``."""
    starts = {
        s.attributes["sessionId"]: s
        for s in sessions
        if s.method in _SSM_METHODS and s.instance_id and "sessionId" in s.attributes
    }
    out: list[Session] = []
    for s in sessions:
        sid = s.attributes.get("sessionId")
        if s.method not in _SSM_METHODS or sid is None:
            out.append(s)
            continue
        update: dict[str, Any] = {}
        end = ends.get(sid)
        if end is not None and end >= s.started_at and s.ended_at is None:
            update["ended_at"] = end
        start = starts.get(sid)
        if s.instance_id is None and start is not None:
            update["instance_id"] = start.instance_id
            update["method"] = start.method
        out.append(s.model_copy(update=update) if update else s)
    return out
