"""Fix-ups on a unit's sessions after its records are read (pure): Session Manager end times
from DescribeSessions history, and EC2 Instance Connect Endpoint targets from the inventory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from agent.models import AccessMethod, Session, ensure_utc
from providers.aws.flowsessions import TargetIndex

__all__ = ["open_ssm_targets", "resolve_tunnel_targets", "ssm_ends_from_history", "with_ssm_ends"]

T = TypeVar("T")
Tagged = list[tuple[T, Session]]

_SSM = frozenset({AccessMethod.SSM_SESSION, AccessMethod.SSM_PORT_FORWARD})


def open_ssm_targets(sessions: Iterable[Session]) -> dict[tuple[str, str, str], datetime]:
    """(account, region, target) -> earliest start of its SSM sessions with no end time."""
    out: dict[tuple[str, str, str], datetime] = {}
    for s in sessions:
        if (
            s.method in _SSM
            and s.ended_at is None
            and s.account
            and s.region
            and s.instance_id
            and s.attributes.get("sessionId")
        ):
            key = (s.account, s.region, s.instance_id)
            out[key] = min(out.get(key, s.started_at), s.started_at)
    return out


def ssm_ends_from_history(items: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    """SessionId -> EndDate of DescribeSessions (State=History) entries that have one."""
    out: dict[str, datetime] = {}
    for item in items:
        sid, end = item.get("SessionId"), item.get("EndDate")
        if isinstance(sid, str) and isinstance(end, datetime):
            out[sid] = ensure_utc(end)
    return out


def with_ssm_ends(tagged: Tagged[T], ends: Mapping[str, datetime]) -> Tagged[T]:
    """Give open SSM sessions the end time DescribeSessions reported for their session id."""
    out: Tagged[T] = []
    for tag, s in tagged:
        end = ends.get(s.attributes.get("sessionId", ""))
        if s.method in _SSM and s.ended_at is None and end is not None and end >= s.started_at:
            s = s.model_copy(
                update={
                    "ended_at": end,
                    "attributes": {**s.attributes, "ended_at_source": "ssm:DescribeSessions"},
                }
            )
        out.append((tag, s))
    return out


def resolve_tunnel_targets(tagged: Tagged[T], index: TargetIndex) -> Tagged[T]:
    """Set ``instance_id`` of EC2 Instance Connect Endpoint sessions (OpenTunnel) from their
    ``privateIpAddress`` when exactly one instance of the account holds it."""
    out: Tagged[T] = []
    for tag, s in tagged:
        ip = s.attributes.get("privateIpAddress")
        if s.method is AccessMethod.EC2_INSTANCE_CONNECT_ENDPOINT and ip and not s.instance_id:
            inst = index.by_ip(ip, account=s.account)
            if inst is not None:
                s = s.model_copy(
                    update={
                        "instance_id": inst.instance_id,
                        "region": s.region or inst.region,
                        "attributes": {**s.attributes, "target_resolved_by": "privateIpAddress"},
                        "notes": (
                            *s.notes,
                            f"target {inst.instance_id} resolved from privateIpAddress {ip} "
                            "through the inventory's network interfaces",
                        ),
                    }
                )
        out.append((tag, s))
    return out
