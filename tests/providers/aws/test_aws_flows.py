"""VPC flow logs: selection of admin-port hits, folding into sessions, the vpc-flow-files
source over the run's inventory, and the aws source's S3 / CloudWatch Logs flow readers."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import SourceEnv
from agent.errors import ConfigError
from agent.models import Accelerator, AccessMethod, GpuInstance
from providers.aws.client import AwsClient
from providers.aws.flowlogs import VpcFlowFilesSource
from providers.aws.flowparse import FlowRecord
from providers.aws.flows import FlowReader, read_flow_bucket, read_flow_log_group
from providers.aws.flowsessions import TargetIndex, aggregate_hits, select_hits
from providers.aws.settings import FlowLogsSpec, FlowOptions

from .conftest import NOW, make_ctx

ACCOUNT = "111122223333"
T0 = int((NOW - timedelta(hours=3)).timestamp())
H100 = (Accelerator(model="nvidia-h100", count=8),)


def instance(
    iid: str, ip: str, eni: str, *, gpus: bool = True, account: str = ACCOUNT
) -> GpuInstance:
    return GpuInstance(
        provider="aws",
        account=account,
        region="us-east-1",
        instance_id=iid,
        instance_type="p5.48xlarge" if gpus else "t3.micro",
        accelerators=H100 if gpus else (),
        private_ips=(ip,),
        network_interfaces=(eni,),
    )


GPU = instance("i-0gpu", "10.0.0.5", "eni-gpu")
PLAIN = instance("i-0plain", "10.0.0.6", "eni-plain", gpus=False)


def v2(
    src: str,
    dst: str,
    dport: int,
    start: int,
    *,
    eni: str = "eni-gpu",
    action: str = "ACCEPT",
    sport: int = 50000,
    proto: int = 6,
    account: str = ACCOUNT,
) -> str:
    return (
        f"2 {account} {eni} {src} {dst} {sport} {dport} {proto} 10 1000 {start} {start + 60} "
        f"{action} OK"
    )


def record(**kw: Any) -> FlowRecord:
    base: dict[str, Any] = {
        "line": 1,
        "account": ACCOUNT,
        "interface_id": "eni-gpu",
        "srcaddr": "1.2.4.8",
        "dstaddr": "10.0.0.5",
        "dst_port": 22,
        "protocol": 6,
        "start": T0,
        "end": T0 + 60,
        "action": "ACCEPT",
    }
    return FlowRecord(**{**base, **kw})


# ----------------------------------------------------------------------------- selection


@pytest.mark.parametrize(
    ("changes", "hit"),
    [
        ({}, True),
        ({"action": "REJECT"}, False),
        ({"dst_port": 443}, False),
        ({"protocol": 1}, False),
        ({"srcaddr": "10.0.0.5", "dstaddr": "1.2.4.8"}, False),  # the instance talking out
        ({"direction": "egress"}, False),
        ({"interface_id": "eni-plain", "dstaddr": "10.0.0.6"}, False),  # no GPU there
        ({"interface_id": "eni-unknown"}, True),  # matched by its private IP instead
        ({"interface_id": "eni-unknown", "account": "999999999999"}, False),
    ],
)
def test_only_accepted_inbound_admin_port_flows_to_gpu_instances_are_hits(
    changes: dict[str, Any], hit: bool
) -> None:
    hits, ignored = select_hits(
        [record(**changes)],
        TargetIndex([GPU, PLAIN]),
        ports=frozenset({22}),
        account=None,
        locator="f.log",
    )
    assert (len(hits), ignored) == ((1, 0) if hit else (0, 1))


def test_a_private_ip_held_twice_in_an_account_matches_nothing() -> None:
    twin = instance("i-0twin", "10.0.0.5", "eni-twin")
    index = TargetIndex([GPU, twin])
    assert index.by_ip("10.0.0.5", account=ACCOUNT) is None
    assert index.match(record(), account=None) == (GPU, "interface-id")


def test_hits_fold_per_source_instance_and_port_until_a_gap() -> None:
    records = [
        record(line=1, start=T0, end=T0 + 60),
        record(line=2, start=T0 + 600, end=T0 + 660),
        record(line=3, start=T0 + 660 + 31 * 60, end=T0 + 660 + 32 * 60),  # after a 31 min pause
        record(line=4, srcaddr="10.9.9.9", pkt_srcaddr="175.45.176.1"),
        record(line=5, dst_port=8888),
    ]
    hits, _ = select_hits(
        records,
        TargetIndex([GPU]),
        ports=frozenset({22, 8888}),
        account=None,
        locator="f.log",
        tag="d1",
    )
    tagged, merged = aggregate_hits(hits, gap=timedelta(minutes=30), source="flows")
    assert merged == 1
    sessions = sorted((s for _, s in tagged), key=lambda s: (s.source_ip or "", s.started_at))
    by_ip = sorted((s.source_ip, s.attributes["port"], s.attributes["records"]) for s in sessions)
    assert by_ip == [
        ("1.2.4.8", "22", "1"),
        ("1.2.4.8", "22", "2"),
        ("1.2.4.8", "8888", "1"),
        ("175.45.176.1", "22", "1"),
    ]
    first = next(s for s in sessions if s.attributes["records"] == "2")
    assert first.method is AccessMethod.NETWORK_FLOW and first.instance_id == "i-0gpu"
    assert first.started_at == datetime.fromtimestamp(T0, tz=UTC)
    assert first.ended_at == datetime.fromtimestamp(T0 + 660, tz=UTC)
    assert [e.position for e in first.evidence] == ["line 1", "line 2"]
    assert first.key == f"vpcflow:{ACCOUNT}:i-0gpu:1.2.4.8:22:{T0}"
    nlb = next(s for s in sessions if s.source_ip == "175.45.176.1")
    assert (
        nlb.attributes["source_field"] == "pkt-srcaddr" and nlb.attributes["srcaddr"] == "10.9.9.9"
    )
    assert all(tag == "d1" for tag, _ in tagged)


# ----------------------------------------------------------------------------- vpc-flow-files


def flow_source(tmp_path: Path, **extra: Any) -> VpcFlowFilesSource:
    env = SourceEnv(name="flows", base_dir=tmp_path, clock=lambda: NOW)
    return VpcFlowFilesSource.from_config(
        {"type": "vpc-flow-files", "paths": ["*.log*"], **extra}, env=env
    )


def test_flow_files_map_through_the_run_inventory_and_quarantine_bad_lines(tmp_path: Path) -> None:
    header = (
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
        "bytes start end action log-status"
    )
    (tmp_path / "a.log.gz").write_bytes(
        gzip.compress(
            "\n".join(
                [
                    header,
                    v2("1.2.4.8", "10.0.0.5", 22, T0),
                    "2 111122223333 eni-gpu - - - - - - - 1 2 - NODATA",
                    "garbage line",
                    v2("10.0.0.5", "1.2.4.8", 50000, T0, sport=22),
                ]
            ).encode()
        )
    )
    (tmp_path / "b.log").write_text(
        v2("1.2.4.8", "10.0.0.5", 22, T0 + 300)
        + "\n"
        + v2("2.188.21.1", "10.0.0.6", 22, T0, eni="eni-plain")
    )
    ctx = make_ctx()
    ctx.inventory = (GPU, PLAIN)
    (batch,) = flow_source(tmp_path).sessions(ctx)
    (session,) = batch.sessions
    assert (session.source_ip, session.instance_id, session.attributes["records"]) == (
        "1.2.4.8",
        "i-0gpu",
        "2",
    )
    assert session.source == "flows" and session.evidence[0].locator.endswith("a.log.gz")
    (bad,) = ctx.quarantined
    assert bad.locator.endswith("a.log.gz") and bad.position == "line 4"
    assert ctx.read == 6 and ctx.read == 1 + ctx.ignored + ctx.quarantined_total


def test_flow_files_without_an_inventory_to_map_to_are_a_scope_error(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(v2("1.2.4.8", "10.0.0.5", 22, T0))
    ctx = make_ctx()
    assert list(flow_source(tmp_path).sessions(ctx)) == []
    (error,) = ctx.scope_errors
    assert error.code == "no_inventory" and "private_ips" in (error.remediation or "")


def test_a_configured_custom_format_reads_files_without_a_header(tmp_path: Path) -> None:
    fields = (
        "${version} ${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} "
        "${start} ${end} ${action} ${log-status} ${pkt-srcaddr}"
    )
    (tmp_path / "c.log").write_text(
        f"5 eni-gpu 10.9.9.9 10.0.0.5 3389 6 {T0} {T0 + 9} ACCEPT OK 175.45.176.1\n"
    )
    ctx = make_ctx()
    ctx.inventory = (GPU,)
    (batch,) = flow_source(tmp_path, format=fields, admin_ports=[3389]).sessions(ctx)
    assert [(s.source_ip, s.attributes["port"]) for s in batch.sessions] == [
        ("175.45.176.1", "3389")
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"fields": ["version", "srcaddr", "bogus"]}, "unknown flow-log field"),
        ({"fields": ["srcaddr", "dstaddr"]}, "lacks dstport, start, action"),
        ({"format": "${srcaddr}", "fields": ["srcaddr", "dstport"]}, "not both"),
        ({"admin_ports": [0]}, "admin_ports"),
    ],
)
def test_bad_flow_options_name_the_key(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        flow_source(tmp_path, **extra)


# ----------------------------------------------------------------------------- aws readers


def test_flow_bucket_days_checkpoint_each_flow_log_id_and_skip_what_was_read(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    s3 = client.client("s3")
    s3.create_bucket(Bucket="flows")
    day = NOW.date()
    base = f"fl/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{day:%Y/%m/%d}/"
    header = (
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
        "bytes start end action log-status\n"
    )
    keys = [
        f"{base}{ACCOUNT}_vpcflowlogs_us-east-1_fl-aaa_{day:%Y%m%d}T0100Z_x.log.gz",
        f"{base}{ACCOUNT}_vpcflowlogs_us-east-1_fl-bbb_{day:%Y%m%d}T0000Z_y.log.gz",
    ]
    for n, key in enumerate(keys):
        body = header + v2("1.2.4.8", "10.0.0.5", 22, T0 + n * 60) + "\n"
        s3.put_object(Bucket="flows", Key=key, Body=gzip.compress(body.encode()))
    spec = FlowLogsSpec(bucket="flows", prefix="/fl/")
    reader = FlowReader(options=spec, index=TargetIndex([GPU]), source="aws")
    ctx = make_ctx()
    out = read_flow_bucket(
        ctx,
        reader,
        client=client,
        spec=spec,
        account=ACCOUNT,
        region="us-east-1",
        days=[day],
        saved={},
        now=NOW,
    )
    assert len(out.hits) == 2 and out.objects == 2
    (tag, scope, value), marker = out.checkpoints
    assert tag == day.isoformat()
    assert scope == f"aws:flowlogs-s3:flows/fl:{ACCOUNT}:us-east-1:{day}"
    assert json.loads(value) == {"fl-aaa": keys[0], "fl-bbb": keys[1]}
    assert marker[1:] == (f"aws:flowlogs-s3:flows/fl:{ACCOUNT}:us-east-1", day.isoformat())
    again = read_flow_bucket(
        make_ctx(),
        reader,
        client=client,
        spec=spec,
        account=ACCOUNT,
        region="us-east-1",
        days=[day],
        saved={scope: value},
        now=NOW,
    )
    assert again.objects == 0 and again.hits == []


def test_flow_log_group_reads_per_account_region_and_resumes_after_its_cursor(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    logs = client.client("logs", "us-east-1")
    logs.create_log_group(logGroupName="vpc-flows")
    logs.create_log_stream(logGroupName="vpc-flows", logStreamName="eni-gpu-all")
    now = datetime.now(UTC)  # moto drops log events older than 14 days of the real clock
    stamp = int((now - timedelta(hours=2)).timestamp() * 1000)
    logs.put_log_events(
        logGroupName="vpc-flows",
        logStreamName="eni-gpu-all",
        logEvents=[
            {"timestamp": stamp, "message": v2("1.2.4.8", "10.0.0.5", 22, T0)},
            {"timestamp": stamp + 1, "message": "not a flow record"},
        ],
    )
    spec = FlowLogsSpec(log_group="vpc-flows")
    reader = FlowReader(options=spec, index=TargetIndex([GPU]), source="aws")
    ctx = make_ctx()
    out = read_flow_log_group(
        ctx,
        reader,
        client=client,
        spec=spec,
        account=ACCOUNT,
        region="us-east-1",
        saved=None,
        now=now,
        has_gpus=True,
    )
    assert len(out.hits) == 1 and out.hits[0].position.startswith("us-east-1 eni-gpu-all/")
    (bad,) = ctx.quarantined
    assert bad.locator == "logs:vpc-flows" and "expected 14 fields" in bad.reason
    ((_, scope, cursor),) = out.checkpoints
    assert scope == f"aws:flowlogs-logs:{ACCOUNT}:us-east-1:vpc-flows"
    assert cursor.startswith(f"{stamp + 1}|")
    again = read_flow_log_group(
        make_ctx(),
        reader,
        client=client,
        spec=spec,
        account=ACCOUNT,
        region="us-east-1",
        saved=cursor,
        now=now,
        has_gpus=True,
    )
    assert again.checkpoints == [] and len(again.hits) == 1  # the overlap re-reads, never skips


def test_a_missing_flow_log_group_matters_only_where_gpus_run(aws: None, boto_session: Any) -> None:
    client = AwsClient(session=boto_session)
    spec = FlowLogsSpec(log_group="absent")
    reader = FlowReader(options=spec, index=TargetIndex([GPU]), source="aws")
    quiet, loud = make_ctx(), make_ctx()
    for ctx, gpus in ((quiet, False), (loud, True)):
        read_flow_log_group(
            ctx,
            reader,
            client=client,
            spec=spec,
            account=ACCOUNT,
            region="us-east-1",
            saved=None,
            now=NOW,
            has_gpus=gpus,
        )
    assert quiet.scope_errors == []
    (error,) = loud.scope_errors
    assert error.code == "not_found" and error.scope == f"{ACCOUNT}/us-east-1"


def test_flow_options_default_to_the_documented_admin_ports() -> None:
    assert FlowOptions().admin_ports == [22, 3389, 5900, 8888]


def test_flow_files_map_through_a_static_inventory_csv_in_a_cli_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import run

    (tmp_path / "inventory.csv").write_text(
        "provider,account,region,instance_id,instance_type,private_ips,enis\n"
        f"aws,{ACCOUNT},us-east-1,i-0static,p5.48xlarge,10.0.0.5;10.0.1.5,eni-static\n"
    )
    (tmp_path / "export.log").write_text(
        v2("1.2.4.8", "10.0.1.5", 22, T0, eni="eni-unrelated") + "\n"
    )
    (tmp_path / "cw.yaml").write_text(
        "store: sqlite:///cw.db\n"
        "inventory: [{path: inventory.csv}]\n"
        "sources:\n"
        "  - {type: vpc-flow-files, paths: ['*.log']}\n"
    )
    monkeypatch.chdir(tmp_path)
    code = run(["audit", "-c", str(tmp_path / "cw.yaml"), "--format", "json", "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    (finding,) = json.loads(out.out)
    assert finding["session"]["instance_id"] == "i-0static"
    assert finding["session"]["method"] == "network-flow"
    assert finding["policy_id"] == "ec-high-d5-or-macau-to-controlled"
