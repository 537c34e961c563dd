"""Policy decisions and the findings stored for review."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import Field

from agent.models.base import Frozen, Severity, UtcDatetime
from agent.models.intel import IpIntel
from agent.models.inventory import ExportClassification, GpuInstance
from agent.models.session import Session

__all__ = ["Decision", "Finding", "FindingStatus", "InstanceView", "finding_id"]


class FindingStatus(StrEnum):
    """Review state of a finding."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    EXCEPTED = "excepted"


class Decision(Frozen):
    """One policy's verdict on one session (like an OPA decision)."""

    policy_id: str
    pack: str
    pack_version: str
    bundle_revision: str
    severity: Severity
    title: str
    reasons: tuple[str, ...]
    jurisdictions: tuple[str, ...] = ()
    indeterminate: bool = False
    citations: tuple[str, ...] = ()
    excepted_by: str | None = None


class InstanceView(Frozen):
    """The target instance as the reviewer sees it: accelerators with their export class."""

    id: str | None
    type: str | None
    in_inventory: bool
    accelerators: tuple[dict[str, object], ...] = ()

    @classmethod
    def build(
        cls,
        *,
        session: Session,
        instance: GpuInstance | None,
        classes: dict[str, ExportClassification],
    ) -> InstanceView:
        accs = instance.accelerators if instance else session.accelerators
        return cls(
            id=instance.instance_id if instance else session.instance_id,
            type=(instance.instance_type if instance else None) or session.instance_type,
            in_inventory=instance is not None,
            accelerators=tuple(
                {
                    "model": a.model,
                    "count": a.count,
                    "export_class": classes[a.model].export_class
                    if a.model in classes
                    else "unknown",
                }
                for a in accs
            ),
        )


def finding_id(policy_id: str, session: Session) -> str:
    """Idempotent id: hash of policy id and session identity."""
    return hashlib.sha256(f"{policy_id}\x1f{session.session_id}".encode()).hexdigest()[:32]


class Finding(Frozen):
    """A flagged session under one policy; upserted by ``id`` so re-runs never duplicate."""

    id: str
    policy_id: str
    severity: Severity
    title: str
    reasons: tuple[str, ...]
    status: FindingStatus = FindingStatus.OPEN
    session: Session
    ip: IpIntel
    instance: InstanceView
    jurisdictions: tuple[str, ...] = ()
    indeterminate: bool = False
    bundle_revision: str
    pack_version: str = ""
    citations: tuple[str, ...] = ()
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    run_id: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
