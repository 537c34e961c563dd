"""Line-at-a-time sshd parsing shared by whole-file reads and ``chipwarden watch``.

:func:`take_line` counts one line into a :class:`CollectContext` and feeds its event to the
assembler; :class:`SshdLineParser` is the :class:`agent.contracts.LineParser` of a followed
auth log or journal export. It emits a session at its ``Accepted`` line and the same session
(same key) again when its disconnect arrives, and saves the open sessions and the syslog year
with the file offset, so pairing survives rotation and restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog

from agent.contracts import CollectContext
from agent.errors import RecordError
from agent.models import Session
from providers.sshd.assemble import SessionAssembler, SshdTarget
from providers.sshd.parse import SshdEvent, SyslogParser

__all__ = ["LineOutcome", "LineParse", "SshdLineParser", "take_line"]

log = structlog.get_logger(__name__)

MAX_OPEN_SESSIONS = 1_000
"""Open sessions kept per followed file; older ones are dropped (their end never pairs).
Their state is saved with every batch, so the cap also bounds the checkpoint's size."""


class LineParse(Protocol):
    """What both line formats offer: ``parse`` a line, count year ``rollovers``."""

    rollovers: int

    def parse(self, line: str) -> SshdEvent | None: ...


class LineOutcome(StrEnum):
    """How one line was counted."""

    STARTED = "started"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"


def take_line(
    ctx: CollectContext,
    *,
    source: str,
    locator: str,
    parser: LineParse,
    assembler: SessionAssembler,
    host: str | None,
    line: str,
    n: int,
) -> LineOutcome:
    """Count line ``n``: it starts a session, is ignored (another host or program, or it only
    adds to a session) or is quarantined (not a log line, malformed sshd message)."""
    ctx.count_read()
    try:
        event = parser.parse(line) if line.strip() else None
    except RecordError as exc:
        ctx.quarantine(source=source, locator=locator, position=f"line {n}", reason=exc.message)
        return LineOutcome.QUARANTINED
    wanted = event is not None and host in (None, event.host)
    if event is not None and wanted and assembler.feed(event, line=n):
        return LineOutcome.STARTED
    ctx.count_ignored()
    return LineOutcome.IGNORED


class SshdLineParser:
    """Incremental parser of one followed sshd log (syslog text or ``journalctl -o json``)."""

    def __init__(
        self,
        *,
        source: str,
        target: SshdTarget,
        locator: str,
        parser: LineParse,
        host: str | None,
        state: Mapping[str, Any] | None = None,
        max_open: int = MAX_OPEN_SESSIONS,
    ) -> None:
        self.source = source
        self.locator = locator
        self.parser = parser
        self.host = host
        self.max_open = max_open
        self.assembler = SessionAssembler(target=target, source=source, locator=locator)
        if state:
            self._restore(state)

    def feed(
        self, lines: Sequence[str], *, first_line: int, ctx: CollectContext
    ) -> tuple[Session, ...]:
        """Sessions started or changed by ``lines``; every line is counted in ``ctx``."""
        for n, line in enumerate(lines, start=first_line):
            take_line(
                ctx,
                source=self.source,
                locator=self.locator,
                parser=self.parser,
                assembler=self.assembler,
                host=self.host,
                line=line,
                n=n,
            )
        return tuple(self.assembler.take_changed(max_open=self.max_open))

    def state(self) -> dict[str, Any]:
        """Open sessions plus, for syslog text, the year of classic timestamps."""
        state: dict[str, Any] = {"open": self.assembler.open_state()}
        if isinstance(self.parser, SyslogParser):
            last = self.parser.last_classic
            state["year"] = self.parser.year
            state["last_classic"] = last.isoformat() if last is not None else None
        return state

    def _restore(self, state: Mapping[str, Any]) -> None:
        try:
            if isinstance(self.parser, SyslogParser) and state.get("year") is not None:
                self.parser.year = int(state["year"])
                last = state.get("last_classic")
                self.parser.last_classic = datetime.fromisoformat(last) if last else None
            self.assembler.restore_open(state.get("open") or ())
        except (TypeError, ValueError) as exc:
            # A damaged state loses only the pairing of ends with starts read before it.
            log.warning("sshd_follow_state_ignored", source=self.source, error=str(exc))
            self.assembler = SessionAssembler(
                target=self.assembler.target, source=self.source, locator=self.locator
            )
