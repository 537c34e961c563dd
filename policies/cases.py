"""Policy-case models (like ``opa test`` inputs): a minimal session and its expected decision.

A cases file is a YAML list next to its pack (``<pack>.cases.yaml``). Each case gives a
session, the target instance (``null`` = not in the inventory), the IP intelligence and the
expected decision; ``policies.testing.run_cases`` evaluates them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agent.errors import PolicyError, UsageError
from agent.models import (
    Accelerator,
    AccessMethod,
    EvaluationInput,
    GpuInstance,
    IpIntel,
    IpKind,
    Outcome,
    Session,
    Severity,
    UtcDatetime,
)
from agent.yamlio import load_yaml
from policies.loader import CASES_SUFFIX, format_errors, is_cases_file

__all__ = ["CASES_SUFFIX", "Case", "CaseExpect", "is_cases_file", "load_cases"]

DEFAULT_STARTED_AT = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaseAccelerator(_Strict):
    """``{model: nvidia-h100, count: 8}``."""

    model: str
    count: float = Field(default=1, ge=0)


class CaseSession(_Strict):
    """The session fields a case needs; everything else gets a fixed default."""

    key: str | None = None
    provider: str = "aws"
    source: str = "policy-case"
    account: str | None = "111122223333"
    region: str | None = "us-east-1"
    instance_id: str | None = "i-0case00000000000"
    instance_type: str | None = None
    accelerators: tuple[CaseAccelerator, ...] = ()
    principal: str | None = "arn:aws:iam::111122223333:user/case"
    source_ip: str | None = "198.51.100.7"
    method: AccessMethod = AccessMethod.SSH
    outcome: Outcome = Outcome.SUCCESS
    started_at: UtcDatetime = DEFAULT_STARTED_AT
    attributes: dict[str, str] = Field(default_factory=dict)


class CaseInstance(_Strict):
    """The inventory record; unset identity fields are copied from the session."""

    provider: str | None = None
    account: str | None = None
    region: str | None = None
    instance_id: str | None = None
    instance_type: str | None = None
    accelerators: tuple[CaseAccelerator, ...] = ()


class CaseIntel(_Strict):
    """IP intelligence as the enricher would give it; ``ip`` defaults to the session's."""

    ip: str | None = None
    kind: IpKind = IpKind.PUBLIC
    country: str | None = None
    subdivision: str | None = None
    city: str | None = None
    asn: int | None = None
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ("policy case fixture",)
    unknown_reason: str | None = None


class CaseExpect(_Strict):
    """Expected decision of the pack (``policy: null`` = no decision)."""

    policy: str | None
    severity: Severity | None = None
    excepted: bool | None = None
    indeterminate: bool | None = None
    jurisdictions: tuple[str, ...] | None = None
    reasons_contain: tuple[str, ...] = ()


class Case(_Strict):
    """One case; ``covers``/``kind`` say which policy it exercises and how."""

    name: str = Field(min_length=1)
    description: str = ""
    covers: str | None = None
    kind: Literal["pass", "fail", "indeterminate"] | None = None
    now: UtcDatetime | None = None
    session: CaseSession = Field(default_factory=CaseSession)
    instance: CaseInstance | None
    intel: CaseIntel
    context: dict[str, str] = Field(default_factory=dict)
    expect: CaseExpect

    def to_input(self) -> EvaluationInput:
        """The ``EvaluationInput`` this case describes."""
        s = self.session
        session = Session(
            key=s.key or self.name,
            provider=s.provider,
            source=s.source,
            account=s.account,
            region=s.region,
            instance_id=s.instance_id,
            instance_type=s.instance_type,
            accelerators=tuple(Accelerator(model=a.model, count=a.count) for a in s.accelerators),
            principal=s.principal,
            source_ip=s.source_ip,
            method=s.method,
            outcome=s.outcome,
            started_at=s.started_at,
            attributes=s.attributes,
        )
        instance = None
        if self.instance is not None:
            i = self.instance
            instance = GpuInstance(
                provider=i.provider or s.provider,
                account=i.account or s.account or "unknown",
                region=i.region or s.region,
                instance_id=i.instance_id or s.instance_id or "unknown",
                instance_type=i.instance_type,
                accelerators=tuple(
                    Accelerator(model=a.model, count=a.count) for a in i.accelerators
                ),
            )
        n = self.intel
        intel = IpIntel(
            ip=n.ip or s.source_ip or "",
            kind=n.kind,
            country=n.country,
            subdivision=n.subdivision,
            city=n.city,
            asn=n.asn,
            tags=n.tags,
            sources=n.sources,
            unknown_reason=n.unknown_reason,
        )
        return EvaluationInput(
            session=session, instance=instance, intel=intel, context=self.context
        )


_CASES = TypeAdapter(list[Case])


def load_cases(path: Path) -> tuple[list[Case], list[str]]:
    """Parse and validate a cases file; ``PolicyError`` (file:line) if it is malformed."""
    try:
        doc = load_yaml(path)
    except UsageError as exc:
        raise PolicyError([exc.message]) from exc
    try:
        cases = _CASES.validate_python(doc.data)
    except ValidationError as exc:
        raise PolicyError(format_errors(exc, name=str(path), lines=doc.lines)) from exc
    return cases, [doc.where((i,)) for i in range(len(cases))]
