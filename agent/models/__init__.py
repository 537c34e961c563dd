"""Frozen pydantic v2 models: the vocabulary every port and adapter speaks."""

from agent.models.base import Frozen, Severity, UtcDatetime, ensure_utc
from agent.models.evaluation import EvaluationInput
from agent.models.evidence import EvidenceRef
from agent.models.finding import Decision, Finding, FindingStatus, InstanceView, finding_id
from agent.models.intel import IpIntel, IpKind
from agent.models.inventory import Accelerator, ExportClassification, GpuInstance, InstanceRef
from agent.models.run import AuditRun, QuarantinedRecord, RunCounts, RunStatus, ScopeError
from agent.models.session import AccessMethod, Outcome, Session

__all__ = [
    "Accelerator",
    "AccessMethod",
    "AuditRun",
    "Decision",
    "EvaluationInput",
    "EvidenceRef",
    "ExportClassification",
    "Finding",
    "FindingStatus",
    "Frozen",
    "GpuInstance",
    "InstanceRef",
    "InstanceView",
    "IpIntel",
    "IpKind",
    "Outcome",
    "QuarantinedRecord",
    "RunCounts",
    "RunStatus",
    "ScopeError",
    "Session",
    "Severity",
    "UtcDatetime",
    "ensure_utc",
    "finding_id",
]
