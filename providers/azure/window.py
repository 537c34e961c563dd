"""Read windows and checkpoints of the azure feeds (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from agent.contracts import CollectContext
from agent.errors import RecordError
from agent.models import Session
from providers.azure.normalize import parse_time

__all__ = ["Window", "merge_sessions", "next_checkpoint", "read_window"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Window:
    """What one feed reads: ``[start, end]``; ``after`` = previous checkpoint (strict bound)."""

    start: datetime
    end: datetime
    previous: datetime | None
    after: datetime | None

    def contains(self, when: datetime) -> bool:
        """Inclusive for explicit windows; strictly after ``start`` when resuming, so a
        record at the checkpoint itself is not read again (unless inside the overlap)."""
        if when > self.end:
            return False
        return when > self.start if self.after is not None else when >= self.start


def read_window(ctx: CollectContext, scope: str, *, now: datetime, overlap: timedelta) -> Window:
    """Explicit ``--since`` wins; else resume from the checkpoint (minus ``overlap``), else
    look back ``default_lookback_hours``."""
    raw = ctx.checkpoint(scope)
    try:
        previous = parse_time(raw, field=scope) if raw else None
    except RecordError:
        log.warning("azure_checkpoint_unreadable", scope=scope, value=raw)
        previous = None
    end = ctx.window.until or now
    if ctx.window.explicit and ctx.window.since is not None:
        return Window(ctx.window.since, end, previous, None)
    if previous is not None:
        return Window(previous - overlap, end, previous, previous)
    return Window(now - timedelta(hours=ctx.window.default_lookback_hours), end, None, None)


def next_checkpoint(previous: datetime | None, newest: datetime | None) -> str | None:
    """The newest record time when it moves the checkpoint forward, else None (keep it)."""
    if newest is None or (previous is not None and newest <= previous):
        return None
    return newest.astimezone(UTC).isoformat()


def merge_sessions(sessions: list[Session]) -> tuple[list[Session], int]:
    """One session per key (a Bastion tunnel logs a start and an end row)."""
    by_key: dict[str, Session] = {}
    for session in sessions:
        seen = by_key.get(session.key)
        if seen is None:
            by_key[session.key] = session
            continue
        ends = [e for e in (seen.ended_at, session.ended_at) if e is not None]
        by_key[session.key] = session.model_copy(
            update={
                "started_at": min(seen.started_at, session.started_at),
                "ended_at": max(ends) if ends else None,
                "evidence": (*seen.evidence, *session.evidence)[:5],
            }
        )
    return list(by_key.values()), len(sessions) - len(by_key)
