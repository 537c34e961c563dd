"""GPU inventory: instances and the accelerators they carry (canonical chip model ids)."""

from __future__ import annotations

from pydantic import Field

from agent.models.base import Frozen, UtcDatetime
from agent.models.evidence import EvidenceRef

__all__ = ["Accelerator", "ExportClassification", "GpuInstance", "InstanceRef"]


class Accelerator(Frozen):
    """Accelerators of one model on an instance.

    ``model`` is the catalog's canonical id (``nvidia-h100``); ``count`` may be fractional
    (an AWS g6f partition is ``LogicalGpuCount x GpuPartitionSize``). ``source_name`` keeps the
    provider's own spelling (``H100``, ``nvidia-h100-80gb``) for the reviewer.
    """

    model: str
    count: float = Field(ge=0)
    source_name: str | None = None
    vendor: str | None = None
    memory_mib: int | None = None


class ExportClassification(Frozen):
    """A chip model's computed ECCN 3A090 class with the inputs behind it."""

    model: str
    export_class: str  # "3A090.a" | "3A090.b" | "not-controlled" | "unknown"
    tpp: float | None = None
    performance_density: float | None = None
    basis: str = ""
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @property
    def controlled(self) -> bool:
        return self.export_class in {"3A090.a", "3A090.b"}


class InstanceRef(Frozen):
    """Identity of a compute target: enough to look it up in the inventory."""

    provider: str
    account: str | None = None
    region: str | None = None
    instance_id: str | None = None


class GpuInstance(Frozen):
    """One compute instance (VM, host, node) and its accelerators; empty means no GPU."""

    provider: str
    account: str
    region: str | None = None
    instance_id: str
    instance_type: str | None = None
    accelerators: tuple[Accelerator, ...] = ()
    state: str | None = None
    name: str | None = None
    private_ips: tuple[str, ...] = ()
    public_ips: tuple[str, ...] = ()
    network_interfaces: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    launched_at: UtcDatetime | None = None
    evidence: EvidenceRef | None = None

    @property
    def has_accelerators(self) -> bool:
        return any(a.count > 0 for a in self.accelerators)

    @property
    def ref(self) -> InstanceRef:
        return InstanceRef(
            provider=self.provider,
            account=self.account,
            region=self.region,
            instance_id=self.instance_id,
        )
