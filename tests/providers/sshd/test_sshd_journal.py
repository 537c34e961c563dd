"""providers.sshd.journal and ``format: journal-json``: sshd sessions from journalctl JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from agent.errors import ConfigError, RecordError
from agent.models import Outcome, Session
from providers.sshd.journal import JournalParser, journal_time
from providers.sshd.parse import EventKind
from providers.sshd.source import SshdLogSource

DATA = Path(__file__).parents[2] / "data" / "sshd"
JOURNAL = DATA / "journal.json"
INSTANCE = {"provider": "onprem", "account": "dc-1", "instance_id": "gpu-node-7"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def record(**fields: object) -> str:
    base: dict[str, object] = {
        "__REALTIME_TIMESTAMP": "1795860000000000",
        "_HOSTNAME": "h",
        "SYSLOG_IDENTIFIER": "sshd",
        "_PID": "77",
        "MESSAGE": "Accepted publickey for ann from 192.0.2.5 port 4000 ssh2",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def make_source(**extra: object) -> SshdLogSource:
    config = {"type": "sshd-log", "path": str(JOURNAL), "format": "journal-json"}
    config.update({"instance": INSTANCE, **extra})
    env = SourceEnv(name="gpu-node-7-journal", base_dir=DATA, clock=lambda: NOW)
    return SshdLogSource.from_config(config, env=env)


def collect(source: SshdLogSource) -> tuple[list[Session], CollectContext]:
    ctx = CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: NOW)
    return [s for batch in source.sessions(ctx) for s in batch.sessions], ctx


def test_realtime_timestamp_is_microseconds_since_the_epoch_in_utc() -> None:
    event = JournalParser().parse(record())
    assert event is not None and event.kind is EventKind.ACCEPTED
    assert event.at == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert (event.user, event.ip, event.port, event.pid, event.host) == (
        "ann",
        "192.0.2.5",
        4000,
        77,
        "h",
    )


def test_source_realtime_timestamp_is_used_when_the_journal_time_is_missing() -> None:
    line = record(__REALTIME_TIMESTAMP=None, _SOURCE_REALTIME_TIMESTAMP="1795860001500000")
    event = JournalParser().parse(line)
    assert event is not None
    assert event.at == datetime(2026, 11, 28, 10, 0, 1, 500000, tzinfo=UTC)


def test_syslog_pid_stands_in_for_a_missing_trusted_pid() -> None:
    event = JournalParser().parse(record(_PID=None, SYSLOG_PID="91"))
    assert event is not None and event.pid == 91


@pytest.mark.parametrize(
    "fields",
    [
        {"SYSLOG_IDENTIFIER": "sshd-session"},
        {"SYSLOG_IDENTIFIER": None, "_COMM": "sshd"},
        {"SYSLOG_IDENTIFIER": None, "_SYSTEMD_UNIT": "sshd@3-10.0.0.5:22-192.0.2.5:4000.service"},
        {"SYSLOG_IDENTIFIER": None, "_SYSTEMD_UNIT": "ssh.service"},
    ],
)
def test_sshd_is_recognised_by_identifier_command_or_unit(fields: dict[str, object]) -> None:
    assert JournalParser().parse(record(**fields)) is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"SYSLOG_IDENTIFIER": "CRON"},
        {"SYSLOG_IDENTIFIER": None, "_SYSTEMD_UNIT": "sshguard.service"},
        {"SYSLOG_IDENTIFIER": "systemd", "_SYSTEMD_UNIT": "init.scope"},
    ],
)
def test_records_of_other_programs_are_not_sshd_events(fields: dict[str, object]) -> None:
    assert JournalParser().parse(record(**fields)) is None


def test_a_message_exported_as_bytes_is_decoded_with_replacement() -> None:
    raw = list(b"Invalid user \xffroot from 192.0.2.8 port 22")
    event = JournalParser().parse(record(MESSAGE=raw))
    assert event is not None and event.kind is EventKind.INVALID_USER
    assert event.user == "\ufffdroot"


def test_a_multi_valued_field_uses_its_first_value() -> None:
    event = JournalParser().parse(record(_HOSTNAME=["first", "second"]))
    assert event is not None and event.host == "first"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("Nov 28 10:00:00 h sshd[1]: Accepted ...", "not a journal JSON record"),
        ("[1, 2]", "not an object"),
        (record(MESSAGE=None), "no MESSAGE"),
        (record(__REALTIME_TIMESTAMP="yesterday"), "not microseconds"),
        (record(__REALTIME_TIMESTAMP=None), "no __REALTIME_TIMESTAMP"),
        (record(_PID="12a"), "not a process id"),
        (record(MESSAGE={"text": "x"}), "not text"),
    ],
)
def test_malformed_sshd_records_raise_record_error_naming_the_problem(
    line: str, reason: str
) -> None:
    with pytest.raises(RecordError, match=reason):
        JournalParser().parse(line)


def test_journal_time_rejects_a_timestamp_out_of_range() -> None:
    with pytest.raises(RecordError, match="out of range"):
        journal_time({"__REALTIME_TIMESTAMP": "9" * 30})


def test_journal_source_pairs_starts_and_ends_like_the_syslog_source() -> None:
    sessions, _ = collect(make_source(host="gpu-node-7"))
    alice = next(s for s in sessions if s.principal == "alice")
    assert alice.outcome is Outcome.SUCCESS
    assert alice.ended_at == datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
    assert alice.attributes["fingerprint"].startswith("SHA256:Hq3Z")
    assert [e.position for e in alice.evidence] == ["line 2", "line 14"]
    admin = next(s for s in sessions if s.principal == "admin")
    assert admin.outcome is Outcome.FAILED and admin.attributes["process"] == "sshd-session"


def test_journal_source_counts_every_line_and_quarantines_garbage() -> None:
    sessions, ctx = collect(make_source())
    lines = len(JOURNAL.read_text().splitlines())
    assert ctx.read == lines
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total
    assert sorted(q.position for q in ctx.quarantined) == ["line 12", "line 13"]
    assert {s.attributes["host"] for s in sessions} == {"gpu-node-7", "gpu-node-8"}


def test_the_host_option_keeps_one_journal_hostname() -> None:
    sessions, _ = collect(make_source(host="gpu-node-8"))
    assert [s.principal for s in sessions] == ["carol"]


def test_an_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="format"):
        make_source(format="journal-export")
