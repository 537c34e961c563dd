"""Pure folding of sshd events into sessions: pairs ends with starts, folds failed attempts.

Whole files use :meth:`SessionAssembler.sessions`; a followed file uses
:meth:`SessionAssembler.take_changed` after each read (sessions started or changed, closed ones
then forgotten) and carries the open ones across restarts with ``open_state`` /
``restore_open``.

An ``Accepted`` line starts a successful session; its end is the first disconnect or
``session closed`` of the same pid (else of the same ip + port, and user when both name one).
``Invalid user`` / ``Failed`` lines of one pid + user + ip fold into one failed attempt with
an ``attempts`` count. Every other event line only adds to a session (or pairs with nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.models import AccessMethod, EvidenceRef, Outcome, Session
from providers.sshd.parse import EventKind, SshdEvent

__all__ = ["ATTEMPT_TTL", "SessionAssembler", "SshdTarget", "session_key"]

ATTEMPT_TTL = timedelta(minutes=10)
"""A failed attempt this much older than the newest line can gain no more lines (sshd's
LoginGraceTime, 2 minutes by default, cuts unauthenticated connections long before)."""


@dataclass(frozen=True)
class SshdTarget:
    """The host a log belongs to: every session of the file targets it."""

    provider: str
    account: str
    instance_id: str
    region: str | None = None


def session_key(target: SshdTarget, event: SshdEvent) -> str:
    """Natural key of the session ``event`` starts; stable across re-reads of the file."""
    parts = (event.pid, event.at.isoformat(), event.user, event.ip, event.port)
    tail = "|".join("" if p is None else str(p) for p in parts)
    return f"{target.account}/{target.instance_id}|{tail}"


@dataclass
class _Pending:
    start: SshdEvent
    line: int
    outcome: Outcome
    failures: int = 0
    method: str | None = None
    port: int | None = None
    ended_at: datetime | None = None
    end_line: int | None = None
    end_name: str | None = None
    closed: bool = False
    dirty: bool = False
    saved_start: dict[str, Any] | None = None


_FoldKey = tuple[int | None, str | None, str | None, int | None]


class SessionAssembler:
    """Feed events in file order with :meth:`feed`, then take :meth:`sessions`."""

    def __init__(self, *, target: SshdTarget, source: str, locator: str) -> None:
        self.target = target
        self.source = source
        self.locator = locator
        self._items: list[_Pending] = []
        self._by_pid: dict[int, list[_Pending]] = {}
        self._by_addr: dict[tuple[str, int], list[_Pending]] = {}
        self._folds: dict[_FoldKey, _Pending] = {}
        self._dirty: list[_Pending] = []
        self._newest: datetime | None = None

    def feed(self, event: SshdEvent, *, line: int) -> bool:
        """Take one event; True when its line starts a new session (else it only adds to one)."""
        if self._newest is None or event.at > self._newest:
            self._newest = event.at
        if event.kind is EventKind.ACCEPTED:
            self._close_attempts(event)
            self._open(event, line, Outcome.SUCCESS)
            return True
        if event.kind in (EventKind.FAILED, EventKind.INVALID_USER):
            return self._fail(event, line)
        self._end(event, line)
        return False

    def sessions(self) -> list[Session]:
        """Every session started so far, in file order (open ones have no ``ended_at``)."""
        return [self._session(item) for item in self._items]

    def take_changed(
        self, *, max_open: int = 1_000, attempt_ttl: timedelta = ATTEMPT_TTL
    ) -> list[Session]:
        """Sessions started or changed since the last call (first touched first); then forget
        the closed ones (they cannot change any more), failed attempts older than
        ``attempt_ttl`` before the newest event, and all but the newest ``max_open``."""
        changed = [self._session(item) for item in self._dirty]
        for item in self._dirty:
            item.dirty = False
        self._dirty = []
        self._prune(max_open, attempt_ttl)
        return changed

    @property
    def open_count(self) -> int:
        """Sessions and attempts kept because their end may still come."""
        return sum(1 for item in self._items if not item.closed)

    def open_state(self) -> list[dict[str, Any]]:
        """JSON-able state of the open sessions (persisted with a followed file's offset)."""
        return [
            {
                "start": _saved_start(item),
                "line": item.line,
                "outcome": item.outcome.value,
                "failures": item.failures,
                "method": item.method,
                "port": item.port,
            }
            for item in self._items
            if not item.closed
        ]

    def restore_open(self, state: Sequence[Mapping[str, Any]]) -> None:
        """Take back sessions saved by :meth:`open_state` (ValueError if it is malformed)."""
        for raw in state:
            try:
                item = _Pending(
                    start=SshdEvent.model_validate(raw["start"]),
                    line=int(raw["line"]),
                    outcome=Outcome(raw["outcome"]),
                    failures=int(raw.get("failures", 0)),
                    method=raw.get("method"),
                    port=raw.get("port"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"bad saved sshd session state: {exc}") from exc
            self._index(item)
            if item.outcome is Outcome.FAILED:
                self._folds[_fold_key(item.start)] = item

    # --- folding --------------------------------------------------------------------------

    def _open(self, event: SshdEvent, line: int, outcome: Outcome) -> _Pending:
        item = _Pending(start=event, line=line, outcome=outcome, method=event.method)
        item.port = event.port
        self._index(item)
        self._touch(item)
        return item

    def _index(self, item: _Pending) -> None:
        start = item.start
        self._items.append(item)
        if start.pid is not None:
            self._by_pid.setdefault(start.pid, []).append(item)
        if start.ip is not None and item.port is not None:
            self._by_addr.setdefault((start.ip, item.port), []).append(item)

    def _touch(self, item: _Pending) -> None:
        if not item.dirty:
            item.dirty = True
            self._dirty.append(item)

    def _prune(self, max_open: int, attempt_ttl: timedelta) -> None:
        cutoff = self._newest - attempt_ttl if self._newest is not None else None
        keep = [
            item
            for item in self._items
            if not item.closed
            and not (
                item.outcome is Outcome.FAILED and cutoff is not None and item.start.at < cutoff
            )
        ]
        if len(keep) == len(self._items) and len(keep) <= max_open:
            return
        keep = keep[-max_open:] if max_open > 0 else []
        kept = {id(item) for item in keep}
        self._items = keep
        self._by_pid = _filtered(self._by_pid, kept)
        self._by_addr = _filtered(self._by_addr, kept)
        self._folds = {k: v for k, v in self._folds.items() if id(v) in kept}

    def _fail(self, event: SshdEvent, line: int) -> bool:
        key = _fold_key(event)
        item = self._folds.get(key)
        started = False
        if item is None or item.closed:
            item = self._open(event, line, Outcome.FAILED)
            self._folds[key] = item
            started = True
        self._touch(item)
        if event.kind is EventKind.FAILED:
            item.failures += event.repeat
            item.method = item.method or event.method
        if item.port is None and event.port is not None:
            item.port = event.port
            if event.ip is not None:
                self._by_addr.setdefault((event.ip, event.port), []).append(item)
        return started

    def _close_attempts(self, accepted: SshdEvent) -> None:
        """An Accepted line ends the failed attempts of the same connection (pid)."""
        if accepted.pid is None:
            return
        for item in self._by_pid.get(accepted.pid, ()):
            if not item.closed and item.outcome is Outcome.FAILED:
                item.closed = True
                item.ended_at = accepted.at
                self._touch(item)

    def _end(self, event: SshdEvent, line: int) -> None:
        item = self._find_open(event)
        if item is None:
            return
        item.closed = True
        item.ended_at = event.at
        item.end_line = line
        item.end_name = _END_NAMES.get(event.kind, event.kind.value)
        self._touch(item)

    def _find_open(self, event: SshdEvent) -> _Pending | None:
        if event.pid is not None:
            for item in reversed(self._by_pid.get(event.pid, ())):
                if not item.closed:
                    return item
        if event.ip is not None and event.port is not None:
            for item in reversed(self._by_addr.get((event.ip, event.port), ())):
                if not item.closed and _same_user(item.start.user, event.user):
                    return item
        return None

    # --- output ---------------------------------------------------------------------------

    def _session(self, item: _Pending) -> Session:
        start = item.start
        evidence = [self._evidence(item.line, _start_name(item))]
        if item.end_line is not None and item.end_name is not None:
            evidence.append(self._evidence(item.end_line, item.end_name))
        return Session(
            key=session_key(self.target, start),
            provider=self.target.provider,
            source=self.source,
            account=self.target.account,
            region=self.target.region,
            instance_id=self.target.instance_id,
            principal=start.user,
            principal_type="os-user",
            source_ip=start.ip,
            method=AccessMethod.SSH,
            outcome=item.outcome,
            started_at=start.at,
            ended_at=item.ended_at,
            evidence=tuple(evidence),
            attributes=_attributes(item),
        )

    def _evidence(self, line: int, name: str) -> EvidenceRef:
        return EvidenceRef(
            kind="file", locator=self.locator, position=f"line {line}", event_name=name
        )


_END_NAMES = {
    EventKind.CONNECTION_CLOSED: "Connection closed",
    EventKind.DISCONNECTED: "Disconnected",
    EventKind.RECEIVED_DISCONNECT: "Received disconnect",
    EventKind.SESSION_CLOSED: "session closed",
}


def _saved_start(item: _Pending) -> dict[str, Any]:
    """The start event as compact JSON (computed once: the start never changes)."""
    if item.saved_start is None:
        item.saved_start = item.start.model_dump(mode="json", exclude_defaults=True)
    return item.saved_start


def _filtered(index: dict[Any, list[_Pending]], kept: set[int]) -> dict[Any, list[_Pending]]:
    out = {}
    for key, items in index.items():
        left = [item for item in items if id(item) in kept]
        if left:
            out[key] = left
    return out


def _fold_key(event: SshdEvent) -> _FoldKey:
    if event.pid is not None:
        return (event.pid, event.user, event.ip, None)
    return (None, event.user, event.ip, event.port)


def _same_user(started_by: str | None, ended_by: str | None) -> bool:
    return started_by is None or ended_by is None or started_by == ended_by


def _start_name(item: _Pending) -> str:
    start = item.start
    if start.kind is EventKind.INVALID_USER:
        return "Invalid user"
    verb = "Accepted" if start.kind is EventKind.ACCEPTED else "Failed"
    return f"{verb} {start.method}" if start.method else verb


def _attributes(item: _Pending) -> dict[str, str]:
    start = item.start
    values: dict[str, object | None] = {
        "auth_method": item.method,
        "key_type": start.key_type,
        "fingerprint": start.fingerprint,
        "port": item.port,
        "pid": start.pid,
        "host": start.host,
        "process": start.process or None,
    }
    if item.outcome is Outcome.FAILED:
        values["attempts"] = max(1, item.failures)
        values["invalid_user"] = "true" if start.invalid_user else "false"
    return {k: str(v) for k, v in values.items() if v is not None}
