"""providers.sshd.follow: incremental parsing of a followed auth log (``chipwarden watch``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.contracts import AuditWindow, CollectContext, FollowableSource, SourceEnv
from agent.models import Outcome, Session
from providers.sshd.follow import SshdLineParser
from providers.sshd.source import SshdLogSource

DATA = Path(__file__).parents[2] / "data" / "sshd"
AUTH_LOG = DATA / "auth.log"
INSTANCE = {"provider": "aws", "account": "111122223333", "instance_id": "i-0abc123def4567890"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def make_source(path: Path = AUTH_LOG, **extra: Any) -> SshdLogSource:
    config = {"type": "sshd-log", "path": str(path), "year": 2026, "instance": INSTANCE, **extra}
    env = SourceEnv(name="auth", base_dir=DATA, clock=lambda: NOW)
    return SshdLogSource.from_config(config, env=env)


def make_ctx() -> CollectContext:
    return CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: NOW)


def parser(source: SshdLogSource, state: dict[str, Any] | None = None) -> SshdLineParser:
    return source.line_parser(source.config.path, state=state)


def feed(p: SshdLineParser, lines: Sequence[str], first: int = 1) -> list[Session]:
    return list(p.feed(lines, first_line=first, ctx=make_ctx()))


def test_the_sshd_source_is_followable() -> None:
    source = make_source()
    assert isinstance(source, FollowableSource)
    assert source.follow_paths() == [AUTH_LOG]


def test_a_session_is_emitted_at_accepted_and_again_with_its_end() -> None:
    p = parser(make_source())
    (started,) = feed(
        p, ["Nov 28 10:00:00 h sshd[5]: Accepted password for ann from 192.0.2.1 port 4000 ssh2"]
    )
    assert started.ended_at is None
    (ended,) = feed(
        p, ["Nov 28 10:05:00 h sshd[5]: Disconnected from user ann 192.0.2.1 port 4000"], 2
    )
    assert ended.key == started.key
    assert ended.ended_at == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    assert [e.position for e in ended.evidence] == ["line 1", "line 2"]
    assert p.assembler.open_count == 0


def test_lines_that_change_nothing_emit_nothing() -> None:
    p = parser(make_source())
    assert feed(p, ["Nov 28 10:00:00 h CRON[9]: pam_unix(cron:session): session opened"]) == []


def test_failed_attempts_of_one_connection_update_one_session_across_reads() -> None:
    p = parser(make_source())
    line = "Nov 28 10:00:0{} h sshd[7]: Failed password for root from 192.0.2.9 port 1 ssh2"
    (first,) = feed(p, [line.format(1)])
    (second,) = feed(p, [line.format(2)], 2)
    assert first.key == second.key
    assert (first.attributes["attempts"], second.attributes["attempts"]) == ("1", "2")
    assert second.outcome is Outcome.FAILED


def _last_versions(chunks: list[list[Session]]) -> dict[str, Session]:
    out: dict[str, Session] = {}
    for chunk in chunks:
        for session in chunk:
            out[session.key] = session
    return out


@pytest.mark.parametrize("size", [1, 2, 5, 11, 1000])
@pytest.mark.parametrize("restart_between_reads", [False, True])
def test_any_chunking_and_restarts_give_the_sessions_of_a_whole_file_read(
    size: int, restart_between_reads: bool
) -> None:
    source = make_source()
    whole = {s.key: s for batch in source.sessions(make_ctx()) for s in batch.sessions}
    lines = AUTH_LOG.read_text().splitlines()
    p = parser(source)
    emitted = []
    for start in range(0, len(lines), size):
        emitted.append(feed(p, lines[start : start + size], start + 1))
        if restart_between_reads:
            p = parser(source, json.loads(json.dumps(p.state())))
    assert _last_versions(emitted) == whole


def test_state_keeps_only_open_sessions_and_the_syslog_year() -> None:
    p = parser(make_source())
    feed(
        p,
        [
            "Nov 28 10:00:00 h sshd[5]: Accepted password for ann from 192.0.2.1 port 4000 ssh2",
            "Nov 28 10:01:00 h sshd[6]: Accepted password for bo from 192.0.2.2 port 4001 ssh2",
            "Nov 28 10:05:00 h sshd[5]: Disconnected from user ann 192.0.2.1 port 4000",
        ],
    )
    state = p.state()
    assert state["year"] == 2026
    assert [o["start"]["user"] for o in state["open"]] == ["bo"]


def test_the_year_rollover_survives_a_restart() -> None:
    p = parser(make_source())
    feed(p, ["Dec 31 23:59:00 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2"])
    resumed = parser(make_source(), json.loads(json.dumps(p.state())))
    (new,) = feed(
        resumed,
        ["Jan  1 00:01:00 h sshd[2]: Accepted password for b from 192.0.2.1 port 2 ssh2"],
        2,
    )
    assert new.started_at == datetime(2027, 1, 1, 0, 1, tzinfo=UTC)


def test_only_the_newest_open_sessions_are_kept() -> None:
    source = make_source()
    p = SshdLineParser(
        source="auth",
        target=source.target,
        locator="auth.log",
        parser=source._parser(AUTH_LOG, None),
        host=None,
        max_open=2,
    )
    feed(
        p,
        [
            f"Nov 28 10:0{i}:00 h sshd[{i}]: Accepted password for u{i} from 192.0.2.1 port {i}"
            for i in range(1, 5)
        ],
    )
    assert [o["start"]["user"] for o in p.state()["open"]] == ["u3", "u4"]


def test_a_damaged_state_is_ignored_with_a_warning() -> None:
    with capture_logs() as logs:
        p = parser(make_source(), {"year": 2026, "open": [{"start": {"kind": "nonsense"}}]})
    assert p.assembler.open_count == 0
    assert [e["event"] for e in logs] == ["sshd_follow_state_ignored"]


def test_garbage_lines_are_quarantined_with_their_line_number() -> None:
    p = parser(make_source())
    ctx = make_ctx()
    p.feed(["\x00\x00 not syslog", "Nov 28 10:00:00 h CRON[1]: x"], first_line=41, ctx=ctx)
    assert [q.position for q in ctx.quarantined] == ["line 41"]
    assert (ctx.read, ctx.ignored) == (2, 1)


def test_a_journal_export_can_be_followed_too() -> None:
    source = make_source(DATA / "journal.json", format="journal-json")
    lines = (DATA / "journal.json").read_text().splitlines()
    p = parser(source)
    first = feed(p, lines[:2])
    assert [s.principal for s in first] == ["alice"]
    later = feed(p, lines[2:], 3)
    alice = next(s for s in later if s.principal == "alice")
    assert alice.key == first[0].key and alice.ended_at is not None


def test_failed_attempts_are_forgotten_once_far_older_than_the_newest_line() -> None:
    p = parser(make_source())
    feed(p, ["Nov 28 10:00:00 h sshd[7]: Failed password for root from 192.0.2.9 port 1 ssh2"])
    assert p.assembler.open_count == 1
    feed(p, ["Nov 28 10:20:00 h sshd[8]: Accepted password for ann from 192.0.2.1 port 4 ssh2"], 2)
    assert [o["start"]["user"] for o in p.state()["open"]] == ["ann"]
