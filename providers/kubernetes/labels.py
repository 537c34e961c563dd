"""Node label values (GPU feature discovery, GKE, AMD labeller) -> canonical chip ids.

The tables live in ``data/accelerator_labels.yaml`` (data, not code); this module validates them
and answers lookups. Unknown values map to a ``<vendor>-<slug>`` id so the classifier reports
them as ``unknown`` rather than dropping the accelerator.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError
from agent.yamlio import loads_yaml

__all__ = ["LabelCatalog", "LabelMatch"]

_DATA = "data/accelerator_labels.yaml"
_NVIDIA_SUFFIX = re.compile(r"(-MIG-.*|-SHARED)$", re.IGNORECASE)
_VENDOR_WORDS = re.compile(r"^(NVIDIA|TESLA)[-_ ]+", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Target(_Strict):
    model: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    verified: bool = False


class _Pattern(_Target):
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value


class _Tables(_Strict):
    nvidia_product_patterns: tuple[_Pattern, ...]
    gke_accelerators: dict[str, _Target]
    gke_tpu_accelerators: dict[str, _Target]
    amd_product_patterns: tuple[_Pattern, ...]
    amd_device_ids: dict[str, _Target]


class LabelMatch(_Strict):
    """A chip id derived from a label value; ``verified`` mirrors the table row (False = guess)."""

    model: str
    source_name: str
    verified: bool


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


class LabelCatalog:
    """Lookups over the bundled (or a given) label table."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables
        self._nvidia = [
            (re.compile(p.pattern, re.IGNORECASE), p) for p in tables.nvidia_product_patterns
        ]
        self._amd = [(re.compile(p.pattern, re.IGNORECASE), p) for p in tables.amd_product_patterns]

    @classmethod
    def load(cls, path: Path | None = None) -> Self:
        """Load ``path`` or the bundled table; ``ConfigError`` names the file on bad data."""
        if path is None:
            text = resources.files("providers.kubernetes").joinpath(_DATA).read_text("utf-8")
            name = f"providers/kubernetes/{_DATA}"
        else:
            text, name = path.read_text("utf-8"), str(path)
        doc = loads_yaml(text, name=name)
        try:
            return cls(_Tables.model_validate(doc.data))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = tuple(first["loc"])
            raise ConfigError(
                f"{'.'.join(str(p) for p in loc)}: {first['msg']}",
                location=doc.where(loc),
                hint="fix the accelerator label table",
            ) from exc

    def nvidia_product(self, value: str) -> LabelMatch:
        """``nvidia.com/gpu.product`` value -> chip id (``nvidia-<slug>`` when unknown)."""
        core = _VENDOR_WORDS.sub("", _NVIDIA_SUFFIX.sub("", value.strip()))
        core = core.replace("_", "-").replace(" ", "-")
        for regex, row in self._nvidia:
            if regex.search(core):
                return LabelMatch(model=row.model, source_name=value, verified=row.verified)
        return LabelMatch(model=f"nvidia-{_slug(core)}", source_name=value, verified=False)

    def gke_accelerator(self, value: str) -> LabelMatch:
        """``cloud.google.com/gke-accelerator`` value -> chip id."""
        row = self._tables.gke_accelerators.get(value.strip().lower())
        if row is not None:
            return LabelMatch(model=row.model, source_name=value, verified=row.verified)
        rest = re.sub(r"^nvidia-(tesla-)?", "", value.strip().lower())
        rest = re.sub(r"-\d+gb$", "", rest)
        return LabelMatch(model=f"nvidia-{_slug(rest)}", source_name=value, verified=False)

    def gke_tpu(self, value: str) -> LabelMatch:
        """``cloud.google.com/gke-tpu-accelerator`` value -> chip id."""
        row = self._tables.gke_tpu_accelerators.get(value.strip().lower())
        if row is not None:
            return LabelMatch(model=row.model, source_name=value, verified=row.verified)
        return LabelMatch(model=f"google-{_slug(value)}", source_name=value, verified=False)

    def amd_product(self, *, product: str | None, device_id: str | None) -> LabelMatch:
        """AMD labeller product name and/or PCI device id -> chip id."""
        if product:
            core = product.replace("_", "-").replace(" ", "-")
            for regex, row in self._amd:
                if regex.search(core):
                    return LabelMatch(model=row.model, source_name=product, verified=row.verified)
        if device_id:
            row_id = self._tables.amd_device_ids.get(device_id.strip().lower().removeprefix("0x"))
            if row_id is not None:
                return LabelMatch(
                    model=row_id.model, source_name=product or device_id, verified=row_id.verified
                )
        name = product or device_id or "unknown"
        core = re.sub(r"^AMD[-_ ]+(INSTINCT[-_ ]+)?", "", name, flags=re.IGNORECASE)
        return LabelMatch(model=f"amd-{_slug(core)}", source_name=name, verified=False)
