"""Audits of the ``orgworld`` organization: its config file, one scheduled pipeline run with a
fixed clock, and findings described by (policy, method, host, source IP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.contracts import AuditWindow
from agent.models import Finding
from agent.pipeline import AuditResult
from tests.support.audit import scheduled_audit

from .orgworld import NOW, World, config_yaml

SCHEDULED = AuditWindow(since=None, until=None, explicit=False, default_lookback_hours=72)


def write_config(
    world: World,
    tmp_path: Path,
    endpoint_url: str | None = None,
    *,
    store: str = "sqlite:///audit.db",
    options: dict[str, Any] | None = None,
) -> Path:
    path = tmp_path / "chipwarden.yaml"
    path.write_text(
        config_yaml(
            world,
            store=store,
            flow_glob="flows/*.log.gz",
            endpoint_url=endpoint_url,
            options=options,
        )
    )
    return path


def audit(config: Path, *, clock_at: Any = NOW) -> AuditResult:
    """One scheduled audit through the pipeline with a fixed clock (72 h lookback)."""
    return scheduled_audit(config, now=clock_at, lookback_hours=SCHEDULED.default_lookback_hours)


def described(world: World, findings: list[Finding]) -> set[tuple[Any, ...]]:
    return {
        (
            f.policy_id,
            f.session.method.value,
            world.host_by_instance(f.session.instance_id),
            f.session.source_ip,
        )
        for f in findings
    }
