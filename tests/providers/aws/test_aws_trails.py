"""CloudTrail readers: the org trail's S3 objects, a CloudWatch Logs group, and Session Manager
end times from DescribeSessions; moto for S3 / Logs, the before-send seam for the rest."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.models import AccessMethod
from providers.aws.client import AwsClient
from providers.aws.provider import AwsSource
from providers.aws.settings import AwsSourceConfig, CloudTrailSpec
from providers.aws.trails import read_log_group, read_trail_bucket

from .conftest import NOW, load_records, make_ctx
from .fakeaws import FakeAws, describe_sessions_pages

ACCOUNT = "123456789012"
DAY = NOW.date()
SPEC = CloudTrailSpec(bucket="trail", prefix="/logs/", organization_id="o-abcdefghij")
BASE = f"logs/AWSLogs/o-abcdefghij/{ACCOUNT}/CloudTrail/us-east-1/{DAY:%Y/%m/%d}/"


def ssm_records(start: datetime, *, session: str = "s-1", end: bool = True) -> list[dict[str, Any]]:
    """A StartSession (and its TerminateSession) from the Stratus capture, moved in time."""
    records = load_records("stratus-red-team__aws.execution.ssm-start-session.json")
    first = next(r for r in records if r["eventName"] == "StartSession")
    out = [
        {
            **first,
            "eventTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventID": f"{session}-a",
            "awsRegion": "us-east-1",
            "recipientAccountId": ACCOUNT,
            "responseElements": {**first["responseElements"], "sessionId": session},
        },
    ]
    if end:
        out.append(
            {
                "eventVersion": "1.08",
                "eventSource": "ssm.amazonaws.com",
                "eventName": "TerminateSession",
                "eventID": f"{session}-b",
                "eventTime": (start + timedelta(minutes=9)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "awsRegion": "us-east-1",
                "recipientAccountId": ACCOUNT,
                "requestParameters": {"sessionId": session},
            }
        )
    return out


def put(s3: Any, key: str, records: Any, *, raw: bytes | None = None) -> str:
    body = raw if raw is not None else gzip.compress(json.dumps({"Records": records}).encode())
    s3.put_object(Bucket="trail", Key=key, Body=body)
    return key


def obj(hhmm: str, n: int) -> str:
    return f"{BASE}{ACCOUNT}_CloudTrail_us-east-1_{DAY:%Y%m%d}T{hhmm}Z_{n:03d}.json.gz"


@pytest.fixture
def s3(aws: None, boto_session: Any) -> tuple[AwsClient, Any]:
    client = AwsClient(session=boto_session)
    bucket = client.client("s3")
    bucket.create_bucket(Bucket="trail")
    return client, bucket


def test_day_objects_are_read_once_in_key_order_and_the_checkpoint_skips_them(
    s3: tuple[AwsClient, Any],
) -> None:
    client, bucket = s3
    start = NOW - timedelta(hours=3)
    a = put(bucket, obj("0905", 1), ssm_records(start)[:1])
    b = put(bucket, obj("0915", 2), ssm_records(start)[1:])  # the end, in the next file
    put(bucket, f"{BASE}notes.txt", None, raw=b"not a trail object")
    digest = (
        f"logs/AWSLogs/o-abcdefghij/{ACCOUNT}/CloudTrail-Digest/us-east-1/{DAY:%Y/%m/%d}/d.json.gz"
    )
    put(bucket, digest, [{"eventName": "StartSession"}])
    bad = put(bucket, obj("0925", 3), None, raw=b"\x1f\x8bnot gzip at all")
    ctx = make_ctx()
    out = read_trail_bucket(
        ctx,
        client=client,
        spec=SPEC,
        account=ACCOUNT,
        region="us-east-1",
        days=[DAY],
        saved={},
        now=NOW,
        source="aws",
    )
    ((tag, session),) = out.collector.tagged()
    assert tag == DAY.isoformat() and session.ended_at == start + timedelta(minutes=9)
    assert session.evidence[0].locator == f"s3://trail/{a}"
    (error,) = ctx.scope_errors
    assert (error.scope, error.code) == (f"s3://trail/{bad}", "corrupt_gzip")
    scope = f"aws:cloudtrail-s3:trail/logs:{ACCOUNT}:us-east-1"
    assert out.checkpoints == [
        (DAY.isoformat(), f"{scope}:{DAY}", bad),
        (DAY.isoformat(), scope, DAY.isoformat()),
    ]
    again = read_trail_bucket(
        make_ctx(),
        client=client,
        spec=SPEC,
        account=ACCOUNT,
        region="us-east-1",
        days=[DAY],
        saved={f"{scope}:{DAY}": b},
        now=NOW,
        source="aws",
    )
    assert again.objects == 1  # only the object after the checkpoint (the corrupt one)


def test_an_explicit_window_reads_objects_delivered_in_it_and_writes_no_checkpoint(
    s3: tuple[AwsClient, Any],
) -> None:
    client, bucket = s3
    put(bucket, obj("0100", 1), ssm_records(NOW - timedelta(hours=11), session="early"))
    put(bucket, obj("1030", 2), ssm_records(NOW - timedelta(hours=2), session="late"))
    window = {"since": NOW - timedelta(hours=3), "until": NOW, "explicit": True}
    ctx = make_ctx(**window)
    out = read_trail_bucket(
        ctx,
        client=client,
        spec=SPEC,
        account=ACCOUNT,
        region="us-east-1",
        days=[DAY],
        saved={},
        now=NOW,
        source="aws",
    )
    assert [s.attributes["sessionId"] for _, s in out.collector.tagged()] == ["late"]
    assert out.checkpoints == [] and out.objects == 1


def test_a_denied_listing_stops_the_unit_and_names_s3_listbucket(s3: tuple[AwsClient, Any]) -> None:
    client, bucket = s3
    put(bucket, obj("0905", 1), ssm_records(NOW - timedelta(hours=3)))
    FakeAws(client.client("s3")).fail("ListObjectsV2", "AccessDenied", "Access Denied", status=403)
    ctx = make_ctx()
    out = read_trail_bucket(
        ctx,
        client=client,
        spec=SPEC,
        account=ACCOUNT,
        region="us-east-1",
        days=[DAY - timedelta(days=1), DAY],
        saved={},
        now=NOW,
        source="aws",
    )
    assert out.failed and out.checkpoints == []
    (error,) = ctx.scope_errors
    assert (error.scope, error.permission) == (f"{ACCOUNT}/us-east-1", "s3:ListBucket")


def test_a_bucket_with_no_object_for_the_scope_is_reported_not_silent(
    s3: tuple[AwsClient, Any],
) -> None:
    client, bucket = s3
    put(bucket, obj("0905", 1).replace("o-abcdefghij/", ""), ssm_records(NOW))  # no org id
    config = AwsSourceConfig.model_validate(
        {
            "type": "aws",
            "regions": ["us-east-1"],
            "ssm_history": False,
            "cloudtrail": {"bucket": "trail", "prefix": "logs", "organization_id": "o-abcdefghij"},
        }
    )
    source = AwsSource(name="aws", config=config, clock=lambda: NOW, client=client)
    ctx = make_ctx()
    batches = list(source.sessions(ctx))
    assert all(b.sessions == () for b in batches)
    (error,) = ctx.scope_errors
    assert error.code == "no_objects" and "organization_id" in (error.remediation or "")


def test_a_log_group_trail_is_read_in_scope_and_resumed_from_its_cursor(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    logs = client.client("logs")
    logs.create_log_group(logGroupName="org-trail")
    logs.create_log_stream(
        logGroupName="org-trail", logStreamName=f"{ACCOUNT}_CloudTrail_us-east-1"
    )
    now = datetime.now(UTC)  # moto drops log events older than 14 days of the real clock
    records = ssm_records(now - timedelta(hours=1))
    other = {**records[0], "recipientAccountId": "999999999999", "eventID": "elsewhere"}
    stamp = int((now - timedelta(hours=1)).timestamp() * 1000)
    logs.put_log_events(
        logGroupName="org-trail",
        logStreamName=f"{ACCOUNT}_CloudTrail_us-east-1",
        logEvents=[
            {"timestamp": stamp + i, "message": m}
            for i, m in enumerate(
                [json.dumps(records[0]), json.dumps(other), "{broken", json.dumps(records[1])]
            )
        ],
    )
    spec = CloudTrailSpec(log_group="org-trail")
    ctx = make_ctx()
    ctx.clock = lambda: now
    out = read_log_group(
        ctx,
        client=client,
        spec=spec,
        saved=None,
        now=now,
        source="aws",
        accounts=frozenset({ACCOUNT}),
        regions=None,
    )
    (session,) = out.collector.sessions()
    assert session.ended_at is not None and session.evidence[0].locator == "logs:org-trail"
    assert (ctx.read, ctx.ignored, ctx.quarantined_total) == (4, 2, 1)  # other account + end
    ((_, scope, cursor),) = out.checkpoints
    assert scope == "aws:cloudtrail-logs:org-trail" and cursor.startswith(f"{stamp + 3}|")
    again = read_log_group(
        make_ctx(),
        client=client,
        spec=spec,
        saved=cursor,
        now=now,
        source="aws",
        accounts=frozenset({ACCOUNT}),
        regions=None,
    )
    assert again.checkpoints == []


# ----------------------------------------------------------------------------- SSM history


def lookup_source(client: AwsClient, records: list[dict[str, Any]], **extra: Any) -> AwsSource:
    from .fakeaws import lookup_events_pages

    FakeAws(client.client("cloudtrail", "us-east-1")).on(
        "LookupEvents", lookup_events_pages(records)
    )
    config = AwsSourceConfig.model_validate({"type": "aws", "regions": ["us-east-1"], **extra})
    return AwsSource(name="aws", config=config, clock=lambda: NOW, client=client)


def test_describe_sessions_fills_the_end_of_a_session_without_terminate_despite_a_throttle(
    aws: None, boto_session: Any, no_backoff: None
) -> None:
    client = AwsClient(session=boto_session)
    start = NOW - timedelta(hours=2)
    records = ssm_records(start, session="open-1", end=False)
    source = lookup_source(client, records)
    target = records[0]["requestParameters"]["target"]
    ssm = FakeAws(client.client("ssm", "us-east-1"))
    ssm.throttle("DescribeSessions")
    ssm.on(
        "DescribeSessions",
        describe_sessions_pages(
            [
                {
                    "SessionId": "other",
                    "Target": target,
                    "StartDate": start,
                    "EndDate": start + timedelta(minutes=1),
                },
                {
                    "SessionId": "open-1",
                    "Target": target,
                    "StartDate": start,
                    "EndDate": start + timedelta(minutes=42),
                },
                {"SessionId": "x", "Target": "i-elsewhere", "StartDate": start, "EndDate": start},
            ],
            page_size=1,
        ),
    )
    ctx = make_ctx()
    (batch, *_) = source.sessions(ctx)
    (session,) = [s for s in batch.sessions if s.method is AccessMethod.SSM_SESSION]
    assert session.ended_at == start + timedelta(minutes=42)
    assert session.attributes["ended_at_source"] == "ssm:DescribeSessions"
    call = ssm.calls_to("DescribeSessions")[-1]
    assert call["State"] == "History" and {"key": "Target", "value": target} in call["Filters"]
    assert ctx.scope_errors == []


def test_denied_describe_sessions_is_a_scope_error_and_the_session_still_arrives(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    source = lookup_source(client, ssm_records(NOW - timedelta(hours=2), end=False))
    FakeAws(client.client("ssm", "us-east-1")).fail(
        "DescribeSessions", "AccessDeniedException", "no"
    )
    ctx = make_ctx()
    (batch, *_) = source.sessions(ctx)
    assert [s.ended_at for s in batch.sessions] == [None]
    (error,) = ctx.scope_errors
    assert error.permission == "ssm:DescribeSessions" and "ssm_history: false" in (
        error.remediation or ""
    )


def test_ssm_history_false_never_calls_describe_sessions(aws: None, boto_session: Any) -> None:
    client = AwsClient(session=boto_session)
    source = lookup_source(
        client, ssm_records(NOW - timedelta(hours=2), end=False), ssm_history=False
    )
    ssm = FakeAws(client.client("ssm", "us-east-1"))
    ctx = make_ctx()
    list(source.sessions(ctx))
    assert ssm.calls_to("DescribeSessions") == [] and ctx.scope_errors == []
