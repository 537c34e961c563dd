"""``sshd-log`` source: one OpenSSH auth log file of one host -> one batch of SSH sessions.

``format: syslog`` (default) reads auth.log / secure text, ``format: journal-json`` reads
``journalctl -o json`` output. ``chipwarden watch`` follows the file instead (``follow_paths``
and ``line_parser``: the :class:`agent.contracts.FollowableSource` protocol).

Every line is counted: it starts a session, or is ignored (not session-relevant, another
syslog host, only adds to a session such as a disconnect, or outside an explicit window),
or is quarantined (not syslog at all, or a malformed sshd line). So for each file
``read == sessions + ignored + quarantined``. A missing or unreadable file is a ScopeError.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.config import ResolvedPath
from agent.contracts import Clock, CollectContext, SessionBatch, SourceEnv
from agent.errors import ConfigError, SourceError
from agent.models import ScopeError
from providers.sshd.assemble import SessionAssembler, SshdTarget
from providers.sshd.follow import LineOutcome, LineParse, SshdLineParser, take_line
from providers.sshd.journal import JournalParser
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

    ``format``: ``syslog`` text or ``journal-json`` (``journalctl -o json``); ``year``: year
    of the first classic-syslog line (default: inferred from the file's mtime); ``host``: keep
    only lines from this syslog host / ``_HOSTNAME``; ``timezone``: of classic timestamps.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sshd-log"]
    path: ResolvedPath
    format: Literal["syslog", "journal-json"] = "syslog"
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


class SshdLogSource:
    """Reads one sshd log (plain or gzip) and yields its sessions as one batch."""

    Config: ClassVar[type[BaseModel]] = SshdLogConfig

    def __init__(self, *, name: str, config: SshdLogConfig, clock: Clock | None = None) -> None:
        self.name = name
        self.config = config
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
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
        return cls(name=env.name, config=config, clock=env.clock)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch for the file; problems go to ``ctx`` (never raised).

        A read error mid-file is a ScopeError and still yields the sessions read before it.
        """
        path = self.config.path
        try:
            parser = self._parser(path, None)
        except _READ_ERRORS as exc:
            self._scope_error(ctx, path, exc)
            return
        assembler = SessionAssembler(target=self.target, source=self.name, locator=str(path))
        tally = dict.fromkeys(LineOutcome, 0)
        try:
            for n, line in enumerate(_read_lines(path), start=1):
                outcome = take_line(
                    ctx,
                    source=self.name,
                    locator=str(path),
                    parser=parser,
                    assembler=assembler,
                    host=self.config.host,
                    line=line,
                    n=n,
                )
                tally[outcome] += 1
        except _READ_ERRORS as exc:
            self._scope_error(ctx, path, exc)
            if sum(tally.values()) == 0:
                return
        sessions = assembler.sessions()
        ignored = tally[LineOutcome.IGNORED]
        if ctx.window.explicit:
            sessions = [s for s in sessions if ctx.window.contains(s.started_at)]
            outside = tally[LineOutcome.STARTED] - len(sessions)
            ctx.count_ignored(outside)
            ignored += outside
        log.info(
            "sshd_log_read",
            source=self.name,
            path=str(path),
            format=self.config.format,
            start_year=getattr(parser, "year", None),
            rollovers=parser.rollovers,
            lines=sum(tally.values()),
            sessions=len(sessions),
            ignored=ignored,
            quarantined=tally[LineOutcome.QUARANTINED],
        )
        ctx.on_progress(str(path), len(sessions))
        yield SessionBatch(unit=str(path), sessions=tuple(sessions))

    def follow_paths(self) -> list[Path]:
        """The one file this source follows in ``chipwarden watch``."""
        return [self.config.path]

    def line_parser(self, path: Path, *, state: Mapping[str, Any] | None) -> SshdLineParser:
        """Incremental parser for ``path``, resumed from ``state`` (open sessions, year)."""
        return SshdLineParser(
            source=self.name,
            target=self.target,
            locator=str(path),
            parser=self._parser(path, state),
            host=self.config.host,
            state=state,
        )

    def _parser(self, path: Path, state: Mapping[str, Any] | None) -> LineParse:
        return _FORMATS[self.config.format](self, path, state)

    def _syslog_parser(self, path: Path, state: Mapping[str, Any] | None) -> SyslogParser:
        if state is not None and state.get("year") is not None:
            return SyslogParser(year=int(state["year"]), tz=self._tz)
        year = self._start_year(path) if path.exists() else self._year_now()
        return SyslogParser(year=year, tz=self._tz)

    def _year_now(self) -> int:
        return self.config.year or self._clock().astimezone(self._tz).year

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


def _journal_parser(
    _source: SshdLogSource, _path: Path, _state: Mapping[str, Any] | None
) -> JournalParser:
    return JournalParser()


_FORMATS: dict[str, Callable[[SshdLogSource, Path, Mapping[str, Any] | None], LineParse]] = {
    "syslog": SshdLogSource._syslog_parser,
    "journal-json": _journal_parser,
}


MAX_LINE_BYTES = 64 * 1024
"""sshd lines are a few hundred bytes; a longer one is cut here so a hostile or corrupt file
(one 2 GB line) cannot exhaust memory. The cut line is then quarantined as unparseable."""


def _read_lines(path: Path) -> Iterator[str]:
    """Lines of a plain or gzip file (gzip detected by magic bytes), undecodable bytes replaced,
    each at most ``MAX_LINE_BYTES`` long."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        for chunk in _bounded_lines(stream):
            yield chunk.decode("utf-8", errors="replace").rstrip("\r\n")


def _bounded_lines(stream: Any) -> Iterator[bytes]:
    while line := stream.readline(MAX_LINE_BYTES):
        if len(line) < MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        skipped = 0
        while rest := stream.readline(MAX_LINE_BYTES):  # drop the rest of the line
            skipped += len(rest)
            if rest.endswith(b"\n"):
                break
        # Leading note: the parser rejects it as "not a syslog line" and it is quarantined.
        note = f"[over-long line of {len(line) + skipped} bytes cut] "
        yield note.encode() + line[:200]


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: "
        f"{'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
        for err in exc.errors()
    )
