"""An AWS Organization for end-to-end tests, built in moto (in-process or server mode).

Three accounts x two regions with GPU and non-GPU instances, an organization trail bucket
holding a few thousand CloudTrail events over three days (noise plus the session events
below), VPC flow logs for two GPU instances in a second bucket, and a flow-log export file.
Every timestamp is relative to ``NOW``; expected findings are listed in ``EXPECTED``.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
MGMT = "123456789012"
REGIONS = ("us-east-1", "eu-west-1")
ROLE = "ChipwardenAudit"
EXTERNAL_ID = "chipwarden-e2e"
TRAIL_BUCKET, TRAIL_PREFIX = "org-trail-logs", "trail"
FLOW_BUCKET = "vpc-flow-logs"
NOISE_PER_OBJECT = 90
DAY2, DAY1, TODAY = (NOW - timedelta(days=2)).date(), (NOW - timedelta(days=1)).date(), NOW.date()
DELIVERIES = {DAY2: (11, 23), DAY1: (11, 23), TODAY: (3, 11)}
FLOW_HEADER_V2 = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status"
)
FLOW_HEADER_NLB = FLOW_HEADER_V2 + " pkt-srcaddr pkt-dstaddr flow-direction"

# (policy id, method, host name, source ip) of every finding the first audit must produce.
EXPECTED = {
    ("ec-high-d5-or-macau-to-controlled", "ssm-session", "trainer", "1.2.4.8"),
    ("ec-critical-embargoed-source-to-accelerator", "ssm-session", "render", "2.188.21.1"),
    ("ec-high-d5-or-macau-to-controlled", "ec2-instance-connect-endpoint", "jupyter", "1.2.4.8"),
    ("ec-high-d5-or-macau-to-controlled", "network-flow", "trainer", "223.5.5.5"),
    ("ec-critical-embargoed-source-to-accelerator", "network-flow", "render", "175.45.176.1"),
    ("ec-high-d5-or-macau-to-controlled", "network-flow", "jupyter", "202.175.3.3"),
    ("ec-medium-restricted-source-unknown-target", "console", None, "2.188.21.1"),
    ("ec-medium-restricted-source-unknown-target", "console", None, "1.2.4.8"),
}


@dataclass(frozen=True)
class Host:
    """One instance of the world."""

    name: str
    account: str
    region: str
    instance_type: str
    instance_id: str
    private_ip: str
    eni: str


@dataclass
class World:
    """The organization, its instances and what was put in the buckets."""

    session: Any
    endpoint_url: str | None
    org_id: str = ""
    accounts: list[str] = field(default_factory=list)
    hosts: dict[str, Host] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    trail_keys: list[str] = field(default_factory=list)
    flow_keys: list[str] = field(default_factory=list)
    events: int = 0

    def client(self, service: str, account: str = MGMT, region: str = "us-east-1") -> Any:
        """A client in ``account`` (member accounts through AssumeRole, as moto models it)."""
        kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": self.endpoint_url}
        if account != MGMT:
            creds = self.session.client("sts", **kwargs).assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="world-setup"
            )["Credentials"]
            kwargs.update(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        return self.session.client(service, **kwargs)

    def host_by_instance(self, instance_id: str | None) -> str | None:
        return next((h.name for h in self.hosts.values() if h.instance_id == instance_id), None)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(
    name: str,
    source: str,
    when: datetime,
    *,
    account: str,
    region: str,
    ip: str,
    principal: str,
    event_id: str,
    agent: str = "aws-cli/2.15.0 Python/3.11",
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One CloudTrail record in the S3 delivery shape."""
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDA" + event_id[:12].upper(),
            "arn": principal,
            "accountId": account,
            "userName": principal.rsplit("/", 1)[-1],
        },
        "eventTime": _stamp(when),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": request,
        "responseElements": response,
        "eventID": event_id,
        "readOnly": False,
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
        **extra,
    }


def build_world(*, endpoint_url: str | None = None) -> World:
    """Organization, accounts and instances (inside mock_aws, or against a moto server)."""
    world = World(session=boto3.Session(region_name="us-east-1"), endpoint_url=endpoint_url)
    org = world.client("organizations")
    world.org_id = org.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    members = [
        org.create_account(Email=f"{n}@example.com", AccountName=n)["CreateAccountStatus"][
            "AccountId"
        ]
        for n in ("research", "render")
    ]
    suspended = org.create_account(Email="old@example.com", AccountName="old")[
        "CreateAccountStatus"
    ]["AccountId"]
    org.close_account(AccountId=suspended)
    world.accounts = [MGMT, *members]
    b, c = members
    plan = [
        ("trainer", MGMT, "us-east-1", "p5.48xlarge"),
        ("bastion", MGMT, "us-east-1", "t3.micro"),
        ("web", MGMT, "eu-west-1", "t3.micro"),
        ("jupyter", b, "us-east-1", "p4d.24xlarge"),
        ("render", b, "eu-west-1", "g5.xlarge"),
        ("ci", c, "us-east-1", "t3.micro"),
        ("idle", c, "eu-west-1", "m5.xlarge"),
    ]
    for name, account, region, itype in plan:
        ec2 = world.client("ec2", account, region)
        item = ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            InstanceType=itype,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}
            ],
        )["Instances"][0]
        world.hosts[name] = Host(
            name=name,
            account=account,
            region=region,
            instance_type=itype,
            instance_id=item["InstanceId"],
            private_ip=item["PrivateIpAddress"],
            eni=item["NetworkInterfaces"][0]["NetworkInterfaceId"],
        )
    return world


def session_events(world: World) -> list[dict[str, Any]]:
    """The access events of the scenario (see EXPECTED)."""
    h, (mgmt, b, _c) = world.hosts, world.accounts
    alice = f"arn:aws:iam::{mgmt}:user/alice"
    bob = f"arn:aws:iam::{b}:user/bob"
    dave = f"arn:aws:iam::{mgmt}:user/dave"
    ssm, eic, signin = (
        "ssm.amazonaws.com",
        "ec2-instance-connect.amazonaws.com",
        "signin.amazonaws.com",
    )
    day2 = datetime.combine(DAY2, datetime.min.time(), tzinfo=UTC)
    day1, today = day2 + timedelta(days=1), day2 + timedelta(days=2)
    login = {"ConsoleLogin": "Success"}
    login_extra = {"additionalEventData": {"MFAUsed": "No", "LoginTo": "https://console.aws"}}
    start = {"documentName": "SSM-SessionManagerRunShell"}
    return [
        # CN -> H100 over Session Manager; it ends in the next day's file.
        event(
            "StartSession",
            ssm,
            day2 + timedelta(hours=9),
            account=mgmt,
            region="us-east-1",
            ip="1.2.4.8",
            principal=alice,
            event_id="e1-start",
            request={**start, "target": h["trainer"].instance_id},
            response={"sessionId": "alice-0e1"},
        ),
        event(
            "TerminateSession",
            ssm,
            day1 + timedelta(minutes=30),
            account=mgmt,
            region="us-east-1",
            ip="1.2.4.8",
            principal=alice,
            event_id="e1-end",
            request={"sessionId": "alice-0e1"},
            response={"sessionId": "alice-0e1"},
        ),
        # bob signs in from IR (us-east-1 of his account), then starts a session from the
        # console to render in eu-west-1: no TerminateSession, DescribeSessions has the end.
        event(
            "ConsoleLogin",
            signin,
            day1 + timedelta(hours=8),
            account=b,
            region="us-east-1",
            ip="2.188.21.1",
            principal=bob,
            event_id="e2-login",
            response=login,
            **login_extra,
        ),
        event(
            "StartSession",
            ssm,
            day1 + timedelta(hours=10),
            account=b,
            region="eu-west-1",
            ip="52.94.133.131",
            principal=bob,
            event_id="e3-console",
            agent="aws-internal/3 aws-sdk-java/1.12.720",
            request={**start, "target": h["render"].instance_id},
            response={"sessionId": "bob-0e3"},
        ),
        # A US key push to trainer: no finding.
        event(
            "SendSSHPublicKey",
            eic,
            day1 + timedelta(hours=11),
            account=mgmt,
            region="us-east-1",
            ip="8.8.8.8",
            principal=alice,
            event_id="e4-eic",
            request={"instanceId": h["trainer"].instance_id, "instanceOSUser": "ec2-user"},
        ),
        # dave signs in from CN today (his console session comes in the second run).
        event(
            "ConsoleLogin",
            signin,
            today + timedelta(hours=1),
            account=mgmt,
            region="us-east-1",
            ip="1.2.4.8",
            principal=dave,
            event_id="e6-login",
            response=login,
            **login_extra,
        ),
        # CN through an EC2 Instance Connect Endpoint to jupyter's private IP.
        event(
            "OpenTunnel",
            eic,
            today + timedelta(hours=2),
            account=b,
            region="us-east-1",
            ip="1.2.4.8",
            principal=bob,
            event_id="e5-tunnel",
            request={
                "instanceConnectEndpointId": "eice-0123456789abcdef0",
                "maxTunnelDuration": "3600",
                "remotePort": "22",
                "privateIpAddress": h["jupyter"].private_ip,
            },
        ),
    ]


def _noise(account: str, region: str, when: datetime, n: int) -> dict[str, Any]:
    names = ("DescribeInstances", "GetObject", "AssumeRole", "DescribeInstanceInformation")
    sources = ("ec2.amazonaws.com", "s3.amazonaws.com", "sts.amazonaws.com", "ssm.amazonaws.com")
    pick = n % len(names)
    return event(
        names[pick],
        sources[pick],
        when,
        account=account,
        region=region,
        ip="198.51.100.7",
        principal=f"arn:aws:iam::{account}:role/app",
        event_id=f"noise-{account}-{region}-{when:%Y%m%d%H%M%S}-{n}",
    )


def _trail_key(world: World, account: str, region: str, delivered: datetime, n: int) -> str:
    return (
        f"{TRAIL_PREFIX}/AWSLogs/{world.org_id}/{account}/CloudTrail/{region}/"
        f"{delivered:%Y/%m/%d}/{account}_CloudTrail_{region}_{delivered:%Y%m%dT%H%MZ}_"
        f"u{n:04d}.json.gz"
    )


def put_trail(world: World, extra: list[dict[str, Any]] | None = None) -> None:
    """Every CloudTrail object of the three days (noise + ``session_events``)."""
    s3 = world.client("s3")
    s3.create_bucket(Bucket=TRAIL_BUCKET)
    placed = defaultdict(list)
    for record in session_events(world) + (extra or []):
        placed[(record["recipientAccountId"], record["awsRegion"])].append(record)
    n = 0
    for account in world.accounts:
        for region in REGIONS:
            mine = sorted(placed[(account, region)], key=lambda r: r["eventTime"])
            for day, hours in DELIVERIES.items():
                previous = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
                for hour in hours:
                    delivered = previous.replace(hour=hour, minute=55 if hour == 23 else 5)
                    delivered = max(delivered, previous + timedelta(minutes=1))
                    span = (delivered - previous) / (NOISE_PER_OBJECT + 1)
                    records = [
                        _noise(account, region, previous + span * (i + 1), i)
                        for i in range(NOISE_PER_OBJECT)
                    ]
                    records += [r for r in mine if previous < _parse(r) <= delivered]
                    records.sort(key=lambda r: r["eventTime"])
                    n += 1
                    key = _trail_key(world, account, region, delivered, n)
                    s3.put_object(Bucket=TRAIL_BUCKET, Key=key, Body=_gzip({"Records": records}))
                    world.trail_keys.append(key)
                    world.events += len(records)
                    previous = delivered
    digest = f"{TRAIL_PREFIX}/AWSLogs/{world.org_id}/{MGMT}/CloudTrail-Digest/us-east-1/x.json.gz"
    s3.put_object(Bucket=TRAIL_BUCKET, Key=digest, Body=_gzip({"digest": True}))


def put_trail_object(
    world: World, account: str, region: str, delivered: datetime, records: list[dict[str, Any]]
) -> str:
    """One more CloudTrail object (a delivery after the first audit)."""
    key = _trail_key(world, account, region, delivered, 9000 + len(world.trail_keys))
    world.client("s3").put_object(Bucket=TRAIL_BUCKET, Key=key, Body=_gzip({"Records": records}))
    world.trail_keys.append(key)
    return key


def _parse(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["eventTime"])


def _gzip(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


def _epoch(day: date, hour: int, minute: int) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp()) + (
        hour * 3600 + minute * 60
    )


def flow_key(account: str, region: str, delivered: datetime, suffix: str) -> str:
    """Key of a flow-log delivery object."""
    return (
        f"AWSLogs/{account}/vpcflowlogs/{region}/{delivered:%Y/%m/%d}/{account}_vpcflowlogs_"
        f"{region}_fl-0a1b2c3d4e5f67890_{delivered:%Y%m%dT%H%MZ}_{suffix}.log.gz"
    )


def put_flows(world: World) -> None:
    """Flow logs: SSH bursts to trainer (default format) and RDP through an NLB to render
    (pkt-srcaddr), with rejected, NODATA, egress and non-GPU records around them."""
    s3 = world.client("s3")
    s3.create_bucket(Bucket=FLOW_BUCKET)
    t, bastion, r = world.hosts["trainer"], world.hosts["bastion"], world.hosts["render"]
    lines = [FLOW_HEADER_V2]
    for minute in (0, 5, 12):
        start = _epoch(DAY1, 10, minute)
        lines.append(
            f"2 {t.account} {t.eni} 223.5.5.5 {t.private_ip} 51000 22 6 20 4200 "
            f"{start} {start + 60} ACCEPT OK"
        )
        lines.append(
            f"2 {t.account} {t.eni} {t.private_ip} 223.5.5.5 22 51000 6 18 3900 "
            f"{start} {start + 60} ACCEPT OK"
        )
    start = _epoch(DAY1, 10, 20)
    lines += [
        f"2 {t.account} {t.eni} 2.188.21.1 {t.private_ip} 40000 22 6 3 180 {start} "
        f"{start + 60} REJECT OK",
        f"2 {t.account} {t.eni} - - - - - - - {start} {start + 60} - NODATA",
        f"2 {t.account} {t.eni} 93.184.216.34 {t.private_ip} 40001 443 6 9 900 {start} "
        f"{start + 60} ACCEPT OK",
        f"2 {bastion.account} {bastion.eni} 2.188.21.1 {bastion.private_ip} 40002 22 6 9 900 "
        f"{start} {start + 60} ACCEPT OK",
    ]
    delivered = datetime.combine(DAY1, datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=10, minutes=35
    )
    key = flow_key(t.account, t.region, delivered, "a1")
    s3.put_object(Bucket=FLOW_BUCKET, Key=key, Body=gzip.compress("\n".join(lines).encode()))
    world.flow_keys.append(key)
    start = _epoch(TODAY, 4, 0)
    nlb = [
        FLOW_HEADER_NLB,
        f"5 {r.account} {r.eni} 10.0.9.9 {r.private_ip} 61000 3389 6 40 9000 {start} "
        f"{start + 300} ACCEPT OK 175.45.176.1 {r.private_ip} ingress",
        f"5 {r.account} {r.eni} {r.private_ip} 10.0.9.9 3389 61000 6 40 9000 {start} "
        f"{start + 300} ACCEPT OK {r.private_ip} 175.45.176.1 egress",
    ]
    delivered = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=4, minutes=10
    )
    key = flow_key(r.account, r.region, delivered, "b2")
    s3.put_object(Bucket=FLOW_BUCKET, Key=key, Body=gzip.compress("\n".join(nlb).encode()))
    world.flow_keys.append(key)


def write_flow_export(world: World, folder: Path) -> Path:
    """A flow-log export (default format, no header, gzip): Jupyter from Macau to jupyter."""
    j = world.hosts["jupyter"]
    start = _epoch(TODAY, 7, 0)
    lines = [
        f"2 {j.account} {j.eni} 202.175.3.3 {j.private_ip} 55000 8888 6 80 64000 {start} "
        f"{start + 120} ACCEPT OK",
        f"2 {j.account} {j.eni} 202.175.3.3 {j.private_ip} 55001 8888 6 80 64000 {start + 600} "
        f"{start + 700} ACCEPT OK",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "export-jupyter.log.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    return path


def ssm_history(world: World) -> list[dict[str, Any]]:
    """DescribeSessions (History) of render: bob's console session ended 25 minutes in."""
    began = datetime.combine(DAY1, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
    return [
        {
            "SessionId": "bob-0e3",
            "Target": world.hosts["render"].instance_id,
            "StartDate": began,
            "EndDate": began + timedelta(minutes=25),
        }
    ]


def config_yaml(
    world: World,
    *,
    store: str,
    flow_glob: str,
    endpoint_url: str | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """The audit config of the world (an organization with member roles); ``options`` are
    more keys of the aws source (retry settings, ...)."""
    endpoint = f"    endpoint_url: {endpoint_url}\n" if endpoint_url else ""
    endpoint += "".join(f"    {k}: {json.dumps(v)}\n" for k, v in (options or {}).items())
    return (
        f"store: {store}\n"
        "sources:\n"
        "  - type: aws\n"
        "    organization: true\n"
        f"    assume_role: {ROLE}\n"
        f"    external_id: {EXTERNAL_ID}\n"
        f"    regions: [{', '.join(REGIONS)}]\n"
        "    max_workers: 4\n"
        f"{endpoint}"
        "    cloudtrail:\n"
        f"      bucket: {TRAIL_BUCKET}\n"
        f"      prefix: {TRAIL_PREFIX}\n"
        f"      organization_id: {world.org_id}\n"
        "    flow_logs:\n"
        f"      bucket: {FLOW_BUCKET}\n"
        "  - type: vpc-flow-files\n"
        f"    paths: ['{flow_glob}']\n"
    )
