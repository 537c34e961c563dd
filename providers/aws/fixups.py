"""Fix-ups that need a client or the run's checkpoints: Session Manager end times from SSM
DescribeSessions, and the release of console-started sessions with their attributed IP."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from agent.contracts import CollectContext, SessionBatch
from agent.errors import SourceError
from agent.models import Session
from providers.aws.client import AwsClient
from providers.aws.console import (
    CONSOLE_LOOKBACK,
    ConsoleLogin,
    LoginIndex,
    attribute_console_session,
    checkpoint_scope,
    decode_login,
    encode_login,
    is_console_started,
)
from providers.aws.joins import open_ssm_targets, ssm_ends_from_history, with_ssm_ends
from providers.aws.scope import scope_error

__all__ = ["fill_ssm_ends", "release_console_sessions"]

T = TypeVar("T")


def fill_ssm_ends(
    ctx: CollectContext,
    tagged: list[tuple[T, Session]],
    *,
    clients: Mapping[str, AwsClient],
    source: str,
) -> list[tuple[T, Session]]:
    """End times of SSM sessions that have no TerminateSession, from DescribeSessions
    (State=History, per target). A failure is one ScopeError and the sessions stay open."""
    ends: dict[str, datetime] = {}
    targets = open_ssm_targets(s for _, s in tagged)
    for (account, region, target), since in sorted(targets.items()):
        client = clients.get(account)
        if client is None:
            continue
        try:
            history = client.ssm_history(region, target=target, after=since - timedelta(minutes=1))
            ends.update(ssm_ends_from_history(history))
        except SourceError as exc:
            ctx.scope_error(
                scope_error(
                    exc,
                    source=source,
                    scope=f"{account}/{region}",
                    what="SSM DescribeSessions (end times without TerminateSession)",
                    remediation=f"{exc.hint or ''}; or set ssm_history: false".lstrip("; "),
                )
            )
            break
    return with_ssm_ends(tagged, ends) if ends else tagged


def release_console_sessions(
    ctx: CollectContext, held: Iterable[list[SessionBatch]], logins: LoginIndex
) -> Iterator[SessionBatch]:
    """The held batches with console-started sessions attributed (run logins first, else the
    persisted login), then one empty batch per principal whose newest login is newer than the
    persisted one (checkpoint ``aws:console-login:<principal>`` = ``ip|time|eventID``)."""
    persisted: dict[str, ConsoleLogin | None] = {}

    def saved(principal: str) -> ConsoleLogin | None:
        if principal not in persisted:
            persisted[principal] = decode_login(
                principal, ctx.checkpoint(checkpoint_scope(principal))
            )
        return persisted[principal]

    def login_for(session: Session) -> ConsoleLogin | None:
        if not session.principal:
            return None
        found = logins.latest_before(session.principal, session.started_at)
        old = saved(session.principal)
        if (
            old is not None
            and old.time <= session.started_at
            and session.started_at - old.time <= CONSOLE_LOOKBACK
            and (found is None or old.time > found.time)
        ):
            return old
        return found

    for batches in held:
        for batch in batches:
            sessions = tuple(
                attribute_console_session(s, login_for(s)) if is_console_started(s) else s
                for s in batch.sessions
            )
            yield replace(batch, sessions=sessions)
    for principal in logins.principals():
        newest = logins.newest(principal)
        old = saved(principal)
        if newest is not None and (old is None or newest.time > old.time):
            yield SessionBatch(
                unit="aws:console-logins",
                sessions=(),
                checkpoint_scope=checkpoint_scope(principal),
                checkpoint=encode_login(newest),
            )
