"""Plug-in registries: one per extension kind, names resolved lazily through entry points.

Built-ins are declared in pyproject.toml under ``chipwarden.<kind>`` exactly like third-party
plug-ins, so agent/ never imports providers/ or policies/ by name. A name may also be a dotted
``module:Attr`` path for a plug-in that is importable but not installed as a distribution.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from agent.errors import PluginError

__all__ = [
    "Registry",
    "classifiers",
    "instance_catalogs",
    "inventories",
    "policy_engines",
    "sources",
]


class Registry:
    """``name -> "module:Attr"`` map for one kind, loaded on first use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = f"chipwarden.{kind}"
        self._targets: dict[str, str | Callable[..., Any]] = {}
        self._loaded: dict[str, Any] = {}
        self._scanned = False

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        """Register ``name`` (tests and embedders); entry points need no call."""
        self._targets[name] = target
        self._loaded.pop(name, None)

    def _scan(self) -> None:
        if self._scanned:
            return
        for ep in entry_points(group=self.group):
            self._targets.setdefault(ep.name, ep.value)
        self._scanned = True

    def names(self) -> list[str]:
        self._scan()
        return sorted(self._targets)

    def load(self, name: str) -> Any:
        """The plug-in class for ``name``; ``PluginError`` lists what is installed."""
        if name in self._loaded:
            return self._loaded[name]
        self._scan()
        target = self._targets.get(name)
        if target is None and ":" in name:
            target = name
        if target is None:
            raise PluginError(
                f"unknown {self.kind} {name!r}; installed: {', '.join(self.names()) or 'none'}",
                hint="check the spelling, or install the package that provides it",
            )
        obj = _import(target) if isinstance(target, str) else target
        self._loaded[name] = obj
        return obj


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(
            f"cannot load plug-in {path!r}: {exc}",
            hint="reinstall chipwarden (pip install -e .) so its entry points are current",
        ) from exc
    return obj


sources = Registry("sources")
inventories = Registry("inventories")
policy_engines = Registry("policy_engines")
classifiers = Registry("classifiers")
instance_catalogs = Registry("instance_catalogs")
