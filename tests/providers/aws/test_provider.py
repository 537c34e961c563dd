"""Live AWS source against moto (EC2) and faked CloudTrail LookupEvents pages."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent import registry
from agent.contracts import CollectContext, InventorySource, SessionBatch, SessionSource, SourceEnv
from agent.errors import ConfigError
from agent.models import AccessMethod, GpuInstance
from providers.aws.client import AwsClient
from providers.aws.provider import CHECKPOINT_OVERLAP, AwsSource, AwsSourceConfig

from .conftest import NOW, load_records, make_ctx
from .fakeaws import FakeAws, lookup_events_pages

ACCOUNT = "123456789012"  # moto's default account
REGIONS = ["us-east-1", "eu-west-1"]


def make_source(client: AwsClient, regions: list[str] | None = REGIONS) -> AwsSource:
    config = AwsSourceConfig(type="aws", regions=regions)
    return AwsSource(name="aws-prod", config=config, clock=lambda: NOW, client=client)


def region_batches(source: AwsSource, ctx: CollectContext) -> list[SessionBatch]:
    """The account/region batches (without the ConsoleLogin checkpoint batches)."""
    return [b for b in source.sessions(ctx) if b.unit != "aws:console-logins"]


def region_events(region: str, start: datetime) -> list[dict[str, Any]]:
    """Real Stratus records moved into ``region``: SSM at ``start``, Instance Connect 2 min and
    the console login 4 min later, each capture keeping its own relative timing."""
    ssm = [
        r
        for r in load_records("stratus-red-team__aws.execution.ssm-start-session.json")
        if r["eventName"] in {"StartSession", "TerminateSession"}
    ]
    eic = load_records("stratus-red-team__aws.lateral-movement.ec2-instance-connect.json")
    login = load_records("stratus-red-team__aws.initial-access.console-login-without-mfa.json")
    out = []
    for minutes, group in ((0, ssm), (2, eic), (4, login)):
        first = min(datetime.fromisoformat(r["eventTime"]) for r in group)
        for record in group:
            moved = copy.deepcopy(record)
            when = (
                start
                + timedelta(minutes=minutes)
                + (datetime.fromisoformat(record["eventTime"]) - first)
            )
            moved.update(
                awsRegion=region,
                recipientAccountId=ACCOUNT,
                eventTime=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                eventID=f"{region}-{record['eventID']}",
            )
            out.append(moved)
    return out


@pytest.fixture
def client(aws: None, boto_session: Any) -> AwsClient:
    return AwsClient(session=boto_session)


@pytest.fixture
def trails(client: AwsClient) -> dict[str, FakeAws]:
    """LookupEvents for both regions, two events per page."""
    fakes = {}
    for region in REGIONS:
        fake = FakeAws(client.client("cloudtrail", region))
        fake.on(
            "LookupEvents", lookup_events_pages(region_events(region, NOW - timedelta(hours=1)))
        )
        fakes[region] = fake
    return fakes


def run_instance(client: AwsClient, region: str, instance_type: str, name: str) -> str:
    reply = client.client("ec2", region).run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )
    return str(reply["Instances"][0]["InstanceId"])


# ----------------------------------------------------------------------------- inventory


def test_inventory_lists_gpu_and_plain_instances_with_live_accelerators(client: AwsClient) -> None:
    ids = {
        run_instance(client, "us-east-1", "p5.48xlarge", "trainer"): "p5.48xlarge",
        run_instance(client, "us-east-1", "t3.micro", "bastion"): "t3.micro",
        run_instance(client, "eu-west-1", "g5.xlarge", "render"): "g5.xlarge",
    }
    ec2_fakes = {r: FakeAws(client.client("ec2", r)) for r in REGIONS}  # records calls only
    ctx = make_ctx()
    found = {i.instance_id: i for i in make_source(client).inventory(ctx)}
    assert set(found) == set(ids) and ctx.scope_errors == []
    by_type = {i.instance_type: i for i in found.values()}
    p5, g5, t3 = by_type["p5.48xlarge"], by_type["g5.xlarge"], by_type["t3.micro"]
    assert [(a.model, a.count) for a in p5.accelerators] == [("nvidia-h100", 8)]
    assert [(a.model, a.count) for a in g5.accelerators] == [("nvidia-a10g", 1)]
    assert t3.accelerators == () and not t3.has_accelerators
    assert (p5.account, p5.region, g5.region) == (ACCOUNT, "us-east-1", "eu-west-1")
    assert p5.name == "trainer" and p5.private_ips and p5.network_interfaces
    assert all(ec2_fakes[r].calls_to("DescribeInstanceTypes") for r in REGIONS)


def test_denied_instance_types_fall_back_to_the_offline_catalog(client: AwsClient) -> None:
    run_instance(client, "us-east-1", "p4d.24xlarge", "a100s")
    FakeAws(client.client("ec2", "us-east-1")).fail(
        "DescribeInstanceTypes", "UnauthorizedOperation", "You are not authorized"
    )
    ctx = make_ctx()
    with capture_logs() as logs:
        (instance,) = make_source(client, ["us-east-1"]).inventory(ctx)
    assert [(a.model, a.count) for a in instance.accelerators] == [("nvidia-a100", 8)]
    assert ctx.scope_errors == []
    assert any(e["event"] == "aws_instance_types_fallback" for e in logs)


def test_type_unknown_to_ec2_and_catalog_is_a_scope_error(client: AwsClient) -> None:
    run_instance(client, "us-east-1", "x9.huge", "mystery")
    ctx = make_ctx()
    (instance,) = make_source(client, ["us-east-1"]).inventory(ctx)
    assert instance.accelerators == ()
    (error,) = ctx.scope_errors
    assert error.code == "unknown_instance_type" and "x9.huge" in error.message


def test_denied_region_is_a_scope_error_and_other_regions_still_list(client: AwsClient) -> None:
    run_instance(client, "us-east-1", "g5.xlarge", "ok")
    FakeAws(client.client("ec2", "eu-west-1")).fail(
        "DescribeInstances", "UnauthorizedOperation", "You are not authorized"
    )
    ctx = make_ctx()
    instances = list(make_source(client).inventory(ctx))
    assert [i.region for i in instances] == ["us-east-1"]
    (error,) = ctx.scope_errors
    assert (error.scope, error.permission) == (f"{ACCOUNT}/eu-west-1", "ec2:DescribeInstances")


DESCRIBE_REGIONS = (
    '<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
    "<requestId>r1</requestId><regionInfo>"
    + "".join(
        f"<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com"
        "</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item>"
        for r in ("ap-south-1", "eu-west-1", "us-east-1")
    )
    + "</regionInfo></DescribeRegionsResponse>"
)


def test_without_regions_every_enabled_region_is_listed(client: AwsClient) -> None:
    run_instance(client, "ap-south-1", "g6.xlarge", "far")
    FakeAws(client.client("ec2")).on("DescribeRegions", lambda _params: DESCRIBE_REGIONS)
    instances: list[GpuInstance] = list(make_source(client, regions=None).inventory(make_ctx()))
    assert [(i.region, i.accelerators[0].model) for i in instances] == [("ap-south-1", "nvidia-l4")]


# ----------------------------------------------------------------------------- sessions


def test_sessions_arrive_per_region_across_pages_despite_a_throttle(
    client: AwsClient, trails: dict[str, FakeAws], no_backoff: None
) -> None:
    trails["us-east-1"].throttle("LookupEvents", times=1)
    ctx = make_ctx()
    *batches, logins = list(make_source(client).sessions(ctx))
    assert [b.unit for b in batches] == [f"aws:{ACCOUNT}/us-east-1", f"aws:{ACCOUNT}/eu-west-1"]
    assert logins.sessions == () and (logins.checkpoint_scope or "").startswith(
        "aws:console-login:arn:aws:iam::"
    )  # the newest ConsoleLogin of the principal, kept for console-started sessions
    for batch, region in zip(batches, REGIONS, strict=True):
        methods = sorted(s.method for s in batch.sessions)
        assert methods == sorted(
            [AccessMethod.SSM_SESSION] * 3
            + [AccessMethod.EC2_INSTANCE_CONNECT] * 3
            + [AccessMethod.CONSOLE]
        )
        assert {s.region for s in batch.sessions} == {region}
        assert all(s.ended_at for s in batch.sessions if s.method is AccessMethod.SSM_SESSION)
        assert all(s.evidence[0].kind == "api" and s.source == "aws-prod" for s in batch.sessions)
    calls = trails["us-east-1"].calls_to("LookupEvents")
    assert any(c.get("NextToken") for c in calls)
    assert len(calls) == len(trails["eu-west-1"].calls_to("LookupEvents")) + 1  # the retry
    assert ctx.read == 20 and ctx.ignored == 6 and ctx.scope_errors == []


def test_checkpoint_is_the_newest_event_and_the_next_run_resumes_from_it(
    client: AwsClient, trails: dict[str, FakeAws]
) -> None:
    (first,) = region_batches(make_source(client, ["us-east-1"]), make_ctx())
    events = region_events("us-east-1", NOW - timedelta(hours=1))
    newest = max(datetime.fromisoformat(e["eventTime"]) for e in events)
    assert first.checkpoint_scope == f"aws:{ACCOUNT}:us-east-1:lookup-events"
    assert first.checkpoint is not None
    assert datetime.fromisoformat(first.checkpoint) == newest
    first_start = {c["StartTime"] for c in trails["us-east-1"].calls_to("LookupEvents")}
    assert first_start == {(NOW - timedelta(hours=24)).timestamp()}

    trails["us-east-1"].calls.clear()
    ctx = make_ctx(checkpoints={first.checkpoint_scope: first.checkpoint})
    (second,) = region_batches(make_source(client, ["us-east-1"]), ctx)
    starts = {c["StartTime"] for c in trails["us-east-1"].calls_to("LookupEvents")}
    assert starts == {(newest - CHECKPOINT_OVERLAP).timestamp()}
    assert second.checkpoint == first.checkpoint  # re-read overlap never moves it back


def test_explicit_window_is_passed_to_lookup_events(
    client: AwsClient, trails: dict[str, FakeAws]
) -> None:
    since, until = NOW - timedelta(minutes=58), NOW - timedelta(minutes=57)  # the EIC group
    ctx = make_ctx(
        since=since,
        until=until,
        explicit=True,
        checkpoints={f"aws:{ACCOUNT}:us-east-1:lookup-events": NOW.isoformat()},
    )
    (batch,) = region_batches(make_source(client, ["us-east-1"]), ctx)
    calls = trails["us-east-1"].calls_to("LookupEvents")
    assert {(c["StartTime"], c["EndTime"]) for c in calls} == {
        (since.timestamp(), until.timestamp())
    }
    assert [s.method for s in batch.sessions] == [AccessMethod.EC2_INSTANCE_CONNECT] * 3


def test_access_denied_region_is_a_scope_error_while_the_other_region_delivers(
    client: AwsClient, trails: dict[str, FakeAws]
) -> None:
    trails["eu-west-1"].fail(
        "LookupEvents",
        "AccessDeniedException",
        f"User: arn:aws:iam::{ACCOUNT}:user/auditor is not authorized to perform: "
        "cloudtrail:LookupEvents",
    )
    ctx = make_ctx()
    us, eu = region_batches(make_source(client), ctx)
    assert len(us.sessions) == 7 and us.checkpoint is not None
    assert eu.sessions == () and eu.checkpoint is None
    (error,) = ctx.scope_errors
    assert error.scope == f"{ACCOUNT}/eu-west-1"
    assert error.permission == "cloudtrail:LookupEvents"
    assert error.code == "permission_denied" and error.source == "aws-prod"
    assert error.message.startswith("CloudTrail LookupEvents failed: eu-west-1: AccessDenied")
    assert "grant cloudtrail:LookupEvents" in (error.remediation or "")


def test_throttled_past_the_budget_is_an_unavailable_scope_error(
    client: AwsClient, trails: dict[str, FakeAws], no_backoff: None
) -> None:
    trails["us-east-1"].throttle("LookupEvents", times=10)
    ctx = make_ctx()
    us, eu = region_batches(make_source(client), ctx)
    assert us.checkpoint is None and len(eu.sessions) == 7
    assert [e.code for e in ctx.scope_errors] == ["unavailable"]


def test_invalid_cloudtrail_event_json_is_quarantined(
    client: AwsClient, trails: dict[str, FakeAws]
) -> None:
    events = region_events("us-east-1", NOW - timedelta(hours=1))
    events[-1]["_raw"] = '{"eventName": '
    trails["us-east-1"].on("LookupEvents", lookup_events_pages(events))
    ctx = make_ctx()
    (batch,) = region_batches(make_source(client, ["us-east-1"]), ctx)
    (bad,) = ctx.quarantined
    assert bad.locator == "cloudtrail:LookupEvents" and "not a JSON object" in bad.reason
    assert ctx.read == len(batch.sessions) + ctx.ignored + ctx.quarantined_total


def test_expired_credentials_are_one_scope_error_and_no_batches(client: AwsClient) -> None:
    FakeAws(client.client("sts")).fail(
        "GetCallerIdentity", "ExpiredToken", "The security token is expired", status=403
    )
    ctx = make_ctx()
    assert list(make_source(client).sessions(ctx)) == []
    (error,) = ctx.scope_errors
    assert (error.code, error.scope) == ("auth_error", "aws:default")


# ----------------------------------------------------------------------------- config


def test_registry_builds_the_source_from_a_config_mapping() -> None:
    cls = registry.sources.load("aws")
    env = SourceEnv(name="aws-prod", base_dir=Path("/"), clock=lambda: NOW)
    src = cls.from_config(
        {"type": "aws", "regions": ["eu-west-1"], "retry_mode": "adaptive"}, env=env
    )
    assert isinstance(src, AwsSource) and src.config.regions == ["eu-west-1"]
    assert isinstance(src, SessionSource) and isinstance(src, InventorySource)
    assert src.client.client("ec2", "eu-west-1").meta.config.retries["mode"] == "adaptive"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "aws", "regions": []}, "regions"),
        ({"type": "aws", "regions": ["us-east1"]}, r"regions\[0\]: String should match"),
        ({"type": "aws", "role_arn": "x"}, "role_arn: unknown key"),
        ({"type": "aws", "retry_mode": "legacy"}, "retry_mode"),
        ({"type": "aws", "max_attempts": 0}, "max_attempts"),
    ],
)
def test_invalid_config_is_a_config_error_naming_the_key(raw: dict[str, Any], message: str) -> None:
    env = SourceEnv(name="aws-prod", base_dir=Path("/"), clock=lambda: NOW)
    with pytest.raises(ConfigError, match=message):
        AwsSource.from_config(raw, env=env)
