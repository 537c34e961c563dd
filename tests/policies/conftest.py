"""Factories for policy tests: EvaluationInput builder and throw-away packs/engines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.models import (
    Accelerator,
    AccessMethod,
    EvaluationInput,
    ExportClassification,
    GpuInstance,
    IpIntel,
    IpKind,
    Outcome,
    Session,
)
from policies.engine import YamlPolicyEngine

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
STARTED = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)

MakeInput = Callable[..., EvaluationInput]
MakeEngine = Callable[..., YamlPolicyEngine]


def build_input(
    *,
    country: str | None = "CN",
    subdivision: str | None = None,
    city: str | None = None,
    ip: str = "1.2.4.8",
    kind: IpKind = IpKind.PUBLIC,
    tags: tuple[str, ...] = (),
    sources: tuple[str, ...] = ("iptocc 3.3.170 (RIR registry country)",),
    unknown_reason: str | None = None,
    accelerators: tuple[tuple[str, float], ...] = (("nvidia-h100", 8),),
    in_inventory: bool = True,
    instance_type: str | None = "p5.48xlarge",
    session_accelerators: tuple[tuple[str, float], ...] = (),
    session_instance_type: str | None = None,
    provider: str = "aws",
    account: str = "111122223333",
    instance_id: str = "i-0abc",
    principal: str | None = "arn:aws:iam::111122223333:user/alice",
    method: AccessMethod = AccessMethod.SSM_SESSION,
    outcome: Outcome = Outcome.SUCCESS,
    started_at: datetime = STARTED,
    attributes: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
    classes: dict[str, ExportClassification] | None = None,
) -> EvaluationInput:
    """One session with sensible defaults: CN source, 8 x H100 target in the inventory."""
    session = Session(
        key=f"evt-{instance_id}-{ip}",
        provider=provider,
        source="test",
        account=account,
        region="us-east-1",
        instance_id=instance_id,
        instance_type=session_instance_type,
        accelerators=tuple(Accelerator(model=m, count=n) for m, n in session_accelerators),
        principal=principal,
        source_ip=ip,
        method=method,
        outcome=outcome,
        started_at=started_at,
        attributes=attributes or {},
    )
    instance = (
        GpuInstance(
            provider=provider,
            account=account,
            region="us-east-1",
            instance_id=instance_id,
            instance_type=instance_type,
            accelerators=tuple(Accelerator(model=m, count=n) for m, n in accelerators),
        )
        if in_inventory
        else None
    )
    intel = IpIntel(
        ip=ip,
        kind=kind,
        normalized=ip,
        country=country,
        subdivision=subdivision,
        city=city,
        tags=tags,
        sources=sources,
        unknown_reason=unknown_reason,
    )
    return EvaluationInput(
        session=session,
        instance=instance,
        intel=intel,
        classes=classes or {},
        context=context or {},
    )


@pytest.fixture
def make_input() -> MakeInput:
    """``make_input(country="IR", outcome=Outcome.DENIED, ...)`` -> EvaluationInput."""
    return build_input


def pack_text(
    policies: list[dict[str, Any]], *, name: str = "test-pack", match_mode: str = "first"
) -> str:
    """YAML text of a pack with the given policy dicts."""
    doc = {"pack": name, "version": "1.0.0", "match_mode": match_mode, "policies": policies}
    return yaml.safe_dump(doc, sort_keys=False)


def policy(
    pid: str, match: dict[str, Any], *, severity: str = "high", **extra: Any
) -> dict[str, Any]:
    """A policy dict with a title and citation filled in."""
    return {
        "id": pid,
        "title": f"policy {pid}",
        "severity": severity,
        "citations": ["test citation"],
        "match": match,
        **extra,
    }


@pytest.fixture
def write_pack(tmp_path: Path) -> Callable[..., Path]:
    """Write pack YAML (text, or a list of policy dicts) to a fresh file; returns its path."""
    counter = iter(range(10_000))

    def write(
        content: str | list[dict[str, Any]], *, filename: str | None = None, **kw: Any
    ) -> Path:
        text = content if isinstance(content, str) else pack_text(content, **kw)
        path = tmp_path / (filename or f"pack{next(counter)}.yaml")
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_engine(write_pack: Callable[..., Path], tmp_path: Path) -> MakeEngine:
    """``make_engine([policy(...)], match_mode="all", now=...)`` -> compiled engine."""

    def build(
        content: str | list[dict[str, Any]], *, now: datetime = NOW, **kw: Any
    ) -> YamlPolicyEngine:
        path = write_pack(content, **kw)
        return YamlPolicyEngine.from_refs([str(path)], base_dir=tmp_path, clock=lambda: now)

    return build


@pytest.fixture(scope="session")
def bundled_engine() -> YamlPolicyEngine:
    """The bundled export-controls pack, judged at a fixed 'now'."""
    return YamlPolicyEngine.from_refs(
        ["builtin:export-controls"], base_dir=Path.cwd(), clock=lambda: NOW
    )


@pytest.fixture
def make_policy() -> Callable[..., dict[str, Any]]:
    """``make_policy("p1", {"type": ...}, severity="low", caps=[...])`` -> policy dict."""
    return policy
