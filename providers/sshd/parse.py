"""Pure parser for OpenSSH server lines in syslog files (auth.log, secure, syslog).

Accepts classic BSD syslog ``Mon DD HH:MM:SS host prog[pid]: msg`` (no year: the caller
supplies it, Dec->Jan rollover is tracked) and RFC 3339 ``2026-11-28T10:00:00.123+00:00 host
prog[pid]: msg`` (rsyslog high precision, journald short-iso). Programs ``sshd``,
``sshd-session`` (OpenSSH 9.8+), ``sshd-auth`` and ``sshd(pam_unix)``, with or without pid.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from agent.errors import RecordError
from agent.models import Frozen, UtcDatetime

__all__ = [
    "ROLLOVER_GAP",
    "EventKind",
    "SshdEvent",
    "SyslogParser",
    "event_from_message",
    "infer_start_year",
    "is_sshd_program",
    "parse_line",
]

ROLLOVER_GAP = timedelta(days=183)
"""A classic timestamp this far before the previous line means the year rolled over."""

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}


class EventKind(StrEnum):
    """Session-relevant sshd messages."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    INVALID_USER = "invalid_user"
    CONNECTION_CLOSED = "connection_closed"
    DISCONNECTED = "disconnected"
    RECEIVED_DISCONNECT = "received_disconnect"
    SESSION_CLOSED = "session_closed"

    @property
    def is_end(self) -> bool:
        """True for the messages that mark the end of a connection or session."""
        return self in _END_KINDS


_END_KINDS = frozenset(
    {
        EventKind.CONNECTION_CLOSED,
        EventKind.DISCONNECTED,
        EventKind.RECEIVED_DISCONNECT,
        EventKind.SESSION_CLOSED,
    }
)


class SshdEvent(Frozen):
    """One session-relevant sshd message; ``repeat`` > 1 for rsyslog "message repeated"."""

    kind: EventKind
    at: UtcDatetime
    host: str
    process: str
    pid: int | None = None
    user: str | None = None
    ip: str | None = None
    port: int | None = None
    method: str | None = None
    key_type: str | None = None
    fingerprint: str | None = None
    invalid_user: bool = False
    preauth: bool = False
    repeat: int = 1


# --- syslog framing -------------------------------------------------------------------------

_CLASSIC = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) "
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))? (?P<rest>\S.*)$"
)
_RFC3339 = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})) "
    r"(?P<rest>\S.*)$"
)
_HOST_PROG = re.compile(r"^(?P<host>\S+) (?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$")
_SSHD_PROGRAM = re.compile(r"^sshd(?:-session|-auth)?(?:\(pam_unix\))?$")
_REPEATED = re.compile(r"^message repeated (?P<n>\d+) times?: \[ ?(?P<inner>.*?) ?\]$")

# --- sshd messages --------------------------------------------------------------------------

_TAIL_KEY = r"(?: ssh2)?(?:: (?P<key_type>\S+) (?P<fp>\S+)(?: .*)?)?$"
_ACCEPTED = re.compile(
    r"^Accepted (?P<method>[\w-]+)(?:/[\w-]+)? for (?P<user>.*?) from (?P<ip>\S+) "
    r"port (?P<port>\d+)" + _TAIL_KEY
)
_FAILED = re.compile(
    r"^Failed (?P<method>[\w-]+)(?:/[\w-]+)? for (?P<invalid>invalid user )?(?P<user>.*?) "
    r"from (?P<ip>\S+) port (?P<port>\d+)" + _TAIL_KEY
)
_INVALID = re.compile(r"^Invalid user (?P<user>.*?) from (?P<ip>\S+)(?: port (?P<port>\d+))?$")
_CLOSED = re.compile(
    r"^Connection closed by (?:(?P<who>authenticating |invalid )?user (?P<user>.*?) )?"
    r"(?P<ip>\S+)(?: port (?P<port>\d+))?(?P<preauth> \[preauth\])?$"
)
_DISCONNECTED = re.compile(
    r"^Disconnected from (?:(?P<who>authenticating |invalid )?user (?P<user>.*?) )?"
    r"(?P<ip>\S+) port (?P<port>\d+)(?P<preauth> \[preauth\])?$"
)
_RECEIVED_PORT = re.compile(
    r"^Received disconnect from (?P<ip>\S+) port (?P<port>\d+): ?\d+: "
    r".*?(?P<preauth> \[preauth\])?$"
)
_RECEIVED_OLD = re.compile(
    r"^Received disconnect from (?P<ip>\S+): \d+: .*?(?P<preauth> \[preauth\])?$"
)
_SESSION_CLOSED = re.compile(
    r"^(?:pam_unix\(sshd[\w-]*:session\): )?session closed for user (?P<user>\S+)"
)

_PATTERNS: tuple[tuple[EventKind, re.Pattern[str]], ...] = (
    (EventKind.ACCEPTED, _ACCEPTED),
    (EventKind.FAILED, _FAILED),
    (EventKind.INVALID_USER, _INVALID),
    (EventKind.CONNECTION_CLOSED, _CLOSED),
    (EventKind.DISCONNECTED, _DISCONNECTED),
    (EventKind.RECEIVED_DISCONNECT, _RECEIVED_PORT),
    (EventKind.RECEIVED_DISCONNECT, _RECEIVED_OLD),
    (EventKind.SESSION_CLOSED, _SESSION_CLOSED),
)


@dataclass(frozen=True)
class _Frame:
    at: datetime
    host: str
    program: str | None
    pid: int | None
    message: str


class SyslogParser:
    """Stateful line parser; tracks the year of classic timestamps across Dec -> Jan.

    ``rollovers`` counts year bumps so far; ``last_classic`` is the newest classic timestamp.
    """

    def __init__(self, *, year: int, tz: tzinfo = UTC) -> None:
        self.year = year
        self.tz = tz
        self.rollovers = 0
        self.last_classic: datetime | None = None
        self._last_key: tuple[str | Any, ...] | None = None

    def parse(self, line: str) -> SshdEvent | None:
        """The sshd event on ``line``; None for other syslog lines; RecordError for garbage."""
        try:
            frame = self._frame(line.rstrip("\r\n"))
            if frame.program is None or not _SSHD_PROGRAM.match(frame.program):
                return None
            return _event(frame)
        except (ValueError, OverflowError) as exc:
            # int() of a >4300-digit pid/port, a time past datetime's range: bad record.
            raise RecordError(f"unreadable sshd line ({exc}): {_preview(line)}") from exc

    def _frame(self, line: str) -> _Frame:
        if m := _CLASSIC.match(line):
            at = self._classic_time(m)
        elif m := _RFC3339.match(line):
            try:
                at = datetime.fromisoformat(m["ts"])
            except ValueError as exc:
                raise RecordError(f"invalid RFC 3339 timestamp {m['ts']!r}: {exc}") from exc
        else:
            raise RecordError(f"not a syslog line: {_preview(line)}")
        rest = m["rest"]
        if hm := _HOST_PROG.match(rest):
            pid = int(hm["pid"]) if hm["pid"] else None
            return _Frame(at, hm["host"], hm["prog"], pid, hm["msg"])
        return _Frame(at, rest.split(" ", 1)[0], None, None, "")

    def _classic_time(self, m: re.Match[str]) -> datetime:
        key = m.group("mon", "day", "h", "m", "s", "frac")
        if key == self._last_key and self.last_classic is not None:
            return self.last_classic  # busy logs repeat the same second line after line
        month = _MONTHS.get(m["mon"])
        if month is None:
            raise RecordError(f"not a syslog line: unknown month {m['mon']!r}")
        micro = int((m["frac"] or "0")[:6].ljust(6, "0"))
        parts = (month, int(m["day"]), int(m["h"]), int(m["m"]), int(m["s"]), micro)
        at = self._at(self.year, parts)
        if self.last_classic is not None and at < self.last_classic - ROLLOVER_GAP:
            self.year += 1
            self.rollovers += 1
            at = self._at(self.year, parts)
        self.last_classic = at
        self._last_key = key
        return at

    def _at(self, year: int, parts: tuple[int, int, int, int, int, int]) -> datetime:
        month, day, hour, minute, second, micro = parts
        try:
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=self.tz)
        except ValueError as exc:
            raise RecordError(f"invalid syslog timestamp for year {year}: {exc}") from exc


def parse_line(line: str, *, year: int, tz: tzinfo = UTC) -> SshdEvent | None:
    """Parse one line on its own (no rollover tracking); see :meth:`SyslogParser.parse`."""
    return SyslogParser(year=year, tz=tz).parse(line)


def is_sshd_program(name: str | None) -> bool:
    """True for the program names OpenSSH's server logs under (sshd, sshd-session, ...)."""
    return name is not None and _SSHD_PROGRAM.match(name) is not None


def event_from_message(
    *, at: datetime, host: str, program: str | None, pid: int | None, message: str
) -> SshdEvent | None:
    """The sshd event in an already framed message (a journald record); None if not sshd's."""
    if not is_sshd_program(program):
        return None
    return _event(_Frame(at, host, program, pid, message))


def infer_start_year(lines: Iterable[str], *, last_modified: datetime, tz: tzinfo = UTC) -> int:
    """Year of the first classic line such that the last line is not after ``last_modified``.

    A log file's newest line is written just before its mtime, so count the Dec -> Jan
    rollovers in the file and step back from the mtime's year.
    """
    local_mtime = last_modified.astimezone(tz)
    probe = SyslogParser(year=local_mtime.year, tz=tz)
    for line in lines:
        m = _CLASSIC.match(line)
        if m is None:
            continue
        try:
            probe._classic_time(m)
        except RecordError:
            continue
    last = probe.last_classic
    if last is None or last <= local_mtime + timedelta(days=1):
        return local_mtime.year
    return local_mtime.year - max(1, last.year - local_mtime.year)


def _event(frame: _Frame) -> SshdEvent | None:
    message, repeat = frame.message.strip(), 1
    if rm := _REPEATED.match(message):
        message, repeat = rm["inner"], int(rm["n"])
    for kind, pattern in _PATTERNS:
        if m := pattern.match(message):
            return _build(kind, m, frame, repeat)
    return None


def _build(kind: EventKind, m: re.Match[str], frame: _Frame, repeat: int) -> SshdEvent:
    fields = m.groupdict()
    ip = _ip(fields["ip"]) if fields.get("ip") else None
    port = int(fields["port"]) if fields.get("port") else None
    if port is not None and not 0 < port < 65536:
        raise RecordError(f"{kind.value} line has an invalid port {port}")
    who = (fields.get("who") or "").strip()
    return SshdEvent(
        kind=kind,
        at=frame.at,
        host=frame.host,
        process=frame.program or "",
        pid=frame.pid,
        user=fields.get("user"),
        ip=ip,
        port=port,
        method=fields.get("method"),
        key_type=fields.get("key_type"),
        fingerprint=fields.get("fp"),
        invalid_user=kind is EventKind.INVALID_USER
        or bool(fields.get("invalid"))
        or who == "invalid",
        preauth=bool(fields.get("preauth")),
        repeat=repeat,
    )


def _ip(raw: str) -> str:
    """Canonical text of an address; IPv4-mapped IPv6 becomes plain IPv4."""
    try:
        addr = ipaddress.ip_address(raw)
    except ValueError as exc:
        raise RecordError(f"sshd line names {_preview(raw)} where an IP address belongs") from exc
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
