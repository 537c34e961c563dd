"""providers.sshd.parse: sshd syslog lines -> SshdEvent, other syslog -> None, garbage raises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.errors import RecordError
from providers.sshd.parse import EventKind, SshdEvent, SyslogParser, infer_start_year, parse_line

YEAR = 2026
H = "Dec 10 06:55:46 LabSZ"  # classic syslog prefix in the shape of OpenSSH auth.log

# (line, expected fields of the event) -- lines written in the shape of real OpenSSH logs.
EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        f"{H} sshd[24200]: Accepted publickey for alice from 203.0.113.10 port 50122 ssh2: "
        "RSA SHA256:Hq3Z1Jd8Xc2Fv0aTs9yWm4LpKeRbNu7gQoIh5VxYcDw",
        {
            "kind": EventKind.ACCEPTED,
            "pid": 24200,
            "user": "alice",
            "ip": "203.0.113.10",
            "port": 50122,
            "method": "publickey",
            "key_type": "RSA",
            "fingerprint": "SHA256:Hq3Z1Jd8Xc2Fv0aTs9yWm4LpKeRbNu7gQoIh5VxYcDw",
        },
    ),
    (
        f"{H} sshd[24680]: Accepted password for fztu from 198.51.100.142 port 49116 ssh2",
        {"kind": EventKind.ACCEPTED, "user": "fztu", "method": "password", "key_type": None},
    ),
    (
        f"{H} sshd[7]: Accepted keyboard-interactive/pam for carol from 192.0.2.8 port 2200 ssh2",
        {"kind": EventKind.ACCEPTED, "user": "carol", "method": "keyboard-interactive"},
    ),
    (
        f"{H} sshd[8]: Accepted gssapi-with-mic for dan@CORP.EXAMPLE from 192.0.2.9 port 2201 ssh2",
        {"kind": EventKind.ACCEPTED, "user": "dan@CORP.EXAMPLE", "method": "gssapi-with-mic"},
    ),
    (
        f"{H} sshd[9]: Accepted hostbased for build from 192.0.2.10 port 2202 ssh2: "
        "ECDSA SHA256:abcDEF0123",
        {"kind": EventKind.ACCEPTED, "method": "hostbased", "key_type": "ECDSA"},
    ),
    (
        f"{H} sshd[10]: Accepted publickey for eve from 192.0.2.11 port 2203 ssh2: ED25519-CERT "
        "SHA256:certFP ID eve@corp (serial 42) CA ED25519 SHA256:caFP",
        {"kind": EventKind.ACCEPTED, "key_type": "ED25519-CERT", "fingerprint": "SHA256:certFP"},
    ),
    (
        f"{H} sshd[24200]: Failed password for invalid user webmaster from 198.51.100.186 "
        "port 38926 ssh2",
        {
            "kind": EventKind.FAILED,
            "user": "webmaster",
            "invalid_user": True,
            "method": "password",
            "port": 38926,
        },
    ),
    (
        f"{H} sshd[24227]: Failed password for root from 198.51.100.76 port 42393 ssh2",
        {"kind": EventKind.FAILED, "user": "root", "invalid_user": False},
    ),
    (
        f"{H} sshd[24]: Failed none for invalid user 0 from 198.51.100.180 port 52631 ssh2",
        {"kind": EventKind.FAILED, "user": "0", "method": "none", "invalid_user": True},
    ),
    (
        f"{H} sshd[25]: Failed publickey for root from 198.51.100.5 port 4000 ssh2: "
        "RSA SHA256:tryKey",
        {"kind": EventKind.FAILED, "method": "publickey", "fingerprint": "SHA256:tryKey"},
    ),
    (
        f"{H} sshd[24227]: message repeated 5 times: [ Failed password for root from "
        "198.51.100.76 port 42393 ssh2]",
        {"kind": EventKind.FAILED, "user": "root", "repeat": 5},
    ),
    (
        f"{H} sshd[24206]: Invalid user test9 from 198.51.100.196",
        {"kind": EventKind.INVALID_USER, "user": "test9", "port": None, "invalid_user": True},
    ),
    (
        f"{H} sshd[26]: Invalid user oracle from 198.51.100.7 port 51000",
        {"kind": EventKind.INVALID_USER, "user": "oracle", "port": 51000},
    ),
    (
        f"{H} sshd[27]: Invalid user  from 198.51.100.8 port 51001",
        {"kind": EventKind.INVALID_USER, "user": "", "ip": "198.51.100.8"},
    ),
    (
        f"{H} sshd[24200]: Connection closed by 198.51.100.186 [preauth]",
        {"kind": EventKind.CONNECTION_CLOSED, "user": None, "port": None, "preauth": True},
    ),
    (
        f"{H} sshd[28]: Connection closed by authenticating user root 198.51.100.9 port 22 "
        "[preauth]",
        {"kind": EventKind.CONNECTION_CLOSED, "user": "root", "invalid_user": False, "port": 22},
    ),
    (
        f"{H} sshd[29]: Connection closed by invalid user admin 198.51.100.10 port 23 [preauth]",
        {"kind": EventKind.CONNECTION_CLOSED, "user": "admin", "invalid_user": True},
    ),
    (
        f"{H} sshd[30]: Disconnected from user alice 203.0.113.10 port 50122",
        {"kind": EventKind.DISCONNECTED, "user": "alice", "preauth": False},
    ),
    (
        f"{H} sshd[31]: Disconnected from invalid user guest 198.51.100.11 port 24 [preauth]",
        {"kind": EventKind.DISCONNECTED, "user": "guest", "invalid_user": True, "preauth": True},
    ),
    (
        f"{H} sshd[32]: Received disconnect from 203.0.113.10 port 50122:11: disconnected by user",
        {"kind": EventKind.RECEIVED_DISCONNECT, "ip": "203.0.113.10", "port": 50122},
    ),
    (
        f"{H} sshd[24206]: Received disconnect from 198.51.100.196: 11: Bye Bye [preauth]",
        {"kind": EventKind.RECEIVED_DISCONNECT, "ip": "198.51.100.196", "port": None},
    ),
    (
        f"{H} sshd[24680]: pam_unix(sshd:session): session closed for user fztu",
        {"kind": EventKind.SESSION_CLOSED, "user": "fztu", "ip": None},
    ),
    (
        "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: session closed for user test",
        {"kind": EventKind.SESSION_CLOSED, "user": "test", "host": "combo", "pid": 19939},
    ),
    # IPv6 and IPv4-mapped addresses
    (
        f"{H} sshd[40]: Accepted password for bob from 2001:db8:85a3::8a2e:370:7334 "
        "port 60222 ssh2",
        {"kind": EventKind.ACCEPTED, "ip": "2001:db8:85a3::8a2e:370:7334", "port": 60222},
    ),
    (
        f"{H} sshd[41]: Received disconnect from 2001:db8::1 port 2222:11: disconnected by user",
        {"kind": EventKind.RECEIVED_DISCONNECT, "ip": "2001:db8::1", "port": 2222},
    ),
    (
        f"{H} sshd[42]: Failed password for root from 2001:DB8:0:0::2 port 2223 ssh2",
        {"kind": EventKind.FAILED, "ip": "2001:db8::2"},
    ),
    (
        f"{H} sshd[43]: Accepted password for bob from ::ffff:192.0.2.50 port 2224 ssh2",
        {"kind": EventKind.ACCEPTED, "ip": "192.0.2.50"},
    ),
    # OpenSSH 9.8+ per-session process, OpenSSH 10 auth process, no-pid variant
    (
        f"{H} sshd-session[5001]: Accepted publickey for carol from 192.0.2.80 port 40404 ssh2: "
        "ED25519 SHA256:3m2W7bQkzV0c9Yd1",
        {"kind": EventKind.ACCEPTED, "process": "sshd-session", "pid": 5001},
    ),
    (
        f"{H} sshd-auth[5002]: Failed password for carol from 192.0.2.80 port 40405 ssh2",
        {"kind": EventKind.FAILED, "process": "sshd-auth", "pid": 5002},
    ),
    (
        f"{H} sshd: Accepted password for dave from 192.0.2.81 port 40406 ssh2",
        {"kind": EventKind.ACCEPTED, "process": "sshd", "pid": None, "user": "dave"},
    ),
]


@pytest.mark.parametrize(("line", "expected"), EVENTS, ids=[e[0][22:70] for e in EVENTS])
def test_session_relevant_lines_parse_to_events(line: str, expected: dict[str, Any]) -> None:
    event = parse_line(line, year=YEAR)
    assert event is not None
    got = event.model_dump()
    assert {k: got[k] for k in expected} == expected


def test_classic_timestamp_takes_the_callers_year_and_is_utc() -> None:
    event = parse_line(f"{H} sshd[1]: Invalid user x from 192.0.2.1", year=2019)
    assert event is not None
    assert event.at == datetime(2019, 12, 10, 6, 55, 46, tzinfo=UTC)
    assert event.host == "LabSZ"


def test_classic_timestamp_with_space_padded_day() -> None:
    event = parse_line("Feb  3 01:02:03 h sshd[1]: Invalid user x from 192.0.2.1", year=YEAR)
    assert event is not None
    assert event.at == datetime(YEAR, 2, 3, 1, 2, 3, tzinfo=UTC)


def test_classic_timestamp_in_a_configured_zone_converts_to_utc() -> None:
    parser = SyslogParser(year=YEAR, tz=ZoneInfo("Europe/Berlin"))
    event = parser.parse("Nov 28 10:00:00 h sshd[1]: Invalid user x from 192.0.2.1")
    assert event is not None
    assert event.at == datetime(YEAR, 11, 28, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-28T10:00:00.123456+00:00", datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-28T10:00:00Z", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-28T11:30:00.5+01:30", datetime(2026, 11, 28, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-28T10:00:00+0000", datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_carry_their_own_year_and_offset(stamp: str, expected: datetime) -> None:
    line = f"{stamp} gpu-7 sshd-session[77]: Accepted password for a from 192.0.2.1 port 1 ssh2"
    event = parse_line(line, year=1999)
    assert event is not None
    assert (event.at, event.host, event.pid) == (expected, "gpu-7", 77)


@pytest.mark.parametrize(
    "line",
    [
        f"{H} sshd[24200]: reverse mapping checking getaddrinfo for ns.example.com "
        "[198.51.100.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
        f"{H} sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
        f"{H} sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
        f"{H} sshd[24680]: pam_unix(sshd:session): session opened for user fztu by (uid=0)",
        f"{H} sshd[880]: Server listening on 0.0.0.0 port 22.",
        f"{H} sshd[24227]: Disconnecting: Too many authentication failures for root [preauth]",
        f"{H} sshd[1]: Did not receive identification string from 198.51.100.180",
        f"{H} CRON[9001]: pam_unix(cron:session): session closed for user root",
        "Jun 14 15:16:01 combo su(pam_unix)[9558]: session closed for user news",
        "Jun 14 15:16:01 combo kernel: [12345.678] NVRM: loading NVIDIA UNIX Kernel Module",
        f"{H} last message repeated 2 times",
        "2026-11-28T10:00:00Z gpu-7 systemd[1]: Started Session 4 of User root.",
    ],
)
def test_other_syslog_lines_are_not_session_relevant(line: str) -> None:
    assert parse_line(line, year=YEAR) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "not a syslog line"),
        ("this is not syslog at all", "not a syslog line"),
        ("-- Logs begin at Sat 2026-11-28 09:00:00 UTC. --", "not a syslog line"),
        (
            "8 10:09:00 gpu-7 sshd[1010]: Accepted password for m from 192.0.2.1 port 1 ssh2",
            "syslog",
        ),
        ("Foo 10 06:55:46 LabSZ sshd[1]: Invalid user x from 192.0.2.1", "unknown month"),
        (
            "Feb 30 06:55:46 LabSZ sshd[1]: Invalid user x from 192.0.2.1",
            "invalid syslog timestamp",
        ),
        ("Dec 10 06:55:46", "not a syslog line"),
        ("2026-13-28T10:00:00Z gpu-7 sshd[1]: Invalid user x from 192.0.2.1", "RFC 3339"),
        (f"{H} sshd[1]: Accepted password for a from host.example port 22 ssh2", "IP address"),
        (f"{H} sshd[1]: Accepted password for a from 192.0.2.1 port 70000 ssh2", "port"),
    ],
)
def test_garbage_raises_record_error_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(RecordError, match=reason):
        parse_line(line, year=YEAR)


def test_parser_bumps_the_year_when_december_rolls_into_january() -> None:
    parser = SyslogParser(year=2025)
    lines = [
        "Dec 31 23:59:58 h sshd[1]: Invalid user a from 192.0.2.1",
        "Dec 31 23:59:59 h CRON[2]: (root) CMD (true)",
        "Jan  1 00:00:01 h sshd[3]: Invalid user b from 192.0.2.2",
    ]
    events = [parser.parse(line) for line in lines]
    assert [e.at.year for e in events if isinstance(e, SshdEvent)] == [2025, 2026]
    assert parser.rollovers == 1


def test_parser_keeps_the_year_for_small_backward_steps() -> None:
    parser = SyslogParser(year=2026)
    parser.parse("Mar  1 10:00:05 h sshd[1]: Invalid user a from 192.0.2.1")
    event = parser.parse("Mar  1 10:00:01 h sshd[2]: Invalid user b from 192.0.2.2")
    assert event is not None
    assert event.at.year == 2026
    assert parser.rollovers == 0


def test_rfc3339_lines_do_not_disturb_the_classic_year() -> None:
    parser = SyslogParser(year=2026)
    parser.parse("2020-01-01T00:00:00Z h sshd[1]: Invalid user a from 192.0.2.1")
    event = parser.parse("Dec 10 06:55:46 h sshd[2]: Invalid user b from 192.0.2.2")
    assert event is not None
    assert event.at.year == 2026


def test_start_year_is_the_mtime_year_without_rollover() -> None:
    lines = ["Mar  1 10:00:00 h sshd[1]: x", "Mar  2 10:00:00 h sshd[1]: y"]
    mtime = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)
    assert infer_start_year(lines, last_modified=mtime) == 2026


def test_start_year_steps_back_over_a_rollover_in_the_file() -> None:
    lines = ["Dec 30 10:00:00 h sshd[1]: x", "garbage", "Jan  2 10:00:00 h sshd[1]: y"]
    mtime = datetime(2027, 1, 2, 10, 0, 5, tzinfo=UTC)
    assert infer_start_year(lines, last_modified=mtime) == 2026


def test_start_year_steps_back_when_the_file_ends_in_december_but_was_written_in_january() -> None:
    lines = ["Dec 31 23:00:00 h sshd[1]: x"]
    mtime = datetime(2027, 1, 2, 0, 0, 0, tzinfo=UTC)
    assert infer_start_year(lines, last_modified=mtime) == 2026
