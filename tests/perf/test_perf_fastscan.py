"""The CloudTrail fast path reads exactly what the full parser reads, only faster: the same
sessions, positions and counts on realistic trails, and the full parser whenever it cannot
vouch for a document. No timings are asserted here (see bench/)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.contracts import AuditWindow, CollectContext
from bench import gen_cloudtrail
from providers.aws import normalize
from providers.aws.collect import RecordCollector
from providers.aws.fastscan import (
    CANDIDATE_EVENT_NAMES,
    gunzip,
    read_ahead,
    scan_document,
    unit_key,
)
from providers.aws.files import (
    CloudTrailFilesConfig,
    CloudTrailFilesSource,
    Unreadable,
    parse_document,
)

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def make_ctx() -> CollectContext:
    return CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: NOW)


def record(name: str, i: int, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/u{i}"},
        "eventTime": f"2026-11-24T10:{i % 60:02d}:00Z",
        "eventSource": "ssm.amazonaws.com" if "Session" in name else "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "1.2.4.8",
        "requestParameters": {"target": "i-0a1b2c3d4e5f60001", "sessionId": f"s-{i}"},
        "responseElements": {"sessionId": f"s-{i}"},
        "eventID": f"evt-{i}",
        "recipientAccountId": "111122223333",
    }
    rec.update(extra)
    return rec


def delivery(records: list[dict[str, Any]]) -> bytes:
    """Compact and gzip'd, as S3 delivers it."""
    return gzip.compress(orjson.dumps({"Records": records}))


def exact_candidates(data: bytes) -> list[tuple[str, Any, str | None]]:
    names = set(CANDIDATE_EVENT_NAMES)
    entries = parse_document(data)
    return [e for e in entries if isinstance(e[1], dict) and e[1].get("eventName") in names]


def reference_sessions(path: Path) -> tuple[tuple[Any, ...], int, int, int]:
    """Sessions and counts of one file through the full parser (the pre-fast-path code)."""
    ctx = make_ctx()
    collector = RecordCollector(
        ctx=ctx, source="trail", locator=str(path), kind="file", filter_window=True
    )
    for position, rec, reason in parse_document(path.read_bytes()):
        if reason is not None:
            collector.add_unparsable(position=position, reason=reason)
        else:
            collector.add(rec, position=position)
    return collector.sessions(), ctx.read, ctx.ignored, ctx.quarantined_total


def test_candidate_names_cover_every_session_rule_and_the_ssm_end_event() -> None:
    rules = set(normalize._SESSION_RULES)  # the registry the normaliser dispatches on
    assert rules | {"TerminateSession"} == set(CANDIDATE_EVENT_NAMES)


def test_generated_org_trail_gives_the_same_sessions_positions_and_counts(tmp_path: Path) -> None:
    gen_cloudtrail.generate(tmp_path, size=1_200_000, files=6, session_share=0.02, seed=11)
    paths = sorted((tmp_path / "trail").rglob("*.json.gz"))
    config = CloudTrailFilesConfig(type="cloudtrail-files", paths=[str(tmp_path / "trail")])
    source = CloudTrailFilesSource(name="trail", config=config)
    ctx = make_ctx()
    batches = {b.unit: b for b in source.sessions(ctx)}
    expected = [reference_sessions(p) for p in paths]
    assert [batches[str(p)].sessions for p in paths] == [e[0] for e in expected]
    assert ctx.read == sum(e[1] for e in expected)
    assert ctx.ignored == sum(e[2] for e in expected)
    assert ctx.quarantined_total == sum(e[3] for e in expected) == 0
    assert sum(len(b.sessions) for b in batches.values()) > 10


def test_only_candidate_records_are_parsed_and_the_rest_is_counted(tmp_path: Path) -> None:
    gen_cloudtrail.generate(tmp_path, size=400_000, files=1, session_share=0.03, seed=3)
    (path,) = (tmp_path / "trail").rglob("*.json.gz")
    data = path.read_bytes()
    scan = scan_document(data, fallback=parse_document)
    assert scan.mode == "spans"
    assert scan.entries == exact_candidates(data)
    assert len(scan.entries) + scan.skipped == len(parse_document(data))


def test_a_session_name_inside_a_string_is_not_a_candidate() -> None:
    policy = json.dumps({"Action": ["ssm:StartSession"], "eventName": "StartSession"})
    records = [
        record("PutRolePolicy", 1, requestParameters={"policyDocument": policy}),
        record("StartSession", 2),
    ]
    scan = scan_document(delivery(records), fallback=parse_document)
    assert [(p, r["eventName"]) for p, r, _ in scan.entries] == [("record 1", "StartSession")]
    assert scan.skipped == 1


def test_spaces_around_the_event_name_still_make_a_candidate() -> None:
    body = orjson.dumps({"Records": [record("DescribeInstances", 0), record("X", 1)]})
    body = body.replace(b'"eventName":"X"', b'"eventName" : " StartSession "')
    scan = scan_document(body, fallback=parse_document)
    assert scan.mode == "spans"
    assert [p for p, _, _ in scan.entries] == ["record 1"]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Records": [record("StartSession", 1)]}, indent=2).encode(),  # pretty
        json.dumps([record("StartSession", 1), record("GetObject", 2)]).encode(),  # bare list
        b"\n".join(orjson.dumps(r) for r in (record("StartSession", 1), record("X", 2))),  # JSONL
        orjson.dumps({"Records": [{"eventName": "StartSession", "eventVersion": "1"}]}),  # order
    ],
    ids=["pretty", "list", "jsonl", "key-order"],
)
def test_other_layouts_take_the_full_parser(body: bytes) -> None:
    scan = scan_document(body, fallback=parse_document)
    assert scan.mode == "full"
    assert scan.entries == parse_document(body)
    assert scan.skipped == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x1f\x8b\x08\x00garbage", "corrupt_gzip"),
        (
            gzip.compress(b'{"Records":[{"eventVersion":"1.09","eventName":"StartSession"')[:-8],
            "corrupt_gzip",
        ),
        (b'{"Records":[{"eventVersion":"1.09","eventName":"StartSession"', "invalid_json"),
        (b'{"Records":[{"eventVersion":"1.09","x":"\xff\xfe"}]}', "bad_encoding"),
    ],
    ids=["bad-gzip", "truncated-gzip", "truncated-json", "bad-utf8"],
)
def test_unusable_files_fail_exactly_like_the_full_parser(data: bytes, code: str) -> None:
    with pytest.raises(Unreadable) as exact:
        parse_document(data)
    with pytest.raises(Unreadable) as fast:
        scan_document(data, fallback=parse_document)
    assert fast.value.code == exact.value.code == code


def test_a_candidate_span_that_does_not_parse_falls_back_to_the_full_parser() -> None:
    # An object nested in a record that starts like a record cuts the span short.
    nested = record("StartSession", 1, requestParameters={"x": {"eventVersion": "2"}})
    body = orjson.dumps({"Records": [record("GetObject", 0), nested]})
    scan = scan_document(body, fallback=parse_document)
    assert scan.mode == "full"
    assert scan.entries == parse_document(body)


def test_malformed_candidates_are_quarantined_and_other_records_only_counted(
    tmp_path: Path,
) -> None:
    records = [
        record("StartSession", 1, eventTime="not a time"),  # a candidate: quarantined
        {"eventVersion": "1.09", "eventName": "GetObject"},  # no eventTime, not a candidate
        record("StartSession", 3),
    ]
    path = tmp_path / "111122223333_CloudTrail_us-east-1_20261124T1000Z_x.json.gz"
    path.write_bytes(delivery(records))
    config = CloudTrailFilesConfig(type="cloudtrail-files", paths=[str(path)])
    ctx = make_ctx()
    (batch,) = CloudTrailFilesSource(name="trail", config=config).sessions(ctx)
    assert len(batch.sessions) == 1
    assert (ctx.read, ctx.ignored, ctx.quarantined_total) == (3, 1, 1)
    assert ctx.quarantined[0].position == "record 0"


def test_every_gzip_member_is_decompressed_and_padding_is_allowed() -> None:
    data = gzip.compress(b"abc") + gzip.compress(b"def") + b"\0\0"
    assert gunzip(data) == b"abcdef"
    with pytest.raises(EOFError):
        gunzip(gzip.compress(b"abcdef" * 100)[:-10])


@pytest.mark.parametrize(
    ("path", "unit"),
    [
        (
            "/d/AWSLogs/o-abc123/111122223333/CloudTrail/us-east-1/2026/11/24/f.json.gz",
            "s|111122223333|us-east-1|2026-11-24",
        ),
        (
            "/d/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/01/02/f.json.gz",
            "s|111122223333|eu-west-1|2026-01-02",
        ),
        (
            "/x/111122223333_CloudTrail_ap-south-1_20261124T1915Z_ab.json.gz",
            "s|111122223333|ap-south-1|2026-11-24",
        ),
        ("/x/export.json", "s|/x/export.json"),
    ],
)
def test_a_file_unit_is_account_region_and_day_when_the_path_says_them(
    path: str, unit: str
) -> None:
    assert unit_key("s", path) == unit


_names = st.sampled_from([*CANDIDATE_EVENT_NAMES, "GetObject", "AssumeRole", "Decrypt"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_names, min_size=1, max_size=30), junk=st.text(max_size=20))
def test_any_mix_of_records_gives_the_exact_candidates(names: list[str], junk: str) -> None:
    records = [record(n, i, userAgent=junk) for i, n in enumerate(names)]
    body = delivery(records)
    scan = scan_document(body, fallback=parse_document)
    assert scan.mode == "spans"
    assert scan.entries == exact_candidates(body)
    assert scan.skipped == len(records) - len(scan.entries)


def test_read_ahead_keeps_order_and_hands_over_read_errors(tmp_path: Path) -> None:
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.json.gz"
        path.write_bytes(gzip.compress(f'{{"n":{i}}}'.encode()))
        paths.append(path)
    paths.insert(2, tmp_path / "missing.json")
    got = list(read_ahead(paths, depth=2))
    assert [p for p, _ in got] == paths
    assert isinstance(got[2][1], OSError)
    assert [d for _, d in got if not isinstance(d, OSError)] == [
        f'{{"n":{i}}}'.encode() for i in range(5)
    ]
    early = read_ahead(paths, depth=2)
    next(early)
    early.close()  # leaves no reader behind
