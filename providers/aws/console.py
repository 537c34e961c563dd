"""Console-started sessions: attribute them to the principal's last ConsoleLogin IP (pure).

A Session Manager (or Instance Connect) session started from the AWS console carries an
AWS-internal ``userAgent`` (``aws-internal/...``) and an AWS-owned ``sourceIPAddress``; the
person's address is the one of their most recent successful ``ConsoleLogin`` within
``CONSOLE_LOOKBACK`` before the session (domain.md 6.1). The login may sit in an earlier file
or an earlier run, so the newest login per principal is persisted as a checkpoint value.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.models import AccessMethod, EvidenceRef, Outcome, Session, ensure_utc

__all__ = [
    "CONSOLE_LOOKBACK",
    "ConsoleLogin",
    "LoginIndex",
    "attribute_console_session",
    "checkpoint_scope",
    "decode_login",
    "encode_login",
    "is_console_started",
    "login_from_session",
]

CONSOLE_LOOKBACK = timedelta(hours=12)
"""How far before a console-started session its principal's ConsoleLogin may be."""

_SCOPE_PREFIX = "aws:console-login:"


@dataclass(frozen=True)
class ConsoleLogin:
    """A successful console sign-in: who, from where, when, and the event behind it."""

    principal: str
    ip: str
    time: datetime
    evidence: EvidenceRef


def is_console_started(session: Session) -> bool:
    """True for a non-login session whose caller is the AWS console on the user's behalf."""
    if session.method is AccessMethod.CONSOLE:
        return False
    agent = session.user_agent or ""
    ip = session.source_ip or ""
    return agent.startswith("aws-internal") or ip.endswith(".amazonaws.com") or ip == "AWS Internal"


def login_from_session(session: Session) -> ConsoleLogin | None:
    """The ConsoleLogin behind a successful console session, else ``None``."""
    if (
        session.method is not AccessMethod.CONSOLE
        or session.outcome is not Outcome.SUCCESS
        or not session.principal
        or not session.source_ip
    ):
        return None
    evidence = session.evidence[0] if session.evidence else EvidenceRef(kind="api", locator="?")
    return ConsoleLogin(session.principal, session.source_ip, session.started_at, evidence)


def checkpoint_scope(principal: str) -> str:
    """Checkpoint scope holding a principal's newest ConsoleLogin."""
    return f"{_SCOPE_PREFIX}{principal}"


def encode_login(login: ConsoleLogin) -> str:
    """``ip|time|eventID`` (the checkpoint value)."""
    return f"{login.ip}|{login.time.isoformat()}|{login.evidence.event_id or ''}"


def decode_login(principal: str, value: str | None) -> ConsoleLogin | None:
    """A persisted login, or ``None`` when absent or unreadable."""
    if not value:
        return None
    parts = value.split("|")
    if len(parts) < 2 or not parts[0]:
        return None
    try:
        when = ensure_utc(datetime.fromisoformat(parts[1]))
    except ValueError:
        return None
    evidence = EvidenceRef(
        kind="checkpoint",
        locator=checkpoint_scope(principal),
        event_id=parts[2] if len(parts) > 2 and parts[2] else None,
        event_name="ConsoleLogin",
    )
    return ConsoleLogin(principal, parts[0], when, evidence)


class LoginIndex:
    """Successful console logins per principal, searchable by time."""

    def __init__(self, logins: Iterable[ConsoleLogin] = ()) -> None:
        self._by_principal: dict[str, list[ConsoleLogin]] = defaultdict(list)
        for login in logins:
            self.add(login)

    def add(self, login: ConsoleLogin) -> None:
        items = self._by_principal[login.principal]
        times = [i.time for i in items]
        items.insert(bisect.bisect_right(times, login.time), login)

    def principals(self) -> list[str]:
        return sorted(self._by_principal)

    def newest(self, principal: str) -> ConsoleLogin | None:
        """The principal's latest login known to the index."""
        items = self._by_principal.get(principal)
        return items[-1] if items else None

    def latest_before(
        self, principal: str, when: datetime, *, lookback: timedelta = CONSOLE_LOOKBACK
    ) -> ConsoleLogin | None:
        """The most recent login at or before ``when`` and no older than ``lookback``."""
        items = self._by_principal.get(principal, [])
        pos = bisect.bisect_right([i.time for i in items], when)
        if pos == 0:
            return None
        login = items[pos - 1]
        return login if when - login.time <= lookback else None


def attribute_console_session(session: Session, login: ConsoleLogin | None) -> Session:
    """``session`` with its source IP taken from ``login`` (and both events as evidence), or
    with a note that no login was found, so the AWS address is not mistaken for the user's."""
    original = session.source_ip or ""
    if login is None:
        return session.model_copy(
            update={
                "attributes": {**session.attributes, "console_login": "not-found"},
                "notes": (
                    *session.notes,
                    f"started from the AWS console; no successful ConsoleLogin of "
                    f"{session.principal} in the {int(CONSOLE_LOOKBACK.total_seconds() // 3600)} "
                    "hours before, so the client IP is unknown",
                ),
            }
        )
    return session.model_copy(
        update={
            "source_ip": login.ip,
            "evidence": (*session.evidence, login.evidence),
            "attributes": {
                **session.attributes,
                "console_login": "attributed",
                "console_login_time": login.time.isoformat(),
                "original_source_ip": original,
            },
            "notes": (
                *session.notes,
                f"started from the AWS console (source {original}); client IP {login.ip} "
                f"attributed from the principal's ConsoleLogin at {login.time.isoformat()}",
            ),
        }
    )
