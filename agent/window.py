"""Parse ``--since`` / ``--until``: durations (``24h``, ``7d``, ``30m``) or ISO 8601 times."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from agent.contracts import AuditWindow, Clock
from agent.errors import UsageError
from agent.models import ensure_utc

__all__ = ["build_window", "parse_when"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, now: datetime, option: str = "--since") -> datetime:
    """``7d`` -> now - 7 days; ISO text -> that instant (UTC if no offset)."""
    match = _DURATION.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        return ensure_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError as exc:
        raise UsageError(
            f"{option}: cannot read {value!r} as a duration or time",
            hint="use a duration such as 24h, 7d, 30m or an ISO time like 2026-11-01T00:00Z",
        ) from exc


def build_window(*, since: str | None, until: str | None, clock: Clock) -> AuditWindow:
    """The audit window; ``explicit`` only when the user gave ``--since``."""
    now = clock()
    start = parse_when(since, now=now) if since else None
    end = parse_when(until, now=now, option="--until") if until else None
    if start and end and start > end:
        raise UsageError(f"--since ({start.isoformat()}) is after --until ({end.isoformat()})")
    return AuditWindow(since=start, until=end, explicit=since is not None)
