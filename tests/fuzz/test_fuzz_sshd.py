"""sshd syslog lines under hostile input: the parser and the sshd-log source's counts."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from providers.sshd.parse import SyslogParser
from providers.sshd.source import SshdLogSource
from tests.fuzz.hostile import FUZZ, NASTY_STRINGS, check

MESSAGES = (
    "Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:abc",
    "Accepted password for {user} from {ip} port {port} ssh2",
    "Failed password for invalid user {user} from {ip} port {port} ssh2",
    "Invalid user {user} from {ip} port {port}",
    "Connection closed by authenticating user {user} {ip} port {port} [preauth]",
    "Disconnected from user {user} {ip} port {port}",
    "Received disconnect from {ip} port {port}:11: disconnected by user",
    "pam_unix(sshd:session): session closed for user {user}",
    "message repeated {port} times: [ Failed password for {user} from {ip} port {port} ssh2]",
)
STAMPS = (
    "Nov 25 08:22:03",
    "Feb 29 00:00:00",
    "Dec 31 23:59:59.999999",
    "Jan  1 00:00:00",
    "2026-11-25T10:00:00.123456+00:00",
    "2026-11-25 10:00:00Z",
    "Foo 99 99:99:99",
)
line_text = st.text(st.characters(blacklist_characters="\r\n"), max_size=40)
field = st.one_of(
    line_text, st.sampled_from([s for s in NASTY_STRINGS if "\n" not in s and len(s) < 6000])
)


@st.composite
def lines(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(line_text)
    values = {
        k: draw(st.one_of(st.just(v), field))
        for k, v in (("user", "alice"), ("ip", "175.45.176.1"), ("port", "22"))
    }
    stamp = draw(st.one_of(st.sampled_from(STAMPS), field))
    host = draw(st.one_of(st.just("gpu-host"), field))
    pid = draw(st.one_of(st.just("[2301]"), st.just(""), field.map(lambda p: f"[{p}]")))
    prog = draw(st.sampled_from(["sshd", "sshd-session", "sshd(pam_unix)", "CRON", "sshd-auth"]))
    message = draw(st.sampled_from(MESSAGES)).format(**values)
    return f"{stamp} {host} {prog}{pid}: {message}"


@FUZZ
@given(st.lists(lines(), min_size=1, max_size=12))
def test_a_hostile_sshd_line_is_an_event_none_or_a_record_error(batch: list[str]) -> None:
    parser = SyslogParser(year=2026)
    for line in batch:
        check("sshd.parse", lambda line=line: parser.parse(line))


def _collect(path: Path) -> tuple[CollectContext, int]:
    ctx = CollectContext(
        window=AuditWindow(since=None, until=None), clock=lambda: datetime.now(UTC)
    )
    env = SourceEnv(name="sshd-log[0]", base_dir=path.parent, clock=ctx.clock)
    source = SshdLogSource.from_config(
        {
            "type": "sshd-log",
            "path": str(path),
            "year": 2026,
            "instance": {"provider": "aws", "account": "1", "instance_id": "i-1"},
        },
        env=env,
    )
    return ctx, sum(len(b.sessions) for b in source.sessions(ctx))


@FUZZ
@given(st.lists(lines(), max_size=20), st.sampled_from([b"\n", b"\r\n"]), st.binary(max_size=8))
def test_the_sshd_source_counts_every_line_read_as_a_session_ignored_or_quarantined(
    batch: list[str], newline: bytes, junk: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "auth.log"
        body = newline.join(line.encode("utf-8", "surrogatepass") for line in batch)
        path.write_bytes(body + junk)
        result = check("sshd.source", lambda: _collect(path))
        if result is None:
            return
        ctx, sessions = result
        assert ctx.read == sessions + ctx.ignored + ctx.quarantined_total
        for q in ctx.quarantined:
            assert q.locator == str(path) and q.position and q.position.startswith("line ")
