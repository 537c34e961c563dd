"""CloudTrail under hostile input: records, whole files, and the files source's counts."""

from __future__ import annotations

import gzip
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from providers.aws.files import CloudTrailFilesSource, Unreadable, parse_document
from providers.aws.normalize import event_time, session_from_cloudtrail, ssm_session_end
from tests.fuzz.hostile import FUZZ, NASTY_JSON, check, hostile_values, mutated, texts

_IDENTITY = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLE:alice",
    "arn": "arn:aws:sts::111122223333:assumed-role/ml/alice",
    "accountId": "111122223333",
    "sessionContext": {
        "sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/ml"},
        "attributes": {"mfaAuthenticated": "false"},
    },
}
_BASE = {
    "eventVersion": "1.09",
    "userIdentity": _IDENTITY,
    "eventTime": "2026-11-25T09:12:37Z",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "175.45.176.1",
    "userAgent": "aws-cli/2.22.4",
    "eventID": "8ca81811-66d2-2876-72fd-f2022a96fb1a",
    "recipientAccountId": "111122223333",
}
TEMPLATES: list[dict[str, Any]] = [
    {
        **_BASE,
        "eventSource": "ssm.amazonaws.com",
        "eventName": "StartSession",
        "requestParameters": {
            "target": "i-0a1b2c3d4e5f60001",
            "documentName": "AWS-StartPortForwardingSession",
        },
        "responseElements": {"sessionId": "alice-0123"},
    },
    {
        **_BASE,
        "eventSource": "ssm.amazonaws.com",
        "eventName": "ResumeSession",
        "requestParameters": {"sessionId": "alice-0123"},
    },
    {
        **_BASE,
        "eventSource": "ssm.amazonaws.com",
        "eventName": "TerminateSession",
        "requestParameters": {"sessionId": "alice-0123"},
    },
    {
        **_BASE,
        "eventSource": "ec2-instance-connect.amazonaws.com",
        "eventName": "SendSSHPublicKey",
        "requestParameters": {"instanceId": "i-0a1b2c3d4e5f60001", "instanceOSUser": "ec2-user"},
    },
    {
        **_BASE,
        "eventSource": "ec2-instance-connect.amazonaws.com",
        "eventName": "SendSerialConsoleSSHPublicKey",
        "requestParameters": {"instanceId": "i-0a1b2c3d4e5f60001", "serialPort": 0},
    },
    {
        **_BASE,
        "eventSource": "ec2-instance-connect.amazonaws.com",
        "eventName": "OpenTunnel",
        "requestParameters": {
            "instanceConnectEndpointId": "eice-1",
            "remotePort": "22",
            "privateIpAddress": "10.1.1.10",
        },
    },
    {
        **_BASE,
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MFAUsed": "No"},
    },
]
records = st.one_of(
    st.sampled_from(TEMPLATES).flatmap(mutated),
    st.sampled_from(TEMPLATES).flatmap(mutated).map(lambda r: {"detail": r}),
    hostile_values,
)


@FUZZ
@given(records)
def test_a_hostile_cloudtrail_record_is_a_session_none_or_a_record_error(record: Any) -> None:
    check("aws.session", lambda: session_from_cloudtrail(record, locator="f.json", position="1"))
    check("aws.event_time", lambda: event_time(record))
    check("aws.session_end", lambda: ssm_session_end(record))


def _document(items: list[Any], shape: str) -> bytes:
    if shape == "lines":
        return "\n".join(json.dumps(i) for i in items).encode()
    body = json.dumps({"Records": items} if shape == "records" else items).encode()
    return gzip.compress(body) if shape == "gzip" else body


files = st.one_of(
    st.builds(
        _document,
        st.lists(records, max_size=6),
        st.sampled_from(["records", "list", "lines", "gzip"]),
    ),
    st.binary(max_size=300),
    st.sampled_from(
        [b"\x1f\x8b\x08\x00garbage", b'{"Records": 5}', b"\xef\xbb\xbf[]", b"[1,", b"\xff\xfe{}"]
    ),
    st.sampled_from(NASTY_JSON),
    st.sampled_from(NASTY_JSON).map(lambda x: b'{"Records": [{"eventName": 1}, ' + x + b"]}"),
    st.sampled_from(NASTY_JSON).map(lambda x: b'{"eventName": "a"}\n' + x),
    texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(files)
def test_a_hostile_cloudtrail_file_parses_to_entries_or_is_unreadable(data: bytes) -> None:
    entries = check("aws.parse_document", lambda: parse_document(data), allowed=(Unreadable,))
    for position, _record, reason in entries or ():
        assert position and (reason is None or reason)


def _collect(folder: Path) -> tuple[CollectContext, int]:
    ctx = CollectContext(
        window=AuditWindow(since=None, until=None), clock=lambda: datetime.now(UTC)
    )
    env = SourceEnv(name="cloudtrail-files[0]", base_dir=folder, clock=ctx.clock)
    source = CloudTrailFilesSource.from_config(
        {"type": "cloudtrail-files", "paths": [str(folder / "*")]}, env=env
    )
    sessions = sum(len(b.sessions) for b in source.sessions(ctx))
    return ctx, sessions


@FUZZ
@given(st.lists(files, min_size=1, max_size=4))
def test_the_files_source_counts_every_record_read_as_a_session_ignored_or_quarantined(
    contents: list[bytes],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, data in enumerate(contents):
            (folder / f"{i:02d}.json").write_bytes(data)
        result = check("aws.files", lambda: _collect(folder))
        if result is None:
            return
        ctx, sessions = result
        assert ctx.read == sessions + ctx.ignored + ctx.quarantined_total
        for q in ctx.quarantined:
            assert q.locator.startswith(tmp) and q.position and q.reason
        assert all(e.scope.startswith(tmp) for e in ctx.scope_errors)
