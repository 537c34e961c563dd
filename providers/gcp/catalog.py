"""Offline Google Cloud catalog: machine type -> accelerators, accelerator names -> chip ids.

Data lives in ``data/machine_types.yaml`` (domain.md section 4.2, each row with its sources and
confidence). Registered as ``chipwarden.instance_catalogs: gcp`` so static inventories and the
Kubernetes provider resolve ``a3-highgpu-8g`` without importing this package by name.
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError
from agent.models import Accelerator

__all__ = ["GcpMachineCatalog", "canonical_accelerator", "default_catalog", "short_name"]

_MEMORY_SUFFIX = re.compile(r"-\d+gb$")
_TPU_TYPE = re.compile(r"^(?P<gen>v\d+[a-z]*)-(?P<n>\d+)$")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    confidence: str = Field(pattern="^[VSCUE]$")
    sources: tuple[str, ...] = Field(min_length=1)
    notes: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.confidence == "V"


class AcceleratorName(_Row):
    """One API accelerator type name and the canonical chip id it maps to."""

    model: str


class MachineTypeRow(_Row):
    """A machine type that bundles ``count`` accelerators of ``accelerator`` (an API name)."""

    accelerator: str
    count: int = Field(gt=0)


class TpuGeneration(_Row):
    """A Cloud TPU generation prefix (``v4``) and how its type suffix counts chips."""

    model: str
    cores_per_chip: int = Field(gt=0)


class CatalogData(BaseModel):
    """The validated YAML file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    as_of: str
    accelerator_names: dict[str, AcceleratorName]
    accelerator_families: tuple[str, ...]
    general_families: tuple[str, ...]
    machine_types: dict[str, MachineTypeRow]
    tpu_generations: dict[str, TpuGeneration]


def short_name(value: str) -> str:
    """Last path segment of a Compute URL or partial URL (``zones/z/machineTypes/n1`` -> ``n1``)."""
    return value.rstrip("/").rsplit("/", 1)[-1]


def _generic_canonical(name: str) -> str:
    """Fallback spelling rule: drop ``tesla-``, ``-mega``, ``-vws`` and a memory suffix."""
    slug = name.lower().replace("nvidia-tesla-", "nvidia-")
    slug = _MEMORY_SUFFIX.sub("", slug)
    for token in ("-vws", "-mega"):
        slug = slug.replace(token, "")
    return slug


class GcpMachineCatalog:
    """Bundled machine-type and accelerator-name tables (``InstanceTypeCatalog``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.data = _load(path)

    # -- accelerator names -------------------------------------------------------------------

    def canonical(self, accelerator_type: str) -> str:
        """Chip id of an API accelerator name or URL (``nvidia-tesla-t4`` -> ``nvidia-t4``)."""
        name = short_name(accelerator_type).lower()
        row = self.data.accelerator_names.get(name)
        return row.model if row else _generic_canonical(name)

    def accelerator(self, accelerator_type: str, count: float) -> Accelerator:
        """One ``Accelerator`` from an API accelerator name and a count."""
        name = short_name(accelerator_type)
        model = self.canonical(name)
        vendor = model.split("-", 1)[0] if "-" in model else None
        return Accelerator(model=model, count=count, source_name=name, vendor=vendor)

    # -- machine types -----------------------------------------------------------------------

    @staticmethod
    def family(machine_type: str) -> str:
        """Machine family prefix (``a3-highgpu-8g`` -> ``a3``)."""
        return short_name(machine_type).split("-", 1)[0].lower()

    def bundles_accelerators(self, machine_type: str) -> bool:
        """True for accelerator-optimised families (A2/A3/A4/A4X/G2/G4)."""
        return self.family(machine_type) in self.data.accelerator_families

    def accelerators(self, instance_type: str) -> tuple[Accelerator, ...] | None:
        """Accelerators bundled with ``instance_type``; ``()`` = known, none; ``None`` = unknown."""
        name = short_name(instance_type).lower()
        row = self.data.machine_types.get(name)
        if row is not None:
            return (self.accelerator(row.accelerator, row.count),)
        family = self.family(name)
        if family in self.data.general_families:
            return ()
        return None

    # -- Cloud TPU -----------------------------------------------------------------------------

    def tpu_accelerators(
        self, accelerator_type: str, *, topology: str | None = None
    ) -> tuple[Accelerator, ...] | None:
        """Chips of a TPU node type (``v4-8`` -> 4 x google-tpu-v4); ``None`` if unknown."""
        match = _TPU_TYPE.match(accelerator_type.strip().lower())
        if match is None:
            return None
        gen = self.data.tpu_generations.get(match["gen"])
        if gen is None:
            return None
        chips = _topology_chips(topology)
        if chips is None:
            chips = max(1, int(match["n"]) // gen.cores_per_chip)
        return (
            Accelerator(
                model=gen.model, count=chips, source_name=accelerator_type, vendor="google"
            ),
        )


def _topology_chips(topology: str | None) -> int | None:
    if not topology:
        return None
    try:
        dims = [int(d) for d in topology.lower().split("x")]
    except ValueError:
        return None
    return math.prod(dims) if dims and all(d > 0 for d in dims) else None


def _load(path: Path | None) -> CatalogData:
    if path is None:
        text = resources.files("providers.gcp.data").joinpath("machine_types.yaml").read_text()
        label = "providers/gcp/data/machine_types.yaml"
    else:
        text, label = path.read_text(encoding="utf-8"), str(path)
    raw: Any = yaml.safe_load(text)
    try:
        return CatalogData.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid GCP machine-type catalog: {exc}",
            location=label,
            hint="fix the YAML row named in the error",
        ) from exc


@cache
def default_catalog() -> GcpMachineCatalog:
    """The bundled catalog, loaded once per process (read-only)."""
    return GcpMachineCatalog()


def canonical_accelerator(accelerator_type: str) -> str:
    """Canonical chip id for an API accelerator name, using the bundled table."""
    return default_catalog().canonical(accelerator_type)
