"""End to end: an Organization of 3 accounts x 2 regions audited through the pipeline / CLI.

moto serves EC2, S3, Organizations and STS (in-process, and once as a server through
``endpoint_url``); SSM DescribeSessions, which moto lacks, and the injected AccessDenied go
through a before-send hook installed on every botocore session (``GlobalFake``).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from moto.iam.models import get_account_id_from  # the account moto maps a key to

from agent.cli import run
from agent.store import open_store

from .fakeaws import GlobalFake, describe_sessions_pages
from .orgaudit import audit, described, write_config
from .orgworld import (
    EXPECTED,
    MGMT,
    NOW,
    World,
    build_world,
    event,
    put_flows,
    put_trail,
    put_trail_object,
    ssm_history,
    write_flow_export,
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> GlobalFake:
    return GlobalFake().install(monkeypatch)


@pytest.fixture(scope="module")
def org() -> Iterator[World]:
    """The organization, built once for the module (moto's EC2 set-up per account is slow)."""
    from moto import mock_aws

    with mock_aws():
        built = build_world()
        put_trail(built)
        put_flows(built)
        yield built


@pytest.fixture
def world(org: World, fake: GlobalFake, tmp_path: Path) -> World:
    write_flow_export(org, tmp_path / "flows")
    fake.on("DescribeSessions", describe_sessions_pages(ssm_history(org)))
    return org


def test_org_audit_finds_exactly_the_expected_sessions_and_rereads_nothing(
    world: World, fake: GlobalFake, tmp_path: Path
) -> None:
    config = write_config(world, tmp_path)
    first = audit(config)

    assert first.run.scope_errors == () and first.run.status.value == "complete"
    assert described(world, first.findings) == EXPECTED
    assert first.run.counts.read >= world.events >= 2500  # every record counted once
    counts = first.run.counts
    assert counts.read == counts.sessions + counts.ignored + counts.quarantined
    gets = fake.calls_to("GetObject")
    assert len(gets) == len(world.trail_keys) + len(world.flow_keys)  # digest never fetched
    assert all("CloudTrail-Digest" not in c.path for c in gets)
    by_method = {f.session.method.value: f for f in first.findings}
    e1 = next(f for f in first.findings if f.session.key == "e1-start")
    assert e1.session.ended_at is not None  # TerminateSession came in the next day's file
    console = next(f for f in first.findings if f.session.key == "e3-console")
    assert console.session.attributes["console_login"] == "attributed"
    assert console.session.attributes["original_source_ip"] == "52.94.133.131"
    assert [e.event_id for e in console.session.evidence] == ["e3-console", "e2-login"]
    assert console.session.ended_at is not None  # from DescribeSessions history
    assert console.session.attributes["ended_at_source"] == "ssm:DescribeSessions"
    tunnel = by_method["ec2-instance-connect-endpoint"].session
    assert tunnel.attributes["target_resolved_by"] == "privateIpAddress"
    nlb = next(f for f in first.findings if f.session.source_ip == "175.45.176.1").session
    assert nlb.attributes["source_field"] == "pkt-srcaddr" and nlb.attributes["port"] == "3389"
    ssh = next(f for f in first.findings if f.session.source_ip == "223.5.5.5").session
    assert ssh.attributes["records"] == "3" and ssh.ended_at is not None

    # A second scheduled run an hour later: two new deliveries, nothing read twice, and
    # dave's console session is attributed through the login persisted by the first run.
    h = world.hosts
    dave = f"arn:aws:iam::{MGMT}:user/dave"
    later = NOW + timedelta(hours=1)
    new_key = put_trail_object(
        world,
        MGMT,
        "us-east-1",
        later - timedelta(minutes=5),
        [
            event(
                "StartSession",
                "ssm.amazonaws.com",
                NOW + timedelta(minutes=20),
                account=MGMT,
                region="us-east-1",
                ip="ssm.amazonaws.com",
                principal=dave,
                event_id="e7-console",
                agent="aws-internal/3 aws-sdk-java/1.12.720",
                request={
                    "target": h["trainer"].instance_id,
                    "documentName": "AWS-StartPortForwardingSession",
                },
                response={"sessionId": "dave-0e7"},
            )
        ],
    )
    fake.calls.clear()
    second = audit(config, clock_at=later)
    (get,) = fake.calls_to("GetObject")
    assert get.path.endswith(new_key)
    assert second.run.scope_errors == ()
    (new,) = [f for f in second.findings if f.session.key == "e7-console"]
    assert (new.policy_id, new.session.source_ip) == (
        "ec-high-d5-or-macau-to-controlled",
        "1.2.4.8",
    )
    assert new.session.method.value == "ssm-port-forward"
    assert new.session.evidence[-1].locator == f"aws:console-login:{dave}"
    assert second.run.counts.new_findings == 1


def test_region_with_access_denied_exits_4_naming_account_region_and_permission(
    world: World,
    fake: GlobalFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.deny(
        "DescribeInstances",
        when=lambda call: (
            call.region == "eu-west-1" and get_account_id_from(call.access_key or "") == MGMT
        ),
        code="UnauthorizedOperation",
        message="You are not authorized to perform this operation.",
    )
    monkeypatch.chdir(tmp_path)
    config = write_config(world, tmp_path)
    code = run(
        [
            "audit",
            "-c",
            str(config),
            "--format",
            "json",
            "--no-progress",
            "--since",
            (NOW - timedelta(days=2, hours=12)).isoformat(),
            "--until",
            NOW.isoformat(),
        ]
    )
    out = capsys.readouterr()
    assert code == 4
    with open_store(f"sqlite:///{tmp_path / 'audit.db'}") as store:
        (last,) = store.list_runs(limit=1)
    (error,) = last.scope_errors
    assert (error.scope, error.permission) == (f"{MGMT}/eu-west-1", "ec2:DescribeInstances")
    assert error.source == "aws[0]" and "UnauthorizedOperation" in error.message
    assert f"{MGMT}/eu-west-1" in out.err and "ec2:DescribeInstances" in (error.remediation or "")
    # Everything else was still audited.
    findings = json.loads(out.out)
    assert {f["session"]["source_ip"] for f in findings} >= {"1.2.4.8", "223.5.5.5", "202.175.3.3"}


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_the_whole_aws_source_runs_against_a_moto_server_via_endpoint_url(
    moto_server: str,
    fake: GlobalFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    session = boto3.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=moto_server)
    trainer = ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="p5.48xlarge"
    )["Instances"][0]["InstanceId"]
    principal = f"arn:aws:iam::{MGMT}:user/alice"
    records = [
        event(
            "StartSession",
            "ssm.amazonaws.com",
            NOW - timedelta(hours=2),
            account=MGMT,
            region="us-east-1",
            ip="1.2.4.8",
            principal=principal,
            event_id="srv-1",
            request={"target": trainer},
            response={"sessionId": "alice-srv"},
        ),
        event(
            "TerminateSession",
            "ssm.amazonaws.com",
            NOW - timedelta(hours=1),
            account=MGMT,
            region="us-east-1",
            ip="1.2.4.8",
            principal=principal,
            event_id="srv-2",
            request={"sessionId": "alice-srv"},
        ),
    ]
    s3 = session.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="single-trail")
    key = (
        f"AWSLogs/{MGMT}/CloudTrail/us-east-1/{NOW:%Y/%m/%d}/"
        f"{MGMT}_CloudTrail_us-east-1_{NOW:%Y%m%dT%H%MZ}_srv.json.gz"
    )
    s3.put_object(
        Bucket="single-trail",
        Key=key,
        Body=gzip.compress(json.dumps({"Records": records}).encode()),
    )
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "server.yaml"
    config.write_text(
        "store: sqlite:///server.db\n"
        "sources:\n"
        "  - type: aws\n"
        f"    endpoint_url: {moto_server}\n"
        "    regions: [us-east-1]\n"
        "    cloudtrail: {bucket: single-trail}\n"
    )
    code = run(
        [
            "audit",
            "-c",
            str(config),
            "--format",
            "json",
            "--no-progress",
            "--since",
            (NOW - timedelta(hours=6)).isoformat(),
            "--until",
            NOW.isoformat(),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    (finding,) = json.loads(out.out)
    assert finding["policy_id"] == "ec-high-d5-or-macau-to-controlled"
    assert finding["session"]["instance_id"] == trainer and finding["session"]["ended_at"]
    assert [c.path for c in fake.calls_to("GetObject")] == [f"/single-trail/{key}"]
