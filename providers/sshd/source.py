"""``sshd-log`` source: one OpenSSH auth log file of one host -> one batch of SSH sessions.

Every line is counted: it starts a session, or is ignored (not session-relevant, another
syslog host, only adds to a session such as a disconnect, or outside an explicit window),
or is quarantined (not syslog at all, or a malformed sshd line). So for each file
``read == sessions + ignored + quarantined``. A missing or unreadable file is a ScopeError.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.config import ResolvedPath
from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError, RecordError, SourceError
from agent.models import ScopeError
from providers.sshd.assemble import SessionAssembler, SshdTarget
from providers.sshd.parse import SyslogParser, infer_start_year

__all__ = ["InstanceSpec", "SshdLogConfig", "SshdLogSource"]

log = structlog.get_logger(__name__)

_READ_ERRORS = (OSError, EOFError, zlib.error)
_GZIP_MAGIC = b"\x1f\x8b"


class InstanceSpec(BaseModel):
    """The host this log belongs to (a log line never names its cloud instance)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1)
    account: str = Field(min_length=1)
    region: str | None = None
    instance_id: str = Field(min_length=1)


class SshdLogConfig(BaseModel):
    """Config of one ``sshd-log`` source entry.

    ``year``: year of the first classic-syslog line (default: inferred from the file's mtime);
    ``host``: keep only lines from this syslog host; ``timezone``: of classic timestamps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sshd-log"]
    path: ResolvedPath
    year: int | None = Field(default=None, ge=1970, le=9999)
    instance: InstanceSpec
    host: str | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


@dataclass
class _Tally:
    lines: int = 0
    started: int = 0
    ignored: int = 0
    quarantined: int = 0


class SshdLogSource:
    """Reads one sshd log (plain or gzip) and yields its sessions as one batch."""

    Config: ClassVar[type[BaseModel]] = SshdLogConfig

    def __init__(self, *, name: str, config: SshdLogConfig) -> None:
        self.name = name
        self.config = config
        self.target = SshdTarget(
            provider=config.instance.provider,
            account=config.instance.account,
            region=config.instance.region,
            instance_id=config.instance.instance_id,
        )
        self._tz: tzinfo = UTC if config.timezone == "UTC" else ZoneInfo(config.timezone)

    @classmethod
    def from_config(cls, config: SshdLogConfig | Mapping[str, Any], *, env: SourceEnv) -> Self:
        """Build from a validated config or a raw mapping (paths resolve against base_dir)."""
        if not isinstance(config, SshdLogConfig):
            try:
                config = SshdLogConfig.model_validate(
                    dict(config), context={"base_dir": env.base_dir}
                )
            except ValidationError as exc:
                raise ConfigError(
                    _problems(exc),
                    location=f"sources.{env.name}",
                    hint="an sshd-log source needs type, path and instance "
                    "{provider, account, instance_id}",
                ) from exc
        return cls(name=env.name, config=config)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch for the file; problems go to ``ctx`` (never raised).

        A read error mid-file is a ScopeError and still yields the sessions read before it.
        """
        path = self.config.path
        try:
            year = self._start_year(path)
        except _READ_ERRORS as exc:
            self._scope_error(ctx, path, exc)
            return
        parser = SyslogParser(year=year, tz=self._tz)
        assembler = SessionAssembler(target=self.target, source=self.name, locator=str(path))
        tally = _Tally()
        try:
            for n, line in enumerate(_read_lines(path), start=1):
                self._take(ctx, tally, parser, assembler, line=line, n=n)
        except _READ_ERRORS as exc:
            self._scope_error(ctx, path, exc)
            if tally.lines == 0:
                return
        sessions = assembler.sessions()
        if ctx.window.explicit:
            sessions = [s for s in sessions if ctx.window.contains(s.started_at)]
            outside = tally.started - len(sessions)
            ctx.count_ignored(outside)
            tally.ignored += outside
        log.info(
            "sshd_log_read",
            source=self.name,
            path=str(path),
            start_year=year,
            rollovers=parser.rollovers,
            lines=tally.lines,
            sessions=len(sessions),
            ignored=tally.ignored,
            quarantined=tally.quarantined,
        )
        ctx.on_progress(str(path), len(sessions))
        yield SessionBatch(unit=str(path), sessions=tuple(sessions))

    def _take(
        self,
        ctx: CollectContext,
        tally: _Tally,
        parser: SyslogParser,
        assembler: SessionAssembler,
        *,
        line: str,
        n: int,
    ) -> None:
        ctx.count_read()
        tally.lines += 1
        try:
            event = parser.parse(line) if line.strip() else None
        except RecordError as exc:
            ctx.quarantine(
                source=self.name,
                locator=str(self.config.path),
                position=f"line {n}",
                reason=exc.message,
            )
            tally.quarantined += 1
            return
        wanted = event is not None and self.config.host in (None, event.host)
        if event is not None and wanted and assembler.feed(event, line=n):
            tally.started += 1
            return
        ctx.count_ignored()
        tally.ignored += 1

    def _start_year(self, path: Path) -> int:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        if self.config.year is not None:
            return self.config.year
        year = infer_start_year(_read_lines(path), last_modified=mtime, tz=self._tz)
        log.debug("sshd_year_inferred", source=self.name, path=str(path), year=year)
        return year

    def _scope_error(self, ctx: CollectContext, path: Path, exc: BaseException) -> None:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        error = SourceError(
            f"cannot read sshd log {path}: {reason}",
            hint="check the path in the source config, and that chipwarden may read it "
            "(auth logs are often root:adm 0640)",
        )
        log.warning("sshd_log_unreadable", source=self.name, path=str(path), error=reason)
        ctx.scope_error(
            ScopeError(
                source=self.name,
                scope=str(path),
                code=error.code,
                message=error.message,
                remediation=error.hint,
            )
        )


def _read_lines(path: Path) -> Iterator[str]:
    """Lines of a plain or gzip file (gzip detected by magic bytes), undecodable bytes replaced."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        for chunk in stream:
            yield chunk.decode("utf-8", errors="replace").rstrip("\r\n")


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: "
        f"{'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
        for err in exc.errors()
    )
