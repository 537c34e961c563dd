"""providers.sshd.source: one auth.log -> one batch of SSH sessions, with reconciling counts."""

from __future__ import annotations

import gzip
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent import registry
from agent.contracts import AuditWindow, CollectContext, SessionSource, SourceEnv
from agent.errors import ConfigError
from agent.models import AccessMethod, Outcome, Session
from providers.sshd.source import SshdLogConfig, SshdLogSource

DATA = Path(__file__).parents[2] / "data" / "sshd"
AUTH_LOG = DATA / "auth.log"
INSTANCE = {
    "provider": "aws",
    "account": "111122223333",
    "region": "us-east-1",
    "instance_id": "i-0abc123def4567890",
}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def make_source(path: Path | str = AUTH_LOG, **extra: Any) -> SshdLogSource:
    config = {"type": "sshd-log", "path": str(path), "year": 2026, "instance": INSTANCE, **extra}
    env = SourceEnv(name="gpu-node-7-auth", base_dir=DATA, clock=lambda: NOW)
    return SshdLogSource.from_config(config, env=env)


def make_ctx(window: AuditWindow | None = None) -> CollectContext:
    return CollectContext(window=window or AuditWindow(since=None, until=None), clock=lambda: NOW)


def collect(source: SshdLogSource, ctx: CollectContext | None = None) -> list[Session]:
    ctx = ctx or make_ctx()
    return [s for batch in source.sessions(ctx) for s in batch.sessions]


def by_user(sessions: list[Session], user: str, outcome: Outcome) -> Session:
    (match,) = [s for s in sessions if s.principal == user and s.outcome is outcome]
    return match


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 28, hh, mm, ss, tzinfo=UTC)


def test_accepted_publickey_becomes_a_successful_ssh_session_with_key_details() -> None:
    alice = by_user(collect(make_source()), "alice", Outcome.SUCCESS)
    assert alice.method is AccessMethod.SSH
    assert alice.source_ip == "203.0.113.10"
    assert alice.started_at == at(10, 0)
    assert alice.attributes == {
        "auth_method": "publickey",
        "key_type": "RSA",
        "fingerprint": "SHA256:Hq3Z1Jd8Xc2Fv0aTs9yWm4LpKeRbNu7gQoIh5VxYcDw",
        "port": "50122",
        "pid": "1001",
        "host": "gpu-node-7",
        "process": "sshd",
    }


def test_accepted_password_over_ipv6_keeps_the_address() -> None:
    bob = by_user(collect(make_source()), "bob", Outcome.SUCCESS)
    assert bob.source_ip == "2001:db8:85a3::8a2e:370:7334"
    assert bob.attributes["auth_method"] == "password"
    assert "fingerprint" not in bob.attributes


def test_every_session_targets_the_configured_instance() -> None:
    sessions = collect(make_source())
    targets = {(s.provider, s.account, s.region, s.instance_id, s.source) for s in sessions}
    assert targets == {
        ("aws", "111122223333", "us-east-1", "i-0abc123def4567890", "gpu-node-7-auth")
    }


def test_end_time_comes_from_the_first_disconnect_of_the_same_pid() -> None:
    alice = by_user(collect(make_source()), "alice", Outcome.SUCCESS)
    assert alice.ended_at == at(10, 30)
    assert [e.position for e in alice.evidence] == ["line 4", "line 25"]


def test_session_closed_line_ends_a_password_session() -> None:
    bob = by_user(collect(make_source()), "bob", Outcome.SUCCESS)
    assert bob.ended_at == at(10, 45)


def test_disconnect_from_another_pid_pairs_by_ip_and_port() -> None:
    dave = by_user(collect(make_source()), "dave", Outcome.SUCCESS)
    assert dave.ended_at == at(10, 31)


def test_session_without_a_disconnect_stays_open() -> None:
    carol = by_user(collect(make_source()), "carol", Outcome.SUCCESS)
    assert carol.ended_at is None
    assert carol.attributes["process"] == "sshd-session"


def test_invalid_user_probe_is_one_failed_attempt() -> None:
    admin = by_user(collect(make_source()), "admin", Outcome.FAILED)
    assert admin.started_at == at(10, 1, 10)
    assert admin.ended_at == at(10, 1, 13)
    assert admin.attributes["invalid_user"] == "true"
    assert admin.attributes["attempts"] == "1"


def test_repeated_failures_of_one_connection_fold_into_one_attempt_with_a_count() -> None:
    root = by_user(collect(make_source()), "root", Outcome.FAILED)
    assert root.attributes["attempts"] == "4"  # one line + "message repeated 3 times"
    assert root.attributes["invalid_user"] == "false"
    assert root.ended_at == at(10, 3, 32)


def test_failure_then_success_on_one_connection_gives_both() -> None:
    sessions = collect(make_source())
    failed = by_user(sessions, "erin", Outcome.FAILED)
    ok = by_user(sessions, "erin", Outcome.SUCCESS)
    assert failed.ended_at == ok.started_at == at(10, 7, 5)
    assert ok.ended_at == at(11, 0)


def test_no_session_comes_from_a_garbage_line() -> None:
    assert "mallory" not in {s.principal for s in collect(make_source())}


def test_counts_reconcile_read_equals_sessions_plus_ignored_plus_quarantined() -> None:
    ctx = make_ctx()
    sessions = collect(make_source(), ctx)
    lines = AUTH_LOG.read_text().splitlines()
    assert ctx.read == len(lines)
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total
    assert len(sessions) == 8
    assert ctx.scope_errors == []


def test_garbage_lines_are_quarantined_with_their_line_numbers() -> None:
    ctx = make_ctx()
    collect(make_source(), ctx)
    assert ctx.quarantined_total == 2
    assert [(q.position, q.locator, q.source) for q in ctx.quarantined] == [
        ("line 13", str(AUTH_LOG), "gpu-node-7-auth"),
        ("line 24", str(AUTH_LOG), "gpu-node-7-auth"),
    ]
    assert all("not a syslog line" in q.reason for q in ctx.quarantined)


def test_session_key_names_target_pid_time_user_ip_and_port() -> None:
    alice = by_user(collect(make_source()), "alice", Outcome.SUCCESS)
    assert alice.key == (
        "111122223333/i-0abc123def4567890|1001|2026-11-28T10:00:00+00:00|alice|203.0.113.10|50122"
    )


def test_rereading_the_file_gives_the_same_keys() -> None:
    first = [s.session_id for s in collect(make_source())]
    second = [s.session_id for s in collect(make_source())]
    assert first == second
    assert len(set(first)) == len(first)


def test_explicit_window_keeps_sessions_started_inside_and_counts_the_rest_ignored() -> None:
    window = AuditWindow(since=at(10, 2), until=at(10, 6), explicit=True)
    ctx = make_ctx(window)
    sessions = collect(make_source(), ctx)
    assert [(s.principal, s.outcome) for s in sessions] == [
        ("bob", Outcome.SUCCESS),
        ("root", Outcome.FAILED),
        ("carol", Outcome.SUCCESS),
        ("dave", Outcome.SUCCESS),
    ]
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total


def test_implicit_window_reads_the_whole_file() -> None:
    window = AuditWindow(since=at(10, 2), until=at(10, 6), explicit=False)
    assert len(collect(make_source(), make_ctx(window))) == 8


def test_missing_file_is_a_scope_error_not_an_empty_result() -> None:
    ctx = make_ctx()
    with capture_logs() as logs:
        batches = list(make_source(DATA / "no-such-auth.log").sessions(ctx))
    assert batches == []
    (error,) = ctx.scope_errors
    assert error.scope == str(DATA / "no-such-auth.log")
    assert error.source == "gpu-node-7-auth"
    assert "no-such-auth.log" in error.message
    assert error.remediation
    assert any(e["event"] == "sshd_log_unreadable" for e in logs)


def test_a_directory_instead_of_a_file_is_a_scope_error(tmp_path: Path) -> None:
    ctx = make_ctx()
    assert list(make_source(tmp_path).sessions(ctx)) == []
    assert len(ctx.scope_errors) == 1


def test_relative_path_resolves_against_the_config_folder() -> None:
    source = make_source("auth.log")
    assert source.config.path == AUTH_LOG
    assert len(collect(source)) == 8


def test_gzip_rotated_log_reads_like_the_plain_one(tmp_path: Path) -> None:
    rotated = tmp_path / "auth.log.2"  # no .gz suffix: gzip is detected by magic bytes
    rotated.write_bytes(gzip.compress(AUTH_LOG.read_bytes()))
    plain = [(s.principal, s.started_at, s.ended_at) for s in collect(make_source())]
    zipped = [(s.principal, s.started_at, s.ended_at) for s in collect(make_source(rotated))]
    assert zipped == plain


def test_corrupt_gzip_is_a_scope_error(tmp_path: Path) -> None:
    broken = tmp_path / "auth.log.1.gz"
    broken.write_bytes(gzip.compress(AUTH_LOG.read_bytes())[:200])
    ctx = make_ctx()
    list(make_source(broken).sessions(ctx))
    assert len(ctx.scope_errors) == 1


def test_host_filter_ignores_lines_of_other_syslog_hosts(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text(
        "Nov 28 10:00:00 gpu-node-7 sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2\n"
        "Nov 28 10:00:01 gpu-node-8 sshd[2]: Accepted password for b from 192.0.2.2 port 2 ssh2\n"
    )
    ctx = make_ctx()
    sessions = collect(make_source(log, host="gpu-node-7"), ctx)
    assert [s.principal for s in sessions] == ["a"]
    assert (ctx.read, ctx.ignored) == (2, 1)


def test_year_defaults_to_the_file_mtime_and_follows_the_december_rollover(
    tmp_path: Path,
) -> None:
    log = tmp_path / "auth.log"
    log.write_text(
        "Dec 31 23:59:00 h sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2\n"
        "Jan  1 00:01:00 h sshd[2]: Accepted password for b from 192.0.2.2 port 2 ssh2\n"
    )
    mtime = datetime(2027, 1, 1, 0, 2, tzinfo=UTC).timestamp()
    os.utime(log, (mtime, mtime))
    config = {"type": "sshd-log", "path": str(log), "instance": INSTANCE}
    env = SourceEnv(name="s", base_dir=tmp_path, clock=lambda: NOW)
    sessions = collect(SshdLogSource.from_config(config, env=env))
    assert [s.started_at for s in sessions] == [
        datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 1, tzinfo=UTC),
    ]


def test_timezone_option_reads_classic_timestamps_as_local_time(tmp_path: Path) -> None:
    log = tmp_path / "secure"
    shutil.copy(AUTH_LOG, log)
    alice = by_user(
        collect(make_source(log, timezone="America/New_York")), "alice", Outcome.SUCCESS
    )
    assert alice.started_at == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def test_read_summary_is_logged_with_counts() -> None:
    with capture_logs() as logs:
        collect(make_source())
    (summary,) = [e for e in logs if e["event"] == "sshd_log_read"]
    assert (summary["sessions"], summary["quarantined"], summary["lines"]) == (8, 2, 31)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"colour": "blue"}, "colour: unknown key"),
        ({"instance": {"provider": "aws", "account": "1"}}, "instance.instance_id"),
        ({"instance": {**INSTANCE, "zone": "a"}}, "instance.zone: unknown key"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"type": "cloudtrail-files"}, "type"),
    ],
)
def test_bad_config_is_a_config_error_naming_the_key(change: dict[str, Any], fragment: str) -> None:
    config = {"type": "sshd-log", "path": "auth.log", "instance": INSTANCE, **change}
    env = SourceEnv(name="s", base_dir=DATA, clock=lambda: NOW)
    with pytest.raises(ConfigError, match=fragment):
        SshdLogSource.from_config(config, env=env)


def test_source_config_model_is_exposed_for_the_registry() -> None:
    config = SshdLogConfig.model_validate(
        {"type": "sshd-log", "path": "auth.log", "instance": INSTANCE},
        context={"base_dir": DATA},
    )
    env = SourceEnv(name="s", base_dir=DATA, clock=lambda: NOW)
    assert SshdLogSource.Config is SshdLogConfig
    assert SshdLogSource.from_config(config, env=env).config.path == AUTH_LOG


def test_registry_entry_point_resolves_to_a_session_source() -> None:
    assert registry.sources.load("sshd-log") is SshdLogSource
    assert isinstance(make_source(), SessionSource)


def test_an_over_long_line_is_cut_and_quarantined_and_the_next_line_still_counts(
    tmp_path: Path,
) -> None:
    from providers.sshd.source import MAX_LINE_BYTES

    log = tmp_path / "auth.log"
    log.write_bytes(
        b"Nov 28 10:00:00 gpu sshd[1]: Accepted password for " + b"x" * (3 * MAX_LINE_BYTES)
        + b"\nNov 28 10:05:00 gpu sshd[2]: Accepted password for bob from 198.51.100.7 port 22 ssh2\n"
    )
    ctx = make_ctx()

    sessions = collect(make_source(log), ctx)

    assert [s.principal for s in sessions] == ["bob"]
    assert ctx.quarantined_total == 1
    assert "over-long line" in ctx.quarantined[0].reason
    assert ctx.quarantined[0].position == "line 1"
