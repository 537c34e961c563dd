"""OCSF 1.x Detection Finding (class_uid 2004) events for SIEMs and AWS Security Lake.

Mapping: one event per finding; ``activity_id`` 1 Create (open), 2 Update (acknowledged,
escalated), 3 Close (resolved, excepted); ``status_id`` New / In Progress / Suppressed
(excepted, or resolved as false positive, authorised or duplicate) / Resolved. The session's
source address is the evidence's ``src_endpoint``; the target instance is the affected
resource; the cloud account and region fill the ``cloud`` profile. Anything OCSF has no
field for (jurisdictions, citations, bundle revision) goes to ``unmapped``.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from agent.models import Finding, FindingStatus, Severity

__all__ = ["OCSF_VERSION", "to_ocsf"]

OCSF_VERSION = "1.5.0"
CLASS_UID = 2004
CATEGORY_UID = 2
_SEVERITY_ID = {
    Severity.INFO: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}
_ACTIVITY = {1: "Create", 2: "Update", 3: "Close"}
_STATUS = {1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved"}
_SUPPRESSING_RESOLUTIONS = {"false-positive", "authorised", "duplicate"}
_CLOUDS = {"aws": 10, "gcp": 5, "azure": 6}  # OCSF account type_id per cloud
_IP_ADDRESS, _USER_NAME = 2, 4  # OCSF observable type_id


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _product_version() -> str:
    try:
        return version("chipwarden")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _activity_and_status(finding: Finding) -> tuple[int, int]:
    status = finding.status
    if status is FindingStatus.OPEN:
        return 1, 1
    if status in (FindingStatus.ACKNOWLEDGED, FindingStatus.ESCALATED):
        return 2, 2
    if status is FindingStatus.EXCEPTED:
        return 3, 3
    resolution = finding.extra.get("resolution", "")
    return 3, (3 if resolution in _SUPPRESSING_RESOLUTIONS else 4)


def _endpoint(finding: Finding) -> dict[str, Any]:
    ip = finding.ip
    endpoint: dict[str, Any] = {"ip": ip.normalized or ip.ip}
    location = {
        k: v
        for k, v in (("country", ip.country), ("region", ip.subdivision), ("city", ip.city))
        if v
    }
    if location:
        endpoint["location"] = location
    if ip.asn:
        endpoint["autonomous_system"] = {"number": ip.asn, "name": ip.asn_org or ""}
    return endpoint


def to_ocsf(finding: Finding) -> dict[str, Any]:
    """One OCSF Detection Finding event for ``finding`` (a JSON-ready dict)."""
    session = finding.session
    activity_id, status_id = _activity_and_status(finding)
    severity_id, severity = _SEVERITY_ID[finding.severity]
    profiles: list[str] = []
    event: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": _ACTIVITY[activity_id],
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {_ACTIVITY[activity_id]}",
        "time": _ms(finding.first_seen),
        "start_time": _ms(session.started_at),
        "end_time": _ms(session.ended_at or session.started_at),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": _STATUS[status_id],
        "is_alert": finding.status is FindingStatus.OPEN,
        "message": finding.title,
        "finding_info": {
            "uid": finding.id,
            "title": finding.title,
            "desc": "; ".join(finding.reasons),
            "types": [finding.policy_id.split("/", 1)[0]],
            "first_seen_time": _ms(finding.first_seen),
            "last_seen_time": _ms(finding.last_seen),
            "analytic": {
                "uid": finding.policy_id,
                "name": finding.policy_id,
                "type_id": 1,
                "type": "Rule",
                "version": finding.pack_version or finding.bundle_revision,
            },
        },
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "chipwarden",
                "vendor_name": "chipwarden",
                "version": _product_version(),
            },
            "uid": finding.id,
            "profiles": profiles,
        },
        "evidences": [
            {
                "name": session.method.value,
                "src_endpoint": _endpoint(finding),
                "data": {
                    "outcome": session.outcome.value,
                    "source": session.source,
                    "records": [str(e) for e in session.evidence],
                },
            }
        ],
        "resources": [
            {
                "uid": finding.instance.id or session.instance_id or "unknown",
                "type": "compute-instance",
                "region": session.region,
                "data": {
                    "instance_type": finding.instance.type,
                    "in_inventory": finding.instance.in_inventory,
                    "accelerators": [dict(a) for a in finding.instance.accelerators],
                },
            }
        ],
        "observables": [
            {
                "name": "evidences[0].src_endpoint.ip",
                "type_id": _IP_ADDRESS,
                "type": "IP Address",
                "value": finding.ip.normalized or finding.ip.ip,
            },
        ],
        "unmapped": {
            "jurisdictions": list(finding.jurisdictions),
            "citations": list(finding.citations),
            "bundle_revision": finding.bundle_revision,
            "indeterminate": finding.indeterminate,
            "access_method": session.method.value,
            "review_status": finding.status.value,
            "session_id": session.session_id,
        },
    }
    if session.principal:
        event["observables"].append(
            {
                "name": "actor.user.name",
                "type_id": _USER_NAME,
                "type": "User Name",
                "value": session.principal,
            }
        )
        user = {"name": session.principal}
        if session.principal_type:
            user["type"] = session.principal_type
        event["actor"] = {"user": user}
    account_type = _CLOUDS.get(session.provider)
    if account_type is not None:
        profiles.append("cloud")
        cloud: dict[str, Any] = {"provider": session.provider.upper()}
        if session.account:
            cloud["account"] = {
                "uid": session.account,
                "name": session.account,
                "type_id": account_type,
            }
        if session.region:
            cloud["region"] = session.region
        event["cloud"] = cloud
    return event
