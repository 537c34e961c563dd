"""Configuration: YAML file, overridden by ``CHIPWARDEN_*`` env vars, then by CLI flags.

Unknown keys are errors naming the key path and line. Relative paths resolve against the
config file's folder. Source and inventory entries are validated by their plug-in's own
``Config`` model, looked up in the registry by ``type``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic.functional_validators import AfterValidator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from agent.errors import ConfigError
from agent.yamlio import LineMap, YamlDocument, load_yaml, path_label

__all__ = [
    "AppConfig",
    "GeoConfig",
    "HistoryConfig",
    "OwnershipFile",
    "ReputationConfig",
    "ResolvedGlob",
    "ResolvedPath",
    "ScreeningConfig",
    "format_validation_error",
    "load_config",
    "resolve_sqlite_url",
]

ENV_PREFIX = "CHIPWARDEN_"
DEFAULT_STORE = "sqlite:///chipwarden.db"


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or Path.cwd())


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    return value if value.is_absolute() else (_base_dir(info) / value)


def _resolve_glob(value: str, info: ValidationInfo) -> str:
    expanded = os.path.expanduser(value)
    return expanded if os.path.isabs(expanded) else str(_base_dir(info) / expanded)


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path; relative values resolve against the config file's folder."""

ResolvedGlob = Annotated[str, AfterValidator(_resolve_glob)]
"""A glob pattern (``**`` allowed); relative patterns resolve against the config folder."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReputationConfig(_Strict):
    """IP reputation tags (Tor, hosting/VPN, China-HQ clouds, cloud ranges); no network."""

    enabled: bool = True
    data_dirs: list[ResolvedPath] | None = None  # default: bundled + user data folder
    tor_window_days: int = Field(default=7, ge=0, le=365)


class GeoConfig(_Strict):
    """IP databases: ``builtin`` (embedded RIR country data) or MaxMind-format ``.mmdb`` files."""

    country_db: str = "builtin"
    city_db: ResolvedPath | None = None
    asn_db: ResolvedPath | None = None
    anonymous_db: ResolvedPath | None = None  # MaxMind GeoIP Anonymous IP .mmdb
    reputation: ReputationConfig = Field(default_factory=ReputationConfig)

    def resolved_country_db(self, base_dir: Path) -> str:
        if self.country_db == "builtin":
            return self.country_db
        path = Path(self.country_db).expanduser()
        return str(path if path.is_absolute() else base_dir / path)


class OwnershipFile(_Strict):
    """An ownership CSV: provider,account,owner,ultimate_parent,parent_hq_country."""

    path: ResolvedPath


class ScreeningConfig(_Strict):
    """Consolidated Screening List export (CSV or JSON) and the fuzzy-match threshold."""

    path: ResolvedPath
    threshold: float = Field(default=90.0, ge=50.0, le=100.0)


class HistoryConfig(_Strict):
    """Principal-history signals (impossible travel, new country/ASN, working hours)."""

    enabled: bool = True
    keep: int = Field(default=50, ge=2, le=10_000)
    max_speed_kmh: float = Field(default=900.0, gt=0)
    min_sessions: int = Field(default=10, ge=2)
    hours_share: float = Field(default=0.8, gt=0, le=1)


class AppConfig(_Strict):
    """The whole config file (a contract: extend it, don't rename keys)."""

    store: str = DEFAULT_STORE
    inventory: list[dict[str, Any]] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    policies: list[str] = Field(default_factory=lambda: ["builtin:export-controls"])
    policy_engine: str = "yaml"
    classifier: str = "catalog"
    geo: GeoConfig = Field(default_factory=GeoConfig)
    notifiers: list[dict[str, Any]] = Field(default_factory=list)  # agent.notify targets
    ownership: list[OwnershipFile] = Field(default_factory=list)
    screening: ScreeningConfig | None = None
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    origin: str = Field(default="<defaults>", exclude=True)


class _EnvShape(BaseSettings):
    """Only used to let pydantic-settings parse ``CHIPWARDEN_*`` (nested with ``__``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )
    store: str | None = None
    policies: list[str] | None = None
    policy_engine: str | None = None
    classifier: str | None = None
    geo: dict[str, Any] | None = None
    sources: list[dict[str, Any]] | None = None
    inventory: list[dict[str, Any]] | None = None


def _env_overrides(environ: Mapping[str, str] | None) -> dict[str, Any]:
    source = EnvSettingsSource(_EnvShape, env_prefix=ENV_PREFIX, env_nested_delimiter="__")
    if environ is not None:
        source.env_vars = {k.lower(): v for k, v in environ.items()}
    values = source()
    return {k: v for k, v in values.items() if v is not None}


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def format_validation_error(
    exc: ValidationError, *, name: str, lines: LineMap | None, prefix: tuple[str | int, ...] = ()
) -> list[str]:
    """One ``file:line: key.path: message`` string per pydantic error."""
    out = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        line = lines.line_for(loc) if lines else None
        where = f"{name}:{line}" if line else name
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{where}: {path_label(loc) or '<root>'}: {msg}")
    return out


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """``sqlite:///rel.db`` written in a config file is relative to that file's folder."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    if not rest or rest.startswith("/") or rest.startswith(":memory:"):
        return url
    return prefix + str(base_dir / rest)


def load_config(
    path: Path | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[AppConfig, YamlDocument | None]:
    """Load ``path`` (or defaults), apply env then CLI overrides, validate strictly."""
    doc: YamlDocument | None = None
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        doc = load_yaml(path)
        if doc.data is None:
            doc.data = {}
        if not isinstance(doc.data, dict):
            raise ConfigError("the config must be a mapping of keys", location=f"{path}:1")
        raw = dict(doc.data)
        base_dir = path.resolve().parent
        if isinstance(raw.get("store"), str):
            raw["store"] = resolve_sqlite_url(raw["store"], base_dir)
    raw = _merge(raw, _env_overrides(environ))
    raw = _merge(raw, {k: v for k, v in (overrides or {}).items() if v is not None})
    raw["base_dir"] = base_dir
    raw["origin"] = str(path) if path else "<defaults>"
    try:
        config = AppConfig.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = format_validation_error(
            exc, name=str(path or "config"), lines=doc.lines if doc else None
        )
        raise ConfigError(
            "\n".join(problems), hint="see README 'Configuration' for the accepted keys"
        ) from exc
    return config, doc
