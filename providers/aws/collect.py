"""Turn a stream of CloudTrail records into sessions for one unit (a file, an account/region).

Shared by the file source and the live source: counts every record on the context, sets
malformed ones aside (quarantine), joins SSM TerminateSession end times across every record
of the unit (so a session that ends in a later file gets its end), and tracks the newest
event time for checkpoints. Each record may carry its own locator (an S3 object) and a tag
(the day it was read for) so the unit can be split into batches afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.contracts import CollectContext
from agent.errors import RecordError
from agent.models import Session
from providers.aws.normalize import (
    event_time,
    join_ssm_sessions,
    session_from_cloudtrail,
    ssm_session_end,
)

__all__ = ["RecordCollector"]


class RecordCollector:
    """Accumulates sessions from records of one unit and reports to ``ctx``.

    Every record is counted read, then becomes a session, an ignored record (not a session
    event, a TerminateSession, or outside an explicit window) or a quarantined one.
    """

    def __init__(
        self,
        *,
        ctx: CollectContext,
        source: str,
        locator: str,
        kind: str,
        filter_window: bool,
    ) -> None:
        self.ctx = ctx
        self.source = source
        self.locator = locator
        self.kind = kind
        self.filter_window = filter_window and ctx.window.explicit
        self.read = 0
        self.ignored = 0
        self.quarantined = 0
        self.newest: datetime | None = None
        self._sessions: list[tuple[str | None, Session]] = []
        self._ends: dict[str, datetime] = {}

    def add(
        self, record: Any, *, position: str, locator: str | None = None, tag: str | None = None
    ) -> None:
        """Count ``record`` and route it to sessions, ignored or quarantine."""
        self.ctx.count_read()
        self.read += 1
        where = locator or self.locator
        try:
            when = event_time(record)
            self.newest = when if self.newest is None else max(self.newest, when)
            if self.filter_window and not self.ctx.window.contains(when):
                self._ignore()
                return
            end = ssm_session_end(record)
            session = (
                None
                if end
                else session_from_cloudtrail(
                    record,
                    locator=where,
                    position=position,
                    source=self.source,
                    kind=self.kind,
                )
            )
        except RecordError as exc:
            self._quarantine(position=position, reason=exc.message, locator=where)
            return
        if end is not None:
            self._ends[end[0]] = min(end[1], self._ends.get(end[0], end[1]))
        if session is None:
            self._ignore()
        else:
            self._sessions.append((tag, session))

    def add_unparsable(self, *, position: str, reason: str, locator: str | None = None) -> None:
        """Count and quarantine a record that is not even valid JSON."""
        self.ctx.count_read()
        self.read += 1
        self._quarantine(position=position, reason=reason, locator=locator or self.locator)

    def add_ignored(self) -> None:
        """Count a record that is read but out of scope (another account or region)."""
        self.ctx.count_read()
        self.read += 1
        self._ignore()

    def _quarantine(self, *, position: str, reason: str, locator: str) -> None:
        self.quarantined += 1
        self.ctx.quarantine(source=self.source, locator=locator, position=position, reason=reason)

    def _ignore(self) -> None:
        self.ignored += 1
        self.ctx.count_ignored()

    def tagged(self) -> list[tuple[str | None, Session]]:
        """(tag, session) pairs with SSM end times and resumed targets joined."""
        joined = join_ssm_sessions([s for _, s in self._sessions], self._ends)
        return [(tag, s) for (tag, _), s in zip(self._sessions, joined, strict=True)]

    def sessions(self) -> tuple[Session, ...]:
        """The sessions so far, with SSM end times and resumed targets joined."""
        return tuple(s for _, s in self.tagged())
