"""Offline EC2 instance type -> accelerators table (``data/instance_types.json``).

The table is generated from moto's DescribeInstanceTypes snapshot by
``data/generate_instance_types.py``; it lets a static inventory resolve ``p5.48xlarge``
without AWS credentials, and is the fallback when live DescribeInstanceTypes is denied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, RecordError
from agent.models import Accelerator
from providers.aws.normalize import accelerators_from_type_info

__all__ = ["DEFAULT_TABLE", "AwsInstanceCatalog"]

DEFAULT_TABLE = Path(__file__).with_name("data") / "instance_types.json"


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        accelerated = dict(table["accelerated"])
        known = frozenset(
            f"{family}.{size}" if size else family
            for family, sizes in table["known_types"].items()
            for size in sizes
        )
        provenance = dict(table.get("provenance") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"instance-type table is unreadable: {exc}",
            location=str(path),
            hint="regenerate it: python -m providers.aws.data.generate_instance_types",
        ) from exc
    return accelerated, provenance, known | frozenset(accelerated)


class AwsInstanceCatalog:
    """EC2 instance type -> accelerators with canonical chip ids, from the bundled table."""

    def __init__(self, *, path: Path | None = None) -> None:
        self.path = path or DEFAULT_TABLE
        self._accelerated, self.provenance, self._known = _load(self.path)
        self._cache: dict[str, tuple[Accelerator, ...]] = {}

    def known(self, instance_type: str) -> bool:
        """Whether ``instance_type`` is in the snapshot (GPU or not)."""
        return instance_type.strip().lower() in self._known

    def type_info(self, instance_type: str) -> Mapping[str, Any] | None:
        """The trimmed InstanceTypeInfo of an accelerated type, else ``None``."""
        info = self._accelerated.get(instance_type.strip().lower())
        return dict(info) if info is not None else None

    def accelerators(self, instance_type: str) -> tuple[Accelerator, ...] | None:
        """Accelerators of ``instance_type``; ``()`` = known without any; ``None`` = unknown."""
        key = instance_type.strip().lower()
        if key in self._cache:
            return self._cache[key]
        if key not in self._known:
            return None
        info = self._accelerated.get(key)
        try:
            result = accelerators_from_type_info(info) if info else ()
        except RecordError as exc:
            raise ConfigError(
                f"{key}: {exc.message}",
                location=str(self.path),
                hint="regenerate it: python -m providers.aws.data.generate_instance_types",
            ) from exc
        self._cache[key] = result
        return result

    def types(self) -> list[str]:
        """Every known instance type name, sorted."""
        return sorted(self._known)
