"""Pure normalisation of Azure Bastion audit logs and Entra ID VM sign-ins into Sessions.

Bastion arrives either as Log Analytics rows (table ``MicrosoftAzureBastionAuditLogs``,
PascalCase columns) or as diagnostic-setting records in storage (``properties.clientIpAddress``
...). Sign-ins arrive as ``SigninLogs`` / ``AADNonInteractiveUserSignInLogs`` rows; the
diagnostic-record shape is adapted with :func:`signin_row_from_record`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.errors import RecordError
from agent.models import AccessMethod, EvidenceRef, Outcome, Session
from providers.azure.normalize import as_mapping, parse_time, subscription_of, vm_id_of

__all__ = [
    "BASTION_TABLE",
    "VM_SIGN_IN_APPS",
    "bastion_from_record",
    "bastion_from_row",
    "signin_from_row",
    "signin_row_from_record",
]

BASTION_TABLE = "MicrosoftAzureBastionAuditLogs"
# Entra ID first-party apps behind "Login with Entra ID" to VMs (domain.md 6.3 / Appendix A [V]).
VM_SIGN_IN_APPS = {
    "372140e0-b3b7-4226-8ef9-d57986796201": "windows",
    "ce6ff14a-7fdc-4685-bbe0-f6afdfcfa8e0": "linux",
}
_PLACEHOLDER = re.compile(r"^<[^<>]*>$")
_FAILED = ("fail", "denied", "unauthori", "error")


def _text(value: Any) -> str | None:
    """Stripped text; None for empty values and documentation placeholders like ``<tunnelID>``."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return None if not text or _PLACEHOLDER.match(text) else text


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class _Bastion:
    time: Any
    start: Any
    end: Any
    duration_ms: Any
    client_ip: Any
    client_port: Any
    user_name: Any
    user_email: Any
    user_agent: Any
    protocol: Any
    target: Any
    target_ip: Any
    tunnel_id: Any
    message: Any
    bastion: Any


def _optional_time(value: Any, *, field: str) -> datetime | None:
    return parse_time(value, field=field) if _text(value) or isinstance(value, datetime) else None


def _bastion_session(b: _Bastion, *, source: str, feed: str, evidence: EvidenceRef) -> Session:
    logged = parse_time(b.time, field="time")
    started = _optional_time(b.start, field="SessionStartTime") or logged
    ended = _optional_time(b.end, field="SessionEndTime")
    if ended is None and _text(b.duration_ms) and str(b.duration_ms).isdigit():
        ended = started + timedelta(milliseconds=int(str(b.duration_ms)))
    target = _text(b.target)
    client_ip = _text(b.client_ip)
    tunnel = _text(b.tunnel_id)
    key = (
        f"bastion:{tunnel.lower()}"
        if tunnel
        else (f"bastion:{_digest(started.isoformat(), client_ip, _text(b.client_port), target)}")
    )
    message = _text(b.message) or ""
    email, user = _text(b.user_email), _text(b.user_name)
    attributes = {
        "feed": feed,
        "protocol": (_text(b.protocol) or "").lower(),
        "client_port": _text(b.client_port) or "",
        "target_ip": _text(b.target_ip) or "",
        "bastion_host": (_text(b.bastion) or "").lower(),
        "os_user": user or "",
        "message": message,
        "tunnel_id": tunnel or "",
        "logged_at": logged.isoformat(),
    }
    return Session(
        key=key,
        provider="azure",
        source=source,
        account=subscription_of(target),
        instance_id=vm_id_of(target) or (target.lower() if target else None),
        principal=email or user,
        principal_type="entra-user" if email else ("os-user" if user else None),
        source_ip=client_ip,
        user_agent=_text(b.user_agent),
        method=AccessMethod.BASTION,
        outcome=Outcome.FAILED if any(w in message.lower() for w in _FAILED) else Outcome.SUCCESS,
        started_at=started,
        ended_at=ended,
        evidence=(evidence,),
        attributes={k: v for k, v in attributes.items() if v},
    )


def bastion_from_row(row: Mapping[str, Any], *, source: str, workspace_id: str) -> Session:
    """One ``MicrosoftAzureBastionAuditLogs`` row -> Session (method bastion)."""
    if not isinstance(row, Mapping):
        raise RecordError("Bastion row is not an object")
    b = _Bastion(
        time=row.get("TimeGenerated") or row.get("Time"),
        start=row.get("SessionStartTime"),
        end=row.get("SessionEndTime"),
        duration_ms=row.get("Duration"),
        client_ip=row.get("ClientIpAddress"),
        client_port=row.get("ClientPort"),
        user_name=row.get("UserName"),
        user_email=row.get("UserEmail"),
        user_agent=row.get("UserAgent"),
        protocol=row.get("Protocol"),
        target=row.get("TargetResourceId"),
        target_ip=row.get("TargetVMIPAddress"),
        tunnel_id=row.get("TunnelId"),
        message=row.get("Message"),
        bastion=row.get("_ResourceId"),
    )
    evidence = EvidenceRef(
        kind="api",
        locator=f"loganalytics:{BASTION_TABLE}",
        position=f"workspaces/{workspace_id}",
        event_id=_text(b.tunnel_id),
        event_name=_text(row.get("OperationName")),
    )
    return _bastion_session(b, source=source, feed="bastion-log-analytics", evidence=evidence)


def bastion_from_record(
    record: Mapping[str, Any], *, source: str, locator: str, position: str
) -> Session:
    """One ``BastionAuditLogs`` diagnostic-setting record (storage JSON) -> Session."""
    if not isinstance(record, Mapping):
        raise RecordError("Bastion record is not an object")
    props = record.get("properties")
    if not isinstance(props, Mapping):
        raise RecordError("Bastion record has no properties object")
    b = _Bastion(
        time=record.get("time"),
        start=props.get("sessionStartTime"),
        end=props.get("sessionEndTime"),
        duration_ms=props.get("duration"),
        client_ip=props.get("clientIpAddress"),
        client_port=props.get("clientPort"),
        user_name=props.get("userName"),
        user_email=props.get("userEmail"),
        user_agent=props.get("userAgent"),
        protocol=props.get("protocol"),
        target=props.get("targetResourceId"),
        target_ip=props.get("targetVMIPAddress"),
        tunnel_id=props.get("tunnelId"),
        message=props.get("message"),
        bastion=record.get("resourceId"),
    )
    evidence = EvidenceRef(
        kind="file",
        locator=locator,
        position=position,
        event_id=_text(b.tunnel_id),
        event_name=_text(record.get("operationName")),
    )
    return _bastion_session(b, source=source, feed="bastion-storage", evidence=evidence)


def signin_row_from_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A sign-in diagnostic record (``properties.ipAddress`` ...) -> Log Analytics column names."""
    props = record.get("properties")
    if not isinstance(props, Mapping):
        raise RecordError("sign-in record has no properties object")
    return {
        "TimeGenerated": record.get("time"),
        "CreatedDateTime": props.get("createdDateTime"),
        "Id": props.get("id"),
        "CorrelationId": props.get("correlationId"),
        "UserPrincipalName": props.get("userPrincipalName"),
        "UserId": props.get("userId"),
        "UserType": props.get("userType"),
        "IPAddress": props.get("ipAddress") or record.get("callerIpAddress"),
        "Location": record.get("location"),
        "LocationDetails": props.get("location"),
        "AppId": props.get("appId"),
        "AppDisplayName": props.get("appDisplayName"),
        "ResourceIdentity": props.get("resourceId"),
        "ResourceDisplayName": props.get("resourceDisplayName"),
        "ResultType": record.get("resultType"),
        "ResultDescription": record.get("resultDescription"),
        "Status": props.get("status"),
        "ClientAppUsed": props.get("clientAppUsed"),
        "DeviceDetail": props.get("deviceDetail"),
        "UserAgent": props.get("userAgent"),
        "SignInTable": record.get("category"),
    }


def _vm_os(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for column in ("AppId", "ResourceIdentity", "ResourceId"):
        value = (_text(row.get(column)) or "").lower()
        if value in VM_SIGN_IN_APPS:
            return VM_SIGN_IN_APPS[value], value
    return None, None


def signin_from_row(row: Mapping[str, Any], *, source: str, workspace_id: str) -> Session | None:
    """A sign-in row -> Session (method vm-sign-in); ``None`` when not a VM sign-in app."""
    if not isinstance(row, Mapping):
        raise RecordError("sign-in row is not an object")
    vm_os, app = _vm_os(row)
    if vm_os is None:
        return None
    when = parse_time(
        row.get("CreatedDateTime") or row.get("TimeGenerated"), field="CreatedDateTime"
    )
    location = as_mapping(row.get("LocationDetails"))
    status = as_mapping(row.get("Status"))
    device = as_mapping(row.get("DeviceDetail"))
    result = _text(row.get("ResultType")) or _text(status.get("errorCode"))
    outcome = (
        Outcome.UNKNOWN
        if result is None
        else (Outcome.SUCCESS if result == "0" else Outcome.FAILED)
    )
    ip = _text(row.get("IPAddress"))
    sign_in_id = _text(row.get("Id"))
    key = (
        f"signin:{sign_in_id}:{when.isoformat()}"
        if sign_in_id
        else (f"signin:{_digest(when.isoformat(), ip, _text(row.get('UserPrincipalName')), app)}")
    )
    country = _text(location.get("countryOrRegion")) or _text(row.get("Location"))
    attributes = {
        "provider_country": (country or "").upper(),
        "provider_state": _text(location.get("state")) or "",
        "provider_city": _text(location.get("city")) or "",
        "vm_os": vm_os,
        "sign_in_app": app or "",
        "app_id": (_text(row.get("AppId")) or "").lower(),
        "app_display_name": _text(row.get("AppDisplayName")) or "",
        "resource_display_name": _text(row.get("ResourceDisplayName")) or "",
        "result_type": result or "",
        "failure_reason": _text(status.get("failureReason"))
        or _text(row.get("ResultDescription"))
        or "",
        "client_app": _text(row.get("ClientAppUsed")) or "",
        "device_name": _text(device.get("displayName")) or "",
        "device_id": _text(device.get("deviceId")) or "",
        "correlation_id": _text(row.get("CorrelationId")) or "",
        "sign_in_table": _text(row.get("SignInTable")) or "",
    }
    return Session(
        key=key,
        provider="azure",
        source=source,
        principal=_text(row.get("UserPrincipalName")) or _text(row.get("UserId")),
        principal_type=(_text(row.get("UserType")) or "user").lower(),
        source_ip=ip,
        user_agent=_text(row.get("UserAgent")),
        method=AccessMethod.VM_SIGN_IN,
        outcome=outcome,
        started_at=when,
        evidence=(
            EvidenceRef(
                kind="api",
                locator="loganalytics:" + (_text(row.get("SignInTable")) or "SigninLogs"),
                position=f"workspaces/{workspace_id}",
                event_id=sign_in_id,
                event_name="sign-in",
            ),
        ),
        attributes={k: v for k, v in attributes.items() if v},
        notes=("Entra ID sign-in logs do not name the target VM",),
    )
