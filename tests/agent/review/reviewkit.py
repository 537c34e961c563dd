"""Shared helpers for the review-service specs: a movable clock, session/finding factories
and a store seeded with findings (imported by the review, server, export and notify tests)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from agent.models import (
    AccessMethod,
    EvidenceRef,
    Finding,
    FindingStatus,
    InstanceView,
    IpIntel,
    IpKind,
    Session,
    Severity,
    finding_id,
)
from agent.store import SqlStore

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
PEPPER = "test-pepper-0123456789abcdef"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def build_session(key: str = "evt-1", **overrides: Any) -> Session:
    """A plausible SSM session from a CN address to an H100 instance."""
    fields: dict[str, Any] = {
        "key": key,
        "provider": "aws",
        "source": "cloudtrail",
        "account": "111122223333",
        "region": "us-east-1",
        "instance_id": "i-0123456789abcdef0",
        "principal": "arn:aws:iam::111122223333:user/alice",
        "source_ip": "1.2.4.8",
        "method": AccessMethod.SSM_SESSION,
        "started_at": T0,
        "evidence": (
            EvidenceRef(kind="file", locator="trail.json", position="3", event_name="StartSession"),
        ),
    }
    fields.update(overrides)
    return Session(**fields)


def build_finding(
    session: Session | None = None,
    *,
    policy_id: str = "export-controls/d5-remote-access",
    severity: Severity = Severity.HIGH,
    country: str | None = "CN",
    status: FindingStatus = FindingStatus.OPEN,
    **overrides: Any,
) -> Finding:
    """A finding for ``session`` with a stable id."""
    session = session or build_session()
    fields: dict[str, Any] = {
        "id": finding_id(policy_id, session),
        "policy_id": policy_id,
        "severity": severity,
        "title": "Remote access to a 3A090 GPU from a D:5 country",
        "reasons": ("source IP geolocates to CN", "instance carries 8 x nvidia-h100"),
        "status": status,
        "session": session,
        "ip": IpIntel(
            ip=session.source_ip or "",
            kind=IpKind.PUBLIC,
            normalized=session.source_ip,
            country=country,
            asn=4134 if country == "CN" else None,
            sources=("test fixture",),
        ),
        "instance": InstanceView(
            id=session.instance_id,
            type="p5.48xlarge",
            in_inventory=True,
            accelerators=({"model": "nvidia-h100", "count": 8, "export_class": "3A090.a"},),
        ),
        "jurisdictions": (country,) if country else (),
        "bundle_revision": "rev-1",
        "pack_version": "1.0.0",
        "citations": ("15 CFR 744.23",),
        "first_seen": session.started_at,
        "last_seen": session.started_at,
        "run_id": "run-1",
    }
    fields.update(overrides)
    return Finding(**fields)


def seed(store: SqlStore, findings: Iterable[Finding], *, run_id: str = "run-1") -> list[Finding]:
    """Commit ``findings`` (and their sessions) as one batch; returns them."""
    items = list(findings)
    store.commit_batch(
        findings=items, sessions=[f.session for f in items], checkpoint=None, run_id=run_id
    )
    return items
