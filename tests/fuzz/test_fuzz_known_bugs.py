"""Deterministic reproductions of the parser bugs the fuzzers found (issue 9, part A).

Each was found by the fuzzers and is fixed; these tests keep it fixed. A newly found bug goes
here as ``xfail(strict=True)`` with its signature in ``hostile.KNOWN_BUGS`` until it is fixed.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import AuditWindow, CollectContext, SourceEnv
from agent.errors import RecordError, UsageError
from agent.models import EvidenceRef
from agent.yamlio import loads_yaml
from providers.aws.files import CloudTrailFilesSource, Unreadable, parse_document
from providers.aws.normalize import session_from_cloudtrail
from providers.kubernetes.audit import parse_event_list
from providers.kubernetes.events import access_from, to_session
from providers.kubernetes.wrappers import RawEvent
from providers.sshd.parse import parse_line
from tests.fuzz.hostile import KNOWN_BUGS, usable
from tests.fuzz.seeds import json_records

HUGE = "9" * 5000
DEEP = b"[" * 100_000 + b"]" * 100_000
START = {
    "eventName": "StartSession",
    "eventSource": "ssm.amazonaws.com",
    "eventTime": "2026-11-25T09:12:37Z",
    "sourceIPAddress": "175.45.176.1",
    "requestParameters": {"target": "i-0a1b2c3d4e5f60001"},
}


def bug(reason: str, raises: type[BaseException]) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason, raises=raises)


def test_every_known_bug_signature_has_a_reproduction_here() -> None:
    assert {b.test for b in KNOWN_BUGS} <= set(globals())


def _is_event_or_record_error(line: str) -> None:
    with contextlib.suppress(RecordError):
        parse_line(line, year=2026)


@pytest.mark.parametrize(
    "line",
    [
        f"Nov 25 08:22:03 h sshd[{HUGE}]: Accepted publickey for a from 1.2.3.4 port 22 ssh2",
        f"Nov 25 08:22:03 h sshd[1]: Accepted publickey for a from 1.2.3.4 port {HUGE} ssh2",
    ],
)
def test_sshd_huge_pid_or_port_is_a_record_error(line: str) -> None:
    _is_event_or_record_error(line)


def test_sshd_rfc3339_time_at_the_edge_of_the_calendar_is_a_record_error() -> None:
    line = "0001-01-01T00:00:00+01:00 h sshd[1]: Accepted publickey for a from 1.2.3.4 port 22"
    _is_event_or_record_error(line)


def _entries_or_unreadable(data: bytes) -> None:
    with contextlib.suppress(Unreadable):
        parse_document(data)


def test_cloudtrail_file_nested_past_the_recursion_limit_is_unreadable() -> None:
    _entries_or_unreadable(b'{"Records": [' + DEEP + b"]}")


def test_cloudtrail_file_with_a_5000_digit_number_is_unreadable() -> None:
    _entries_or_unreadable(b'{"Records": [' + HUGE.encode() + b"]}")


def test_one_poisoned_cloudtrail_file_does_not_hide_the_files_after_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        good = json.dumps({"Records": [{**START, "eventID": "e-1"}]}).encode()
        for name, data in (
            ("a.json", good),
            ("b.json", DEEP),
            ("c.json", good.replace(b"e-1", b"e-2")),
        ):
            (Path(tmp) / name).write_bytes(data)
        ctx = CollectContext(window=AuditWindow(None, None), clock=lambda: datetime.now(UTC))
        env = SourceEnv(name="ct", base_dir=Path(tmp), clock=ctx.clock)
        source = CloudTrailFilesSource.from_config(
            {"type": "cloudtrail-files", "paths": [f"{tmp}/*.json"]}, env=env
        )
        batches = list(source.sessions(ctx))
    assert [len(b.sessions) for b in batches] == [1, 1]


def test_cloudtrail_lone_surrogate_in_event_id_is_a_record_error() -> None:
    try:
        session = session_from_cloudtrail(
            {**START, "eventID": "e\ud800"}, locator="f", position="1"
        )
    except RecordError:
        return
    assert session is not None
    usable(session)


K8S_EXEC = json_records("k8s/audit/falco__exec_pod.json")[0]


def test_k8s_lone_surrogate_in_audit_id_is_a_record_error() -> None:
    try:
        access = access_from(RawEvent("k8s", {**K8S_EXEC, "auditID": "a\ud800"}, "audit.k8s.io/v1"))
    except RecordError:
        return
    assert access is not None
    evidence = EvidenceRef(kind="file", locator="f", position="1")
    usable(to_session(access, cluster="c", source="s", node=None, evidence=evidence))


def _webhook(items: bytes) -> Any:
    body = b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [' + items + b"]}"
    try:
        return parse_event_list(body, cluster="c")
    except RecordError:
        return None


def test_k8s_webhook_body_with_a_5000_digit_number_is_a_record_error() -> None:
    _webhook(HUGE.encode())


def test_k8s_webhook_body_nested_past_the_recursion_limit_is_a_record_error() -> None:
    _webhook(DEEP)


def _usage_error(text: str) -> None:
    try:
        loads_yaml(text, name="pack.yaml")
    except UsageError as exc:
        assert exc.message.startswith("pack.yaml")


def test_yaml_self_referencing_alias_is_a_usage_error() -> None:
    _usage_error("a: &a [*a]\n")


@pytest.mark.parametrize("text", ["a: !0 x\n", "a: \x1f\n"])
def test_yaml_unknown_tag_or_control_character_is_a_usage_error(text: str) -> None:
    _usage_error(text)
