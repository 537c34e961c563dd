"""``csv`` inventory: GPU hosts listed in a CSV file (on-prem boxes, clouds not queried live).

Header contract: ``provider,account,region,instance_id,instance_type`` plus optional
``private_ips,public_ips,enis`` (semicolon-separated), ``name``, ``accelerator_model`` and
``accelerator_count`` (explicit accelerators; ``;`` pairs several models). Without explicit
accelerators the provider's registered InstanceTypeCatalog resolves the instance type.
"""

from __future__ import annotations

import csv
import ipaddress
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TextIO

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from agent import registry
from agent.config import ResolvedPath
from agent.contracts import CollectContext, InstanceTypeCatalog, SourceEnv
from agent.errors import ConfigError, PluginError, RecordError, SourceError
from agent.models import Accelerator, EvidenceRef, GpuInstance, ScopeError

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "CsvInventory",
    "CsvInventoryConfig",
    "RowSpec",
    "parse_row",
]

log = structlog.get_logger(__name__)

REQUIRED_COLUMNS = ("provider", "account", "region", "instance_id", "instance_type")
OPTIONAL_COLUMNS = (
    "private_ips",
    "public_ips",
    "enis",
    "name",
    "accelerator_model",
    "accelerator_count",
)
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class CsvInventoryConfig(BaseModel):
    """Config of one ``csv`` inventory entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["csv"] = "csv"
    path: ResolvedPath


@dataclass(frozen=True)
class RowSpec:
    """One validated CSV row; ``accelerators`` is None when the row gives none explicitly."""

    provider: str
    account: str
    region: str | None
    instance_id: str
    instance_type: str | None
    name: str | None
    private_ips: tuple[str, ...]
    public_ips: tuple[str, ...]
    enis: tuple[str, ...]
    accelerators: tuple[Accelerator, ...] | None


def parse_row(values: Mapping[str, str]) -> RowSpec:
    """Validate one row (column -> raw text); RecordError names the offending column."""
    get = {k: (v or "").strip() for k, v in values.items()}
    for column in ("provider", "account", "instance_id"):
        if not get.get(column):
            raise RecordError(f"column {column!r} is empty")
    provider = get["provider"].lower()
    if not _PROVIDER_NAME.match(provider):
        raise RecordError(
            f"column 'provider' has {get['provider']!r}; expected a provider name such as 'aws'"
        )
    accelerators = _explicit_accelerators(
        get.get("accelerator_model", ""), get.get("accelerator_count", "")
    )
    if not get.get("instance_type") and accelerators is None:
        raise RecordError(
            "column 'instance_type' is empty and no accelerator_model/accelerator_count is given"
        )
    return RowSpec(
        provider=provider,
        account=get["account"],
        region=get.get("region") or None,
        instance_id=get["instance_id"],
        instance_type=get.get("instance_type") or None,
        name=get.get("name") or None,
        private_ips=_ips(get.get("private_ips", ""), column="private_ips"),
        public_ips=_ips(get.get("public_ips", ""), column="public_ips"),
        enis=_split(get.get("enis", "")),
        accelerators=accelerators,
    )


class CsvInventory:
    """Reads a static host list; bad rows are quarantined, the rest are returned."""

    Config: ClassVar[type[BaseModel]] = CsvInventoryConfig

    def __init__(self, *, name: str, config: CsvInventoryConfig) -> None:
        self.name = name
        self.config = config
        self._catalogs: dict[str, InstanceTypeCatalog | None] = {}

    @classmethod
    def from_config(cls, config: CsvInventoryConfig | Mapping[str, Any], *, env: SourceEnv) -> Self:
        """Build from a validated config or a raw mapping (paths resolve against base_dir)."""
        if not isinstance(config, CsvInventoryConfig):
            try:
                config = CsvInventoryConfig.model_validate(
                    dict(config), context={"base_dir": env.base_dir}
                )
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                raise ConfigError(
                    problems,
                    location=f"inventory.{env.name}",
                    hint="a csv inventory needs a 'path' to the CSV file",
                ) from exc
        return cls(name=env.name, config=config)

    def inventory(self, ctx: CollectContext) -> list[GpuInstance]:
        """Instances in file order; unreadable file or missing columns -> ScopeError, []."""
        path = self.config.path
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                return self._read(ctx, path, _numbered_rows(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._scope_error(ctx, path, f"cannot read CSV inventory {path}: {reason}")
            return []

    def _read(
        self, ctx: CollectContext, path: Path, rows: Iterator[tuple[int, list[str]]]
    ) -> list[GpuInstance]:
        _, header = next(rows, (0, []))
        columns = [c.strip().lower() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            self._scope_error(
                ctx, path, f"CSV inventory {path} lacks column(s) {', '.join(missing)}"
            )
            return []
        unknown = sorted(set(columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
        if unknown:
            log.warning("csv_inventory_unknown_columns", path=str(path), columns=unknown)
        out: list[GpuInstance] = []
        seen: dict[tuple[str, str, str | None, str], int] = {}
        for line, cells in rows:
            if not any(c.strip() for c in cells):
                continue
            try:
                spec = _row_spec(columns, cells)
                key = (spec.provider, spec.account, spec.region, spec.instance_id)
                if key in seen:
                    raise RecordError(f"duplicate of the instance on line {seen[key]}")
            except RecordError as exc:
                ctx.quarantine(
                    source=self.name,
                    locator=str(path),
                    position=f"line {line}",
                    reason=exc.message,
                )
                continue
            seen[key] = line
            out.append(self._instance(spec, path=path, line=line))
        log.info(
            "csv_inventory_read",
            source=self.name,
            path=str(path),
            instances=len(out),
            with_accelerators=sum(1 for i in out if i.has_accelerators),
        )
        return out

    def _instance(self, spec: RowSpec, *, path: Path, line: int) -> GpuInstance:
        accelerators = spec.accelerators
        if accelerators is None:
            accelerators = self._from_catalog(spec, line=line)
        return GpuInstance(
            provider=spec.provider,
            account=spec.account,
            region=spec.region,
            instance_id=spec.instance_id,
            instance_type=spec.instance_type,
            accelerators=accelerators,
            name=spec.name,
            private_ips=spec.private_ips,
            public_ips=spec.public_ips,
            network_interfaces=spec.enis,
            evidence=EvidenceRef(kind="file", locator=str(path), position=f"line {line}"),
        )

    def _from_catalog(self, spec: RowSpec, *, line: int) -> tuple[Accelerator, ...]:
        catalog = self._catalog(spec.provider)
        if catalog is None or spec.instance_type is None:
            return ()
        found = catalog.accelerators(spec.instance_type)
        if found is None:
            log.warning(
                "csv_inventory_unknown_instance_type",
                source=self.name,
                provider=spec.provider,
                instance_type=spec.instance_type,
                line=line,
            )
            return ()
        return found

    def _catalog(self, provider: str) -> InstanceTypeCatalog | None:
        if provider not in self._catalogs:
            try:
                catalog: InstanceTypeCatalog | None = registry.instance_catalogs.load(provider)()
            except PluginError as exc:
                log.warning(
                    "csv_inventory_no_catalog",
                    source=self.name,
                    provider=provider,
                    reason=exc.message,
                )
                catalog = None
            self._catalogs[provider] = catalog
        return self._catalogs[provider]

    def _scope_error(self, ctx: CollectContext, path: Path, message: str) -> None:
        error = SourceError(
            message,
            hint="the CSV needs the header "
            + ",".join(REQUIRED_COLUMNS)
            + " (optional: "
            + ",".join(OPTIONAL_COLUMNS)
            + ")",
        )
        log.warning("csv_inventory_unreadable", source=self.name, path=str(path), error=message)
        ctx.scope_error(
            ScopeError(
                source=self.name,
                scope=str(path),
                code=error.code,
                message=error.message,
                remediation=error.hint,
            )
        )


def _numbered_rows(handle: TextIO) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the file line each one ends on."""
    reader = csv.reader(handle)
    for cells in reader:
        yield reader.line_num, cells


def _row_spec(columns: list[str], cells: list[str]) -> RowSpec:
    if len(cells) > len(columns):
        raise RecordError(f"{len(cells)} values for {len(columns)} header columns")
    return parse_row(dict(zip(columns, cells, strict=False)))


def _explicit_accelerators(models: str, counts: str) -> tuple[Accelerator, ...] | None:
    if not models and not counts:
        return None
    if not models or not counts:
        raise RecordError("accelerator_model and accelerator_count must be given together")
    names, numbers = _split(models), _split(counts)
    if len(names) != len(numbers):
        raise RecordError(
            f"{len(names)} accelerator_model value(s) but {len(numbers)} accelerator_count value(s)"
        )
    return tuple(
        Accelerator(model=_slug(name), count=_count(number), source_name=name)
        for name, number in zip(names, numbers, strict=True)
    )


def _count(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RecordError(f"accelerator_count {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise RecordError(f"accelerator_count {text!r} must be a finite number >= 0")
    return value


def _ips(text: str, *, column: str) -> tuple[str, ...]:
    out = []
    for item in _split(text):
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise RecordError(f"column {column!r} has {item!r}, not an IP address") from None
    return tuple(out)


def _slug(name: str) -> str:
    """``NVIDIA H100`` -> ``nvidia-h100`` (catalog ids are lower-case kebab)."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(";") if part.strip())
