"""Offline Azure vmSize -> accelerator table (bundled ``sizes.yaml``, sources and verified flags).

Registered as ``chipwarden.instance_catalogs: azure`` so a static inventory can resolve
``Standard_ND96isr_H100_v5`` without talking to Azure.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import yaml

from agent.errors import ConfigError
from agent.models import Accelerator

__all__ = ["AzureSizeCatalog", "SizeEntry", "canonical_size"]

log = structlog.get_logger(__name__)

_PREFIX = "standard_"


def canonical_size(vm_size: str) -> str:
    """Lookup key of a size: lower-case, ``standard_`` prefix (Azure is case-insensitive)."""
    key = vm_size.strip().lower()
    return key if key.startswith(_PREFIX) else _PREFIX + key


@dataclass(frozen=True)
class SizeEntry:
    """One vmSize row: its accelerators plus where the fact comes from."""

    size: str
    series: str
    model: str
    count: float
    vendor: str | None
    source_name: str | None
    memory_mib: int | None
    source: str
    verified: bool

    def accelerator(self) -> Accelerator:
        return Accelerator(
            model=self.model,
            count=self.count,
            source_name=self.source_name,
            vendor=self.vendor,
            memory_mib=self.memory_mib,
        )


def _count(value: Any, *, where: str) -> float:
    try:
        count = float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"invalid GPU count {value!r}", location=where) from exc
    if count <= 0:
        raise ConfigError(f"GPU count must be positive, got {value!r}", location=where)
    return count


class AzureSizeCatalog:
    """vmSize -> accelerators from the bundled table (or ``path`` for a site-specific one)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            text = resources.files("providers.azure").joinpath("sizes.yaml").read_text("utf-8")
            origin = "providers/azure/sizes.yaml"
        else:
            text, origin = path.read_text("utf-8"), str(path)
        data = yaml.safe_load(text) or {}
        self.origin = origin
        self.as_of: str | None = data.get("as_of")
        families = data.get("gpu_families") or {}
        self._gpu_letters = tuple(str(x).lower() for x in families.get("letters", ()))
        self._entries: dict[str, SizeEntry] = {}
        for index, series in enumerate(data.get("series") or ()):
            where = f"{origin}:series[{index}]"
            for size, raw_count in (series.get("sizes") or {}).items():
                entry = SizeEntry(
                    size=str(size),
                    series=str(series["series"]),
                    model=str(series["model"]),
                    count=_count(raw_count, where=f"{where}.sizes.{size}"),
                    vendor=series.get("vendor"),
                    source_name=series.get("source_name"),
                    memory_mib=series.get("memory_mib"),
                    source=str(series.get("source", "")),
                    verified=bool(series.get("verified", False)),
                )
                key = canonical_size(entry.size)
                if key in self._entries:
                    raise ConfigError(f"duplicate size {size!r}", location=where)
                self._entries[key] = entry

    def lookup(self, vm_size: str) -> SizeEntry | None:
        """The table row of ``vm_size`` or ``None``."""
        return self._entries.get(canonical_size(vm_size))

    def is_gpu_family(self, vm_size: str) -> bool:
        """True when the size's family letter is a GPU family (N); unknown N sizes need the SKUs."""
        family = canonical_size(vm_size)[len(_PREFIX) :][:1]
        return bool(family) and family in self._gpu_letters

    def sizes(self) -> list[SizeEntry]:
        """Every row, for docs and tests."""
        return list(self._entries.values())

    def accelerators(self, instance_type: str) -> tuple[Accelerator, ...] | None:
        """Accelerators of ``instance_type``; ``()`` = family without GPU; ``None`` = unknown."""
        entry = self.lookup(instance_type)
        if entry is not None:
            return (entry.accelerator(),)
        if not instance_type.strip() or self.is_gpu_family(instance_type):
            return None
        return ()
