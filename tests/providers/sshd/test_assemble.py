"""providers.sshd.assemble: pairing of session ends and folding of failed attempts."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.models import Outcome, Session
from providers.sshd.assemble import SessionAssembler, SshdTarget
from providers.sshd.parse import SyslogParser

TARGET = SshdTarget(provider="onprem", account="dc-1", instance_id="gpu-box-01")


def assemble(*lines: str) -> tuple[list[Session], list[bool]]:
    parser = SyslogParser(year=2026)
    assembler = SessionAssembler(target=TARGET, source="s", locator="/var/log/auth.log")
    started = []
    for n, line in enumerate(lines, start=1):
        event = parser.parse(line)
        assert event is not None, line
        started.append(assembler.feed(event, line=n))
    return assembler.sessions(), started


def test_without_pids_the_end_pairs_by_ip_port_and_user() -> None:
    sessions, started = assemble(
        "Nov 28 10:00:00 h sshd: Accepted password for ann from 192.0.2.1 port 4000 ssh2",
        "Nov 28 10:05:00 h sshd: Disconnected from user ann 192.0.2.1 port 4000",
    )
    assert started == [True, False]
    assert sessions[0].ended_at == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)


def test_an_end_for_another_user_on_the_same_address_does_not_pair() -> None:
    sessions, _ = assemble(
        "Nov 28 10:00:00 h sshd: Accepted password for ann from 192.0.2.1 port 4000 ssh2",
        "Nov 28 10:05:00 h sshd: Disconnected from user bob 192.0.2.1 port 4000",
    )
    assert sessions[0].ended_at is None


def test_only_the_first_end_line_sets_the_end_time() -> None:
    sessions, started = assemble(
        "Nov 28 10:00:00 h sshd[5]: Accepted password for ann from 192.0.2.1 port 4000 ssh2",
        "Nov 28 10:05:00 h sshd[5]: Received disconnect from 192.0.2.1 port 4000:11: bye",
        "Nov 28 10:05:02 h sshd[5]: pam_unix(sshd:session): session closed for user ann",
    )
    assert started == [True, False, False]
    assert sessions[0].ended_at == datetime(2026, 11, 28, 10, 5, tzinfo=UTC)
    assert [e.event_name for e in sessions[0].evidence] == [
        "Accepted password",
        "Received disconnect",
    ]


def test_a_reused_pid_after_a_closed_attempt_starts_a_new_attempt() -> None:
    sessions, started = assemble(
        "Nov 28 10:00:00 h sshd[7]: Failed password for root from 192.0.2.9 port 1 ssh2",
        "Nov 28 10:00:01 h sshd[7]: Connection closed by authenticating user root 192.0.2.9 "
        "port 1 [preauth]",
        "Nov 28 12:00:00 h sshd[7]: Failed password for root from 192.0.2.9 port 2 ssh2",
    )
    assert started == [True, False, True]
    assert [s.outcome for s in sessions] == [Outcome.FAILED, Outcome.FAILED]
    assert sessions[0].key != sessions[1].key


def test_invalid_user_without_port_takes_the_port_of_the_following_failure() -> None:
    sessions, started = assemble(
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 198.51.100.186",
        "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster "
        "from 198.51.100.186 port 38926 ssh2",
        "Dec 10 06:55:48 LabSZ sshd[24200]: Connection closed by 198.51.100.186 [preauth]",
    )
    assert started == [True, False, False]
    (attempt,) = sessions
    assert attempt.attributes["port"] == "38926"
    assert attempt.attributes["attempts"] == "1"
    assert attempt.attributes["auth_method"] == "password"
    assert attempt.ended_at == datetime(2026, 12, 10, 6, 55, 48, tzinfo=UTC)


def test_failures_for_different_users_on_one_connection_stay_separate() -> None:
    sessions, _ = assemble(
        "Nov 28 10:00:00 h sshd[8]: Failed password for root from 192.0.2.9 port 1 ssh2",
        "Nov 28 10:00:01 h sshd[8]: Failed password for admin from 192.0.2.9 port 1 ssh2",
    )
    assert [s.principal for s in sessions] == ["root", "admin"]


def test_unpaired_end_lines_start_nothing() -> None:
    sessions, started = assemble(
        "Nov 28 10:08:00 h sshd[9]: Connection closed by 198.51.100.77 port 40000 [preauth]",
    )
    assert (sessions, started) == ([], [False])
