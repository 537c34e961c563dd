"""Pure parser for systemd journal export lines (``journalctl -o json``), one object a line.

Shapes per systemd's "Journal JSON Format" (systemd.io/JOURNAL_EXPORT_FORMATS): values are
strings; a value that is not printable UTF-8 is an array of byte values; a field set several
times is an array of such values (the first is used); a value over 4096 bytes is null unless
``--all``. Fields used: ``MESSAGE``; ``SYSLOG_IDENTIFIER`` (else ``_COMM``, else an
``ssh[d].service`` / ``ssh[d]@*.service`` ``_SYSTEMD_UNIT`` means sshd); ``_PID`` (else
``SYSLOG_PID``); ``__REALTIME_TIMESTAMP`` (microseconds since the epoch, else
``_SOURCE_REALTIME_TIMESTAMP``); ``_HOSTNAME``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.errors import RecordError
from providers.sshd.parse import SshdEvent, event_from_message, is_sshd_program

__all__ = ["JournalParser", "journal_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SSH_UNIT = re.compile(r"^sshd?(?:@[^/]*)?\.service$")
_TIME_FIELDS = ("__REALTIME_TIMESTAMP", "_SOURCE_REALTIME_TIMESTAMP")


class JournalParser:
    """Line parser with the same ``parse(line)`` contract as ``SyslogParser``.

    ``rollovers`` is always 0 (journal timestamps carry the year).
    """

    rollovers = 0

    def parse(self, line: str) -> SshdEvent | None:
        """The sshd event in one JSON line; None for other units; RecordError for garbage."""
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise RecordError(f"not a journal JSON record: {_preview(line)}") from exc
        if not isinstance(record, dict):
            raise RecordError(f"journal line is a JSON {type(record).__name__}, not an object")
        program = _program(record)
        if program is None:
            return None
        message = _message(record.get("MESSAGE"))
        if message is None:
            raise RecordError("sshd journal record has no MESSAGE")
        return event_from_message(
            at=journal_time(record),
            host=_first(record, "_HOSTNAME") or "",
            program=program,
            pid=_pid(record),
            message=message,
        )


def journal_time(record: dict[str, Any]) -> datetime:
    """The record's wall-clock time (UTC) from its microsecond timestamp fields."""
    for name in _TIME_FIELDS:
        raw = _first(record, name)
        if raw is None:
            continue
        if not raw.isdigit():
            raise RecordError(f"{name} {raw!r} is not microseconds since the epoch")
        try:
            return _EPOCH + timedelta(microseconds=int(raw))
        except OverflowError as exc:
            raise RecordError(f"{name} {raw!r} is out of range") from exc
    raise RecordError("journal record has no __REALTIME_TIMESTAMP")


def _program(record: dict[str, Any]) -> str | None:
    """The sshd program name of the record, or None when another program logged it."""
    for name in ("SYSLOG_IDENTIFIER", "_COMM"):
        value = _first(record, name)
        if value is not None:
            return value if is_sshd_program(value) else None
    unit = _first(record, "_SYSTEMD_UNIT")
    return "sshd" if unit is not None and _SSH_UNIT.match(unit) else None


def _first(record: dict[str, Any], name: str) -> str | None:
    """First value of a field as text (multi-valued fields are arrays of values)."""
    value = record.get(name)
    if isinstance(value, list) and value and not _is_bytes(value):
        value = value[0]
    return _text(value, name)


def _message(value: Any) -> str | None:
    """MESSAGE text (None when absent, or null because it was over journalctl's size cap)."""
    if isinstance(value, list) and value and not _is_bytes(value):
        value = value[0]
    return _text(value, "MESSAGE")


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and _is_bytes(value):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RecordError(f"journal field {name} is a JSON {type(value).__name__}, not text")


def _is_bytes(value: list[Any]) -> bool:
    """journalctl writes a value that is not printable UTF-8 as an array of byte values."""
    return all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in value)


def _pid(record: dict[str, Any]) -> int | None:
    for name in ("_PID", "SYSLOG_PID"):
        raw = _first(record, name)
        if raw is not None:
            if not raw.isdigit():
                raise RecordError(f"journal field {name} {raw!r} is not a process id")
            return int(raw)
    return None


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
