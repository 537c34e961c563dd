"""AWS faults injected at the network seam (botocore's before-send hook on every client).

The organization of tests/providers/aws/orgworld.py (3 accounts x 2 regions, a trail bucket
with a few thousand events, flow logs, member roles assumed through STS) is audited once
cleanly and once with faults: throttling, 5xx, read timeouts, dropped connections, truncated
S3 bodies, listed objects answering NoSuchKey, and assumed-role credentials that AWS calls
expired. Transient faults must change nothing; permanent ones must end as ScopeErrors with
exit code 4, and the next scheduled run must read exactly what the failed one missed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from moto.iam.models import get_account_id_from

from agent.cli import run
from agent.store import open_store
from tests.providers.aws.fakeaws import GlobalFake, describe_sessions_pages
from tests.providers.aws.orgaudit import audit, described, write_config
from tests.providers.aws.orgworld import (
    EXPECTED,
    FLOW_BUCKET,
    MGMT,
    NOW,
    TRAIL_BUCKET,
    World,
    build_world,
    put_flows,
    put_trail,
    ssm_history,
    write_flow_export,
)
from tests.reliability.faultlab import TRANSIENT_KINDS, FaultPlan, fault_figures, seeds

ALL_KINDS = (*TRANSIENT_KINDS, "truncated", "missing", "expired")
# Faults never hit one request more than 3 times in a row; botocore makes 5 attempts per call
# and an object is downloaded up to 4 times, so every transient fault is survivable.
RETRIES = {"max_attempts": 5, "object_attempts": 4, "retry_backoff_seconds": 0}


@pytest.fixture(scope="module")
def org() -> Iterator[tuple[World, dict[str, bytes]]]:
    """The organization in moto, and every S3 object's bytes by key (for truncated bodies)."""
    from moto import mock_aws

    with mock_aws():
        world = build_world()
        put_trail(world)
        put_flows(world)
        s3 = boto3.client("s3", region_name="us-east-1")
        objects = {
            item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for bucket in (TRAIL_BUCKET, FLOW_BUCKET)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        }
        yield world, objects


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> GlobalFake:
    # botocore's retries stay real; only their sleeps are cut to zero.
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0
    )
    return GlobalFake().install(monkeypatch)


@pytest.fixture
def world(org: tuple[World, dict[str, bytes]], fake: GlobalFake) -> World:
    fake.on("DescribeSessions", describe_sessions_pages(ssm_history(org[0])))
    return org[0]


def object_bytes(objects: dict[str, bytes]) -> Callable[[str], bytes]:
    def find(path: str) -> bytes:
        return next(data for key, data in objects.items() if path.endswith(key))

    return find


def folder(tmp_path: Path, name: str, world: World) -> Path:
    where = tmp_path / name
    write_flow_export(world, where / "flows")
    return where


@pytest.mark.parametrize("seed", seeds(20261128))
def test_with_30_percent_of_calls_failing_transiently_the_aws_audit_finds_what_a_clean_run_finds(
    seed: int,
    world: World,
    org: tuple[World, dict[str, bytes]],
    fake: GlobalFake,
    tmp_path: Path,
    report: Callable[[str, dict[str, Any]], None],
) -> None:
    clean = audit(write_config(world, folder(tmp_path, "clean", world), options=RETRIES))
    assert clean.run.status.value == "complete" and described(world, clean.findings) == EXPECTED

    plan = FaultPlan(rate=0.3, seed=seed, kinds=ALL_KINDS, cover=True)
    fake.chaos(plan, object_bytes(org[1]), account_of=get_account_id_from)
    faulted = audit(write_config(world, folder(tmp_path, "faulted", world), options=RETRIES))
    fake.chaos(None)

    assert faulted.run.scope_errors == ()
    assert faulted.run.status.value == "complete"
    assert {f.id for f in faulted.findings} == {f.id for f in clean.findings}
    assert {(f.session.source, f.session.key) for f in faulted.findings} == {
        (f.session.source, f.session.key) for f in clean.findings
    }
    assert faulted.run.counts == clean.run.counts
    assert set(plan.tally) == set(ALL_KINDS), plan.tally  # every kind really happened
    assert plan.faults >= 0.2 * plan.calls
    report(
        f"faults-aws-transient-{seed}",
        fault_figures(
            plan,
            provider="aws",
            scenario="30% transient",
            findings=len(clean.findings),
            identical={f.id for f in faulted.findings} == {f.id for f in clean.findings},
            scope_errors=len(faulted.run.scope_errors),
            status=faulted.run.status.value,
        ),
    )


def _matches(kind: str, member: str) -> Callable[[str], bool]:
    if kind == "server-error":
        return lambda identity: "s3.GetObject" in identity and f"/{member}/CloudTrail/" in identity
    return lambda identity: identity.startswith(f"{member} ")


@pytest.mark.parametrize("kind", ["server-error", "expired"])
def test_a_permanent_aws_failure_ends_in_scope_errors_exit_4_and_the_next_run_picks_up_the_rest(
    kind: str,
    world: World,
    fake: GlobalFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    report: Callable[[str, dict[str, Any]], None],
) -> None:
    monkeypatch.setattr("agent.cli._now", lambda: NOW)  # the world's clock; runs are scheduled

    def cli_audit(where: Path) -> tuple[int, dict[str, Any]]:
        config = write_config(world, where, options=RETRIES)
        monkeypatch.chdir(where)
        capsys.readouterr()
        code = run(["audit", "-c", str(config), "--format", "json", "--no-progress"])
        return code, {f["id"]: f for f in json.loads(capsys.readouterr().out)}

    clean_code, clean = cli_audit(folder(tmp_path, "clean", world))
    clean_ids = set(clean)
    member = min(  # a member account with a CloudTrail session in the window
        f["session"]["account"]
        for f in clean.values()
        if f["session"]["account"] != MGMT and f["session"]["method"] != "network-flow"
    )
    where = folder(tmp_path, "cli", world)
    plan = FaultPlan(permanent_after=1, permanent_kind=kind, matches=_matches(kind, member))
    fake.chaos(plan, account_of=get_account_id_from)
    first_code, first = cli_audit(where)
    fake.chaos(None)
    second_code, second = cli_audit(where)

    with open_store(f"sqlite:///{where / 'audit.db'}") as store:
        runs = store.list_runs(limit=2)
        findings = store.list_findings(limit=10_000)
    stored = {f.id for f in findings}
    first_run, second_run = sorted(runs, key=lambda r: not r.scope_errors)
    assert (clean_code, first_code, second_code) == (0, 4, 0)
    assert first_run.scope_errors and all(
        e.scope.startswith(member) and e.remediation for e in first_run.scope_errors
    )
    expected_code = "unavailable" if kind == "server-error" else "auth_error"
    assert {e.code for e in first_run.scope_errors} == {expected_code}
    assert second_run.scope_errors == ()
    missed = clean_ids - set(first)
    assert missed  # the failure hid findings in the first run ...
    assert missed <= set(second)  # ... which the next run found
    assert clean_ids <= stored  # nothing lost
    # Without an account's inventory (expired credentials) its sessions were still flagged,
    # against the unknown-target policies; those findings stay for review, and they are of
    # the very sessions the clean run flagged: nothing invented.
    sessions = {(f["session"]["source"], f["session"]["id"]) for f in clean.values()}
    assert {(f.session.source, f.session.session_id) for f in findings} == sessions
    report(
        f"faults-aws-permanent-{kind}",
        fault_figures(
            plan,
            provider="aws",
            scenario=f"permanent {kind} ({member})",
            exit_code=first_code,
            scope_errors=len(first_run.scope_errors),
            missed_first_run=len(missed),
            recovered_all=clean_ids <= stored,
            degraded_findings_kept=len(stored - clean_ids),
            next_exit_code=second_code,
        ),
    )
