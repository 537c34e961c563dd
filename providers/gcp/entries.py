"""Pure helpers for Cloud Logging ``LogEntry`` dicts: timestamps, cursors, common fields.

A cursor is ``(timestamp, insertId)`` with the timestamp normalised to nanosecond RFC 3339 in
UTC, so cursors compare in the order ``entries.list`` returns entries (timestamp ascending,
then insertId for equal timestamps). Checkpoint values are ``"<timestamp>|<insertId>"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.errors import RecordError
from agent.models import EvidenceRef, Outcome

__all__ = [
    "Cursor",
    "as_dict",
    "caller_ip",
    "entry_cursor",
    "entry_key",
    "entry_project",
    "evidence",
    "format_timestamp",
    "outcome_from_status",
    "parse_timestamp",
    "principal",
]

_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?\s*(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)
_LOG_PROJECT = re.compile(r"^projects/(?P<project>[^/]+)/logs/")

# google.rpc.Code values that mean "not allowed" rather than "broken".
_DENIED_CODES = frozenset({7, 16})  # PERMISSION_DENIED, UNAUTHENTICATED


@dataclass(frozen=True, order=True)
class Cursor:
    """Position of an entry in ``entries.list`` order; serialised as a checkpoint value."""

    timestamp: str
    insert_id: str

    def serialize(self) -> str:
        return f"{self.timestamp}|{self.insert_id}"

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """Parse a stored checkpoint; ``None`` or a malformed value means "no checkpoint"."""
        if not value or "|" not in value:
            return None
        ts, _, insert_id = value.partition("|")
        try:
            _, canonical = parse_timestamp(ts)
        except RecordError:
            return None
        return cls(canonical, insert_id)

    @property
    def when(self) -> datetime:
        return parse_timestamp(self.timestamp)[0]


def parse_timestamp(value: Any) -> tuple[datetime, str]:
    """RFC 3339 (or ``YYYY-MM-DD HH:MM:SS.fffffffff``, taken as UTC) -> (UTC datetime, canonical).

    The canonical string keeps all nine fractional digits so no two distinct timestamps collide.
    """
    if not isinstance(value, str):
        raise RecordError(f"timestamp must be a string, got {type(value).__name__}")
    match = _TS.match(value.strip())
    if match is None:
        raise RecordError(f"timestamp {value!r} is not RFC 3339")
    frac = (match["frac"] or "").ljust(9, "0")
    try:
        base = datetime.fromisoformat(f"{match['date']}T{match['time']}")
    except ValueError as exc:
        raise RecordError(f"timestamp {value!r} is not a valid date: {exc}") from exc
    tz = match["tz"]
    offset = timedelta(0)
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        utc = (base - offset).replace(tzinfo=UTC)
        when = utc + timedelta(microseconds=int(frac[:6]))
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before datetime.min
        raise RecordError(f"timestamp {value!r} is out of range") from exc
    return when, f"{utc:%Y-%m-%dT%H:%M:%S}.{frac}Z"


def format_timestamp(when: datetime) -> str:
    """A datetime as the canonical nanosecond RFC 3339 string used in filters and cursors."""
    utc = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}000Z"


def as_dict(value: Any, field: str) -> dict[str, Any]:
    """``value`` if it is a mapping, ``{}`` if absent; a wrong type is a ``RecordError``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{field} must be an object, got {type(value).__name__}")
    return value


def entry_cursor(entry: Any) -> Cursor:
    """The entry's cursor; raises ``RecordError`` when timestamp or insertId is unusable."""
    if not isinstance(entry, dict):
        raise RecordError(f"log entry must be an object, got {type(entry).__name__}")
    insert_id = entry.get("insertId")
    if not isinstance(insert_id, str) or not insert_id:
        raise RecordError("log entry has no insertId")
    _, canonical = parse_timestamp(entry.get("timestamp"))
    return Cursor(canonical, insert_id)


def entry_project(entry: dict[str, Any], default: str) -> str:
    """Project id from ``logName`` (always the id, never the number), else ``default``."""
    match = _LOG_PROJECT.match(str(entry.get("logName") or ""))
    return match["project"] if match else default


def entry_key(entry: dict[str, Any], project: str, cursor: Cursor) -> str:
    """Natural key of one entry: project, insertId and timestamp (Logging's own identity)."""
    return f"{project}/{cursor.insert_id}/{cursor.timestamp}"


def caller_ip(proto: dict[str, Any]) -> str | None:
    """``requestMetadata.callerIp`` (``callerIP`` in some exports), verbatim."""
    meta = as_dict(proto.get("requestMetadata"), "protoPayload.requestMetadata")
    value = meta.get("callerIp") or meta.get("callerIP")
    return str(value) if value else None


def principal(proto: dict[str, Any]) -> tuple[str | None, str | None]:
    """(principal, principal_type) from ``authenticationInfo``; both ``None`` when redacted."""
    auth = as_dict(proto.get("authenticationInfo"), "protoPayload.authenticationInfo")
    email = auth.get("principalEmail")
    if isinstance(email, str) and email:
        if email.endswith(".gserviceaccount.com"):
            return email, "service-account"
        return email, "user"
    subject = auth.get("principalSubject")
    if isinstance(subject, str) and subject:
        kind = "workforce-identity" if subject.startswith("principal://") else "subject"
        return subject, kind
    return None, None


def outcome_from_status(proto: dict[str, Any]) -> Outcome:
    """``status.code`` absent or 0 -> success; 7/16 -> denied; anything else -> failed."""
    status = as_dict(proto.get("status"), "protoPayload.status")
    code = status.get("code")
    if code in (None, 0, "0", "OK"):
        return Outcome.SUCCESS
    try:
        number = int(code)
    except (TypeError, ValueError):
        return Outcome.FAILED
    return Outcome.DENIED if number in _DENIED_CODES else Outcome.FAILED


def evidence(entry: dict[str, Any], cursor: Cursor, method_name: str | None) -> EvidenceRef:
    """Pointer back to the entry: Logging API, log name, insertId."""
    log_name = str(entry.get("logName") or "logging:entries.list")
    return EvidenceRef(
        kind="api",
        locator=f"logging:{log_name}",
        position=cursor.timestamp,
        event_id=cursor.insert_id,
        event_name=method_name,
    )
