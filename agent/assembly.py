"""Turn a validated AppConfig into plug-in instances through the registries.

Each ``sources[i]`` / ``inventory[i]`` entry is validated by its plug-in's own ``Config``
model, so an unknown key or a bad value is reported as ``file:line: sources[1].paths: ...``
before the audit starts (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agent import registry
from agent.config import AppConfig, format_validation_error
from agent.contracts import (
    AcceleratorClassifier,
    Clock,
    InventorySource,
    PolicyEngine,
    SessionSource,
    SourceEnv,
)
from agent.errors import ConfigError, PluginError
from agent.yamlio import YamlDocument

__all__ = ["Plugins", "build_classifier", "build_engine", "build_plugins"]


@dataclass
class Plugins:
    """Instantiated sources; a plug-in may serve inventory, sessions, or both."""

    inventories: list[InventorySource]
    sources: list[Any]

    @property
    def session_sources(self) -> list[SessionSource]:
        return [s for s in self.sources if hasattr(s, "sessions")]

    @property
    def inventory_sources(self) -> list[InventorySource]:
        return [*self.inventories, *(s for s in self.sources if hasattr(s, "inventory"))]


def _build(
    kind: registry.Registry,
    specs: Sequence[dict[str, Any]],
    *,
    key: str,
    default_type: str | None,
    config: AppConfig,
    doc: YamlDocument | None,
    clock: Clock,
) -> list[Any]:
    built = []
    problems: list[str] = []
    name = doc.name if doc else config.origin
    for index, spec in enumerate(specs):
        where = doc.where((key, index)) if doc else name
        if not isinstance(spec, dict):
            problems.append(f"{where}: {key}[{index}]: must be a mapping")
            continue
        type_name = spec.get("type", default_type)
        if not type_name:
            problems.append(f"{where}: {key}[{index}].type: required")
            continue
        try:
            cls = kind.load(str(type_name))
        except PluginError as exc:
            problems.append(f"{where}: {key}[{index}].type: {exc.message}")
            continue
        config_model: type[BaseModel] = cls.Config
        data = dict(spec)
        if default_type and "type" not in data and "type" in config_model.model_fields:
            data["type"] = default_type
        try:
            parsed = config_model.model_validate(data, context={"base_dir": config.base_dir})
        except ValidationError as exc:
            problems.extend(
                format_validation_error(
                    exc, name=name, lines=doc.lines if doc else None, prefix=(key, index)
                )
            )
            continue
        env = SourceEnv(name=f"{type_name}[{index}]", base_dir=config.base_dir, clock=clock)
        built.append(cls.from_config(parsed, env=env))
    if problems:
        raise ConfigError("\n".join(problems), hint="see README 'Configuration'")
    return built


def build_plugins(config: AppConfig, *, doc: YamlDocument | None, clock: Clock) -> Plugins:
    """Instantiate every inventory and source named in the config."""
    inventories = _build(
        registry.inventories,
        config.inventory,
        key="inventory",
        default_type="csv",
        config=config,
        doc=doc,
        clock=clock,
    )
    sources = _build(
        registry.sources,
        config.sources,
        key="sources",
        default_type=None,
        config=config,
        doc=doc,
        clock=clock,
    )
    return Plugins(inventories=inventories, sources=sources)


def build_classifier(config: AppConfig) -> AcceleratorClassifier:
    """The chip classifier named by ``classifier`` (default: the bundled catalog)."""
    classifier: AcceleratorClassifier = registry.classifiers.load(config.classifier)()
    return classifier


def build_engine(
    config: AppConfig, *, clock: Clock, refs: Sequence[str] | None = None
) -> PolicyEngine:
    """The policy engine named by ``policy_engine`` loaded with the configured packs."""
    engine_cls = registry.policy_engines.load(config.policy_engine)
    engine: PolicyEngine = engine_cls.from_refs(
        list(refs if refs is not None else config.policies), base_dir=config.base_dir, clock=clock
    )
    return engine
