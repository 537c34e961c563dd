"""Pure VPC flow-log normalisation: inbound admin-port flows to GPU instances -> Session.

Flows from Google's IAP range (35.235.240.0/20) are IAP tunnels: the VM only sees Google's
address, the user's IP is in the IAP audit log. They are never sessions here (never geolocated)
and are reported as ``ignored="iap-range"``. Google's own ``src_location.country`` (ISO alpha-3,
e.g. ``rus``) is kept as ``attributes["provider_country"]`` in alpha-2 for the pipeline to
compare with its own geolocation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from agent.errors import RecordError
from agent.models import AccessMethod, GpuInstance, Outcome, Session
from providers.gcp.countries import to_alpha2
from providers.gcp.entries import as_dict, entry_cursor, entry_project, evidence, parse_timestamp
from providers.gcp.normalize import InventoryIndex

__all__ = ["IAP_RANGE", "FlowResult", "session_from_flow_entry"]

IAP_RANGE = ipaddress.ip_network("35.235.240.0/20")
FLOW_NOTE = (
    "network connection accepted by the firewall; the flow log cannot tell whether a login followed"
)


@dataclass(frozen=True)
class FlowResult:
    """A flow entry's outcome: a session, or why it was ignored (and its target, if known)."""

    session: Session | None = None
    ignored: str | None = None
    target: GpuInstance | None = None


def _port(value: Any, field: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"jsonPayload.connection.{field} {value!r} is not a port") from exc
    if not 0 <= port < 65536:
        raise RecordError(f"jsonPayload.connection.{field} {port} is out of range")
    return port


def _resolve(
    payload: dict[str, Any], dest_ip: str, project: str, index: InventoryIndex
) -> GpuInstance | None:
    dest = as_dict(payload.get("dest_instance"), "jsonPayload.dest_instance")
    dest_project = str(dest.get("project_id") or project)
    if dest.get("vm_name"):
        found = index.by_name.get((dest_project, str(dest["vm_name"])))
        if found is not None:
            return found
    return index.by_ip.get((dest_project, dest_ip))


def session_from_flow_entry(
    entry: Any,
    *,
    project: str,
    index: InventoryIndex,
    admin_ports: Collection[int],
) -> FlowResult:
    """Normalise one ``compute.googleapis.com/vpc_flows`` entry; ``RecordError`` if malformed."""
    cursor = entry_cursor(entry)
    payload = as_dict(entry.get("jsonPayload"), "jsonPayload")
    conn = as_dict(payload.get("connection"), "jsonPayload.connection")
    if not conn:
        raise RecordError("flow entry has no jsonPayload.connection")
    src_ip, dest_ip = conn.get("src_ip"), conn.get("dest_ip")
    if not isinstance(src_ip, str) or not isinstance(dest_ip, str):
        raise RecordError("flow entry lacks connection.src_ip/dest_ip")
    try:
        src = ipaddress.ip_address(src_ip)
    except ValueError as exc:
        raise RecordError(f"connection.src_ip {src_ip!r} is not an IP address") from exc
    dest_port = _port(conn.get("dest_port"), "dest_port")
    if dest_port not in admin_ports:
        return FlowResult(ignored="not-admin-port")
    project = entry_project(entry, project)
    target = _resolve(payload, dest_ip, project, index)
    if src.version == 4 and src in IAP_RANGE:
        return FlowResult(ignored="iap-range", target=target)
    if target is None:
        return FlowResult(ignored="unknown-target")
    if not target.has_accelerators:
        return FlowResult(ignored="not-gpu-target", target=target)
    started = cursor.when
    if payload.get("start_time"):
        started = parse_timestamp(payload["start_time"])[0]
    ended = parse_timestamp(payload["end_time"])[0] if payload.get("end_time") else None
    protocol = str(conn.get("protocol", ""))
    attrs: dict[str, str] = {
        "dest_ip": dest_ip,
        "dest_port": str(dest_port),
        "protocol": protocol,
    }
    for key in ("src_port",):
        if conn.get(key) is not None:
            attrs[key] = str(conn[key])
    for key in ("reporter", "bytes_sent", "packets_sent"):
        if payload.get(key) is not None:
            attrs[key] = str(payload[key])
    location = as_dict(payload.get("src_location"), "jsonPayload.src_location")
    if location.get("country"):
        attrs["provider_country_raw"] = str(location["country"])
        alpha2 = to_alpha2(str(location["country"]))
        if alpha2:
            attrs["provider_country"] = alpha2
    for key in ("asn", "region", "city", "continent"):
        if location.get(key) not in (None, ""):
            attrs[f"provider_{key}"] = str(location[key])
    day = started.date().isoformat()
    key = f"{target.account}/flow/{src_ip}/{target.instance_id}/{dest_port}/{protocol}/{day}"
    session = Session(
        key=key,
        provider="gcp",
        source="gcp-vpc-flows",
        account=target.account,
        region=target.region,
        instance_id=target.instance_id,
        source_ip=src_ip,
        method=AccessMethod.NETWORK_FLOW,
        outcome=Outcome.SUCCESS,
        started_at=started,
        ended_at=ended,
        evidence=(evidence(entry, cursor, "vpc_flows"),),
        attributes=attrs,
        notes=(FLOW_NOTE,),
    )
    return FlowResult(session=session, target=target)
