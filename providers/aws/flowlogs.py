"""``type: vpc-flow-files``: exported VPC flow-log files (plain or gzip) as sessions.

The files carry ENIs and private IPs, not instances: records are mapped to GPU instances
through the run's inventory (``ctx.inventory``: a live ``aws`` source, or the static CSV's
``private_ips`` / ``enis`` columns). Hits are folded across every file of the run into
sessions per (source IP, instance, port) with a gap timeout, emitted as one batch.
"""

from __future__ import annotations

import glob
import os
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import groupby
from pathlib import Path
from typing import Any, ClassVar, Self

import structlog
from pydantic import BaseModel, ValidationError

from agent.config import format_validation_error
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError
from agent.models import ScopeError
from providers.aws import flowfast
from providers.aws.bounded import text_lines
from providers.aws.flowfast import flow_unit_key, read_flow_stream
from providers.aws.flows import FlowReader
from providers.aws.flowsessions import FlowHit, TargetIndex, aggregate_hits
from providers.aws.settings import VpcFlowFilesConfig

__all__ = ["VpcFlowFilesConfig", "VpcFlowFilesSource"]

log = structlog.get_logger(__name__)

_DIR_SUFFIXES = (".log", ".log.gz", ".gz", ".txt")


def _expand(pattern: str) -> list[Path]:
    if os.path.isdir(pattern):
        root = Path(pattern)
        return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(_DIR_SUFFIXES)]
    return [Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]


class VpcFlowFilesSource:
    """VPC flow-log files on disk (an S3 sync, an export), mapped through the run's inventory."""

    Config: ClassVar[type[BaseModel]] = VpcFlowFilesConfig

    def __init__(self, *, name: str, config: VpcFlowFilesConfig) -> None:
        self.name = name
        self.config = config
        self._owns: Callable[[str], bool] | None = None

    def select_units(self, owns: Callable[[str], bool]) -> None:
        """Read only the files whose unit (account x region, ``flow_unit_key``) ``owns`` takes."""
        self._owns = owns

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated config or a raw mapping (relative globs use ``base_dir``)."""
        if not isinstance(config, VpcFlowFilesConfig):
            try:
                config = VpcFlowFilesConfig.model_validate(
                    config, context={"base_dir": env.base_dir}
                )
            except ValidationError as exc:
                problems = format_validation_error(exc, name=f"source {env.name}", lines=None)
                raise ConfigError(
                    "\n".join(problems),
                    hint="vpc-flow-files needs paths: [glob, ...]; see docs/aws.md",
                ) from exc
        return cls(name=env.name, config=config)

    def _error(self, ctx: CollectContext, scope: str, code: str, message: str, hint: str) -> None:
        ctx.scope_error(
            ScopeError(source=self.name, scope=scope, code=code, message=message, remediation=hint)
        )
        log.warning("vpc_flow_files_error", source=self.name, scope=scope, code=code)

    def files(self, ctx: CollectContext) -> list[Path]:
        """Sorted, de-duplicated files; a pattern matching nothing is a ScopeError."""
        found: set[Path] = set()
        for pattern in self.config.paths:
            matched = _expand(pattern)
            if not matched:
                self._error(
                    ctx,
                    pattern,
                    "no_files",
                    "no file matches this pattern (an audit of nothing is not clean)",
                    "check the path; relative paths resolve against the config file's folder",
                )
            found.update(matched)
        if self._owns is not None:
            owns = self._owns
            found = {p for p in found if owns(flow_unit_key(self.name, p))}
        return sorted(found)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch per unit (account x region): hits fold only within an instance, and an
        instance's records are all in its account and region, so memory stays bounded."""
        index = TargetIndex(ctx.inventory)
        files = self.files(ctx)
        if not len(index):
            self._error(
                ctx,
                "inventory",
                "no_inventory",
                "the run's inventory has no AWS GPU instance with ENIs or private IPs, so flow "
                "records cannot be mapped to instances",
                "add an aws source, or a static inventory with private_ips / enis columns",
            )
            return
        reader = FlowReader(options=self.config, index=index, source=self.name)
        units = sorted((flow_unit_key(self.name, p), p) for p in files)
        for unit, group in groupby(units, key=lambda item: item[0]):
            hits: list[FlowHit] = []
            for _, path in group:
                hits += self._read(ctx, reader, path)
            tagged, merged = aggregate_hits(
                hits, gap=timedelta(minutes=self.config.gap_minutes), source=self.name
            )
            ctx.count_ignored(merged)
            log.info(
                "vpc_flow_files_read", source=self.name, unit=unit, hits=len(hits),
                sessions=len(tagged),
            )  # fmt: skip
            yield SessionBatch(unit=unit, sessions=tuple(s for _, s in tagged))

    def _read(self, ctx: CollectContext, reader: FlowReader, path: Path) -> list[FlowHit]:
        """Hits of one file: the vectorised reader, or the per-line one where it declines."""
        before = ctx.read
        hits: list[FlowHit] = []
        try:
            with path.open("rb") as raw:
                fast = read_flow_stream(ctx, reader, raw, locator=str(path), account=None)
                if fast is None:
                    raw.seek(0)
                    lines = text_lines(raw, max_line=flowfast.CHUNK_BYTES)  # as the fast path
                    hits = reader.lines(ctx, lines, locator=str(path), account=None)
                else:
                    hits = fast[0]
        except (OSError, EOFError, zlib.error) as exc:
            self._error(
                ctx,
                str(path),
                "unreadable",
                f"cannot read: {exc}",
                "check the file exists, is readable and (if .gz) is complete",
            )
        ctx.on_progress(str(path), ctx.read - before)
        return hits
