"""Which time range or which days a unit reads, from the audit window and its checkpoints
(pure). Also the S3 key layout of CloudTrail and VPC flow-log deliveries.

S3 layouts (AWS CloudTrail and VPC user guides):
  CloudTrail  <prefix>/AWSLogs/[<o-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/
              <account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz
  flow logs   <prefix>/AWSLogs/<account>/vpcflowlogs/<region>/YYYY/MM/DD/[HH/]
              <account>_vpcflowlogs_<region>_<flow-log-id>_<YYYYMMDDTHHmmZ>_<hash>.log.gz
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from agent.contracts import AuditWindow
from agent.models import ensure_utc

__all__ = [
    "CHECKPOINT_OVERLAP",
    "DELIVERY_SLACK",
    "LogCursor",
    "TimeRange",
    "day_prefix",
    "delivered_in",
    "flow_log_id",
    "key_time",
    "plan_days",
    "time_range",
]

CHECKPOINT_OVERLAP = timedelta(minutes=15)
"""Re-read this much before a time checkpoint: CloudTrail may surface events minutes late, and
re-reading is harmless (sessions are keyed by eventID)."""

DELIVERY_SLACK = timedelta(hours=1)
"""An object delivered up to this long after the window's end may still hold its events."""

_KEY_TIME = re.compile(r"_(\d{8}T\d{4}Z)_")
_FLOW_LOG_ID = re.compile(r"_vpcflowlogs_[a-z0-9-]+_(fl-[0-9a-zA-Z]+)_")


def day_prefix(
    *,
    prefix: str,
    account: str,
    service: str,
    region: str,
    day: date,
    organization_id: str | None = None,
) -> str:
    """The S3 key prefix of one account/region/day (``service``: CloudTrail or vpcflowlogs)."""
    parts = [prefix] if prefix else []
    parts.append("AWSLogs")
    if organization_id:
        parts.append(organization_id)
    parts += [account, service, region, f"{day:%Y/%m/%d}"]
    return "/".join(parts) + "/"


def key_time(key: str) -> datetime | None:
    """Delivery time written in a CloudTrail / flow-log object name, if any."""
    match = _KEY_TIME.search(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%MZ").replace(tzinfo=UTC)


def delivered_in(key: str, window: AuditWindow, now: datetime) -> bool:
    """Whether an object named ``key`` was delivered in the explicit ``window`` (objects are
    delivered minutes after their events: up to ``DELIVERY_SLACK`` after the end counts)."""
    delivered = key_time(key)
    if delivered is None:
        return True
    since = window.since or now - timedelta(hours=window.default_lookback_hours)
    until = window.until or now
    return ensure_utc(since) <= delivered <= ensure_utc(until) + DELIVERY_SLACK


def flow_log_id(key: str) -> str:
    """The flow log id in a delivery object name (objects sort by it before time)."""
    match = _FLOW_LOG_ID.search(key.rsplit("/", 1)[-1])
    return match.group(1) if match else "-"


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def plan_days(
    *, window: AuditWindow, now: datetime, marker: str | None, max_catchup_days: int
) -> list[date]:
    """UTC days whose prefixes a unit lists.

    An explicit window lists the days it overlaps. Otherwise: from the default lookback, or
    the last day a previous run reached (``marker``) when that is earlier, but never more
    than ``max_catchup_days`` back; up to today.
    """
    now = ensure_utc(now)
    lookback = now - timedelta(hours=window.default_lookback_hours)
    if window.explicit:
        since = ensure_utc(window.since) if window.since else lookback
        until = ensure_utc(window.until) if window.until else now
        return _days(since.date(), until.date())
    start = lookback.date()
    if marker:
        with contextlib.suppress(ValueError):
            start = min(start, date.fromisoformat(marker))
    start = max(start, now.date() - timedelta(days=max_catchup_days))
    return _days(start, now.date())


@dataclass(frozen=True)
class TimeRange:
    """[start, end] of a time-based read, and the checkpoint it resumed from."""

    start: datetime
    end: datetime
    floor: datetime | None
    writes_checkpoint: bool


def time_range(
    *, window: AuditWindow, now: datetime, saved: datetime | None, overlap: timedelta
) -> TimeRange:
    """The time range of a checkpointed read (LookupEvents, FilterLogEvents).

    Without an explicit window: from the checkpoint (minus ``overlap``) or the default lookback.
    An explicit window reads exactly itself and moves the checkpoint only when it starts at
    or before the saved one (otherwise events between the two would be skipped for good).
    """
    now = ensure_utc(now)
    lookback = now - timedelta(hours=window.default_lookback_hours)
    if window.explicit:
        since = ensure_utc(window.since) if window.since else lookback
        until = ensure_utc(window.until) if window.until else now
        return TimeRange(since, until, saved, saved is None or since <= saved)
    if saved is not None:
        return TimeRange(saved - overlap, now, saved, True)
    return TimeRange(lookback, now, None, True)


@dataclass(frozen=True)
class LogCursor:
    """CloudWatch Logs checkpoint: the newest timestamp (ms) and the events seen at it."""

    timestamp: int
    seen: frozenset[str]

    def encode(self) -> str:
        return f"{self.timestamp}|{','.join(sorted(self.seen))}"

    @classmethod
    def decode(cls, value: str | None) -> LogCursor | None:
        if not value:
            return None
        stamp, _, ids = value.partition("|")
        if not stamp.isdigit():
            return None
        return cls(int(stamp), frozenset(i for i in ids.split(",") if i))

    def skips(self, timestamp: int, event_key: str) -> bool:
        """True for an event this cursor already covers."""
        return timestamp < self.timestamp or (
            timestamp == self.timestamp and event_key in self.seen
        )

    def advance(self, timestamp: int, event_key: str) -> LogCursor:
        if timestamp > self.timestamp:
            return LogCursor(timestamp, frozenset({event_key}))
        if timestamp == self.timestamp:
            return LogCursor(timestamp, self.seen | {event_key})
        return self
