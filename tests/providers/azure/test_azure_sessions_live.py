"""AzureSource.sessions through the real azure-mgmt-monitor, azure-monitor-query and
azure-storage-blob clients against the local HTTPS fake: every stream, partial results,
failures as ScopeErrors, and checkpoint resume."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.models import AccessMethod, Outcome, Session
from providers.azure.provider import AzureSource
from tests.providers.azure.azfixtures import (
    BASTION_CONTAINER,
    FLOW_ACCOUNT,
    H100_ID,
    NSG_CONTAINER,
    SS_VM0,
    SUB_A,
    VNET_CONTAINER,
    WORKSPACE,
    make_ctx,
    seed_arm,
    seed_bastion_blobs,
    seed_flow_blobs,
    seed_workspace,
)
from tests.providers.azure.fakeazure import FakeAzure, arm_denied


@pytest.fixture
def full(fake: FakeAzure, config: dict[str, Any]) -> dict[str, Any]:
    """Every stream configured against seeded fake data."""
    seed_arm(fake)
    seed_workspace(fake)
    return {
        **config,
        "subscriptions": [SUB_A],
        "workspace_id": WORKSPACE,
        "bastion_blobs": {"account_url": FLOW_ACCOUNT, "container": BASTION_CONTAINER},
        "flow_logs": [
            {"account_url": FLOW_ACCOUNT, "container": NSG_CONTAINER},
            {"account_url": FLOW_ACCOUNT, "container": VNET_CONTAINER},
        ],
    }


def _run(
    config: dict[str, Any], env: SourceEnv, ctx: CollectContext | None = None
) -> tuple[dict[str, SessionBatch], CollectContext]:
    ctx = ctx or make_ctx()
    source = AzureSource.from_config(config, env=env)
    batches = {b.checkpoint_scope or b.unit: b for b in source.sessions(ctx)}
    source.close()
    return batches, ctx


def _sessions(batches: dict[str, SessionBatch]) -> list[Session]:
    return [s for b in batches.values() for s in b.sessions]


def _reconciles(ctx: CollectContext, batches: dict[str, SessionBatch]) -> bool:
    return ctx.read == len(_sessions(batches)) + ctx.ignored + ctx.quarantined_total


def test_every_stream_yields_a_checkpointed_batch_and_the_counts_reconcile(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    seed_flow_blobs(fake)
    seed_bastion_blobs(fake)
    batches, ctx = _run(full, env)
    assert set(batches) == {
        f"azure:activity:{SUB_A}",
        f"azure:bastion:{WORKSPACE}",
        f"azure:signin:{WORKSPACE}",
        f"azure:bastion-blobs:{FLOW_ACCOUNT}/{BASTION_CONTAINER}/",
        f"azure:flow-logs:{FLOW_ACCOUNT}/{NSG_CONTAINER}/",
        f"azure:flow-logs:{FLOW_ACCOUNT}/{VNET_CONTAINER}/",
    }
    methods = {s.method for s in _sessions(batches)}
    assert methods == {
        AccessMethod.RUN_COMMAND,
        AccessMethod.SERIAL_PORT,
        AccessMethod.BASTION,
        AccessMethod.VM_SIGN_IN,
        AccessMethod.NETWORK_FLOW,
    }
    assert ctx.scope_errors == []
    assert _reconciles(ctx, batches)
    assert all(s.provider == "azure" and s.source == "azure-test" for s in _sessions(batches))


def test_log_analytics_bastion_rows_become_one_session_per_tunnel(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    batches, ctx = _run({**full, "streams": ["bastion"], "bastion_blobs": None}, env)
    batch = batches[f"azure:bastion:{WORKSPACE}"]
    tunnel = [s for s in batch.sessions if s.source_ip == "175.45.176.10"]
    assert len(tunnel) == 1 and tunnel[0].ended_at is not None
    assert tunnel[0].instance_id == H100_ID
    assert {s.outcome for s in batch.sessions} == {Outcome.SUCCESS, Outcome.FAILED}
    (bad,) = ctx.quarantined
    assert bad.position == "row 4" and "time" in bad.reason
    assert batch.checkpoint == "2024-05-02T09:30:00+00:00"


def test_vm_sign_ins_keep_microsofts_country_and_skip_other_apps(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    batches, ctx = _run({**full, "streams": ["sign-in"]}, env)
    sessions = batches[f"azure:signin:{WORKSPACE}"].sessions
    assert sorted(s.attributes["provider_country"] for s in sessions) == ["IR", "KP"]
    assert ctx.ignored == 1  # the Office 365 sign-in
    (query,) = [b for m, b in fake.bodies if "/query" in m]
    assert "AADNonInteractiveUserSignInLogs" in query["query"]


def test_activity_log_reads_compute_and_serial_console_providers(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    batches, _ = _run({**full, "streams": ["activity"]}, env)
    batch = batches[f"azure:activity:{SUB_A}"]
    assert {s.method for s in batch.sessions} == {
        AccessMethod.RUN_COMMAND,
        AccessMethod.SERIAL_PORT,
    }
    filters = fake.calls("eventtypes/management/values")
    assert any("Microsoft.Compute" in f for f in filters)
    assert any("Microsoft.SerialConsole" in f for f in filters)
    assert batch.checkpoint == "2024-05-02T11:00:00+00:00"


def test_a_partial_log_analytics_result_keeps_rows_and_is_reported(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    fake.partial["MicrosoftAzureBastionAuditLogs"] = {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [{"code": "EngineError", "message": "Query result set exceeded limits"}],
    }
    batches, ctx = _run({**full, "streams": ["bastion"], "bastion_blobs": None}, env)
    batch = batches[f"azure:bastion:{WORKSPACE}"]
    assert batch.sessions  # the partial rows are kept
    assert batch.checkpoint is None  # and the checkpoint does not move past a gap
    (error,) = ctx.scope_errors
    assert (error.scope, error.code) == (f"workspaces/{WORKSPACE}", "partial_result")
    assert "PartialError" in error.message


def test_a_denied_workspace_is_a_scope_error_naming_the_query_permission(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    fake.deny(
        f"/v1/workspaces/{WORKSPACE}",
        {"error": {"code": "InsufficientAccessError", "message": "insufficient access"}},
    )
    batches, ctx = _run({**full, "streams": ["bastion", "activity"], "bastion_blobs": None}, env)
    assert f"azure:activity:{SUB_A}" in batches  # other scopes continue
    assert [(e.scope, e.permission) for e in ctx.scope_errors] == [
        (f"workspaces/{WORKSPACE}", "Microsoft.OperationalInsights/workspaces/query/read")
    ]


def test_a_workspace_without_the_bastion_table_is_a_scope_error_with_a_hint(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    del fake.tables[WORKSPACE]["MicrosoftAzureBastionAuditLogs"]
    _, ctx = _run({**full, "streams": ["bastion"], "bastion_blobs": None}, env)
    (error,) = ctx.scope_errors
    assert error.code == "source_error" and "streams" in (error.remediation or "")


def test_flow_logs_become_sessions_on_gpu_vms_by_mac(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    names = seed_flow_blobs(fake)
    batches, ctx = _run({**full, "streams": ["flow"]}, env)
    nsg = batches[f"azure:flow-logs:{FLOW_ACCOUNT}/{NSG_CONTAINER}/"].sessions
    assert sorted((s.source_ip, s.attributes["port"]) for s in nsg) == [
        ("175.45.176.10", "22"),
        ("175.45.176.10", "22"),  # a second connection after a 53-minute pause
    ]
    assert all(s.instance_id == H100_ID and s.attributes["layout"] == "nsg-v2" for s in nsg)
    vnet = batches[f"azure:flow-logs:{FLOW_ACCOUNT}/{VNET_CONTAINER}/"].sessions
    assert [(s.source_ip, s.instance_id, s.attributes["port"]) for s in vnet] == [
        ("5.160.0.10", SS_VM0, "8888")
    ]
    assert [q.position for q in ctx.quarantined] == ["record 0 rule 1 mac 0 tuple 1"]
    assert _reconciles(ctx, batches)
    # blobs whose hour is outside the window are not even downloaded
    assert not [c for c in fake.calls("/mlflowlogs/") if "y%3D2017" in c and "comp=list" not in c]
    assert names["nsg_docs_v1"]


def test_docs_nsg_v1_sample_in_an_explicit_window_yields_rdp_sessions(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    seed_flow_blobs(fake)
    ctx = make_ctx(
        since=datetime(2017, 2, 16, 21, tzinfo=UTC), until=datetime(2017, 2, 17, tzinfo=UTC)
    )
    batches, ctx = _run({**full, "streams": ["flow"]}, env, ctx)
    sessions = batches[f"azure:flow-logs:{FLOW_ACCOUNT}/{NSG_CONTAINER}/"].sessions
    sources = sorted(s.source_ip or "" for s in sessions)
    assert sources == sorted(
        [
            "163.28.66.17",
            "5.39.218.34",
            "91.224.160.154",
            "13.76.89.229",
            "61.129.251.68",
            "84.25.174.170",
            "77.68.9.50",
        ]
    )
    repeat = next(s for s in sessions if s.source_ip == "91.224.160.154")
    assert repeat.attributes["tuples"] == "2"  # two connections 2 minutes apart fold into one
    assert all(s.attributes["port"] == "3389" for s in sessions)


def test_bastion_blobs_skip_old_hours_and_quarantine_bad_lines(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    names = seed_bastion_blobs(fake)
    batches, ctx = _run({**full, "streams": ["bastion"], "workspace_id": None}, env)
    (session,) = batches[f"azure:bastion-blobs:{FLOW_ACCOUNT}/{BASTION_CONTAINER}/"].sessions
    assert session.principal == "grace@contoso.example" and session.instance_id == H100_ID
    assert session.evidence[0].locator.endswith(names["recent"])
    assert [q.position for q in ctx.quarantined] == ["line 2", "line 3"]
    assert not [c for c in fake.calls("/mlflowlogs/") if "m%3D04" in c and "comp=list" not in c]


def test_a_second_run_resumes_from_the_checkpoints(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    seed_flow_blobs(fake)
    config = {**full, "overlap_minutes": 0, "bastion_blobs": None}
    first, _ = _run(config, env)
    stored = {scope: b.checkpoint for scope, b in first.items() if b.checkpoint}
    assert len(stored) == 5
    again, _ = _run(config, env, make_ctx(checkpoints=stored))
    assert _sessions(again) == []  # nothing newer than the checkpoints
    assert all(b.checkpoint is None for b in again.values())  # checkpoints stay put
    # a row that arrives later is read on the next run, and only it
    rows = fake.tables[WORKSPACE]["MicrosoftAzureBastionAuditLogs"]["rows"]
    late_row = list(rows[3])  # columns: TimeGenerated, Time, SessionStartTime, ... TunnelId
    late_row[0:3] = ["2024-05-02T11:45:00Z", "2024-05-02T11:45:00Z", "2024-05-02T11:44:58Z"]
    late_row[13] = "7d8e9f00-0000-4000-8000-0000000000e5"
    rows.append(late_row)
    third, _ = _run(config, env, make_ctx(checkpoints=stored))
    (late,) = _sessions(third)
    assert late.key == "bastion:7d8e9f00-0000-4000-8000-0000000000e5"
    assert third[f"azure:bastion:{WORKSPACE}"].checkpoint == "2024-05-02T11:45:00+00:00"


def test_overlapping_rereads_give_the_same_session_ids(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    config = {**full, "streams": ["bastion", "sign-in", "activity"], "bastion_blobs": None}
    first, _ = _run(config, env)
    stored = {scope: b.checkpoint for scope, b in first.items() if b.checkpoint}
    again, _ = _run({**config, "overlap_minutes": 24 * 60}, env, make_ctx(checkpoints=stored))
    assert {s.session_id for s in _sessions(again)} <= {s.session_id for s in _sessions(first)}
    assert _sessions(again)


def test_an_explicit_window_ignores_the_checkpoint(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    config = {**full, "streams": ["bastion"], "bastion_blobs": None}
    stored = {f"azure:bastion:{WORKSPACE}": "2024-05-02T11:00:00+00:00"}
    ctx = make_ctx(checkpoints=stored, since=datetime(2024, 5, 1, tzinfo=UTC))
    batches, _ = _run(config, env, ctx)
    batch = batches[f"azure:bastion:{WORKSPACE}"]
    assert len(batch.sessions) == 3  # includes the row from 2024-05-01
    assert batch.checkpoint is None  # an older re-audit never moves the checkpoint back


def test_a_blob_over_the_size_limit_is_reported_by_name_and_not_downloaded(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = seed_bastion_blobs(fake)
    monkeypatch.setattr("providers.azure.feeds.MAX_BLOB_BYTES", 64)  # the seeded blobs are larger
    batches, ctx = _run({**full, "streams": ["bastion"], "workspace_id": None}, env)
    too_large = [e for e in ctx.scope_errors if e.code == "too_large"]
    assert too_large and any(e.scope.endswith(names["recent"]) for e in too_large)
    assert all("limit" in e.message for e in too_large)
    assert not _sessions(batches)
    downloads = [c for c in fake.calls(f"/{BASTION_CONTAINER}/") if "comp=list" not in c]
    assert downloads == []  # refused from the listing's size, before any byte was read


def test_flow_checkpoints_hold_while_a_subscriptions_vms_cannot_be_listed(
    fake: FakeAzure, full: dict[str, Any], env: SourceEnv
) -> None:
    seed_flow_blobs(fake)
    config = {**full, "streams": ["flow"]}
    vms = f"/subscriptions/{SUB_A}/providers/Microsoft.Compute/virtualMachines"
    fake.deny(vms, arm_denied("Microsoft.Compute/virtualMachines/read", vms))

    blind, ctx = _run(config, env)

    assert any(e.scope == f"subscriptions/{SUB_A}" for e in ctx.scope_errors)
    assert all(b.checkpoint is None for b in blind.values())  # tuples dropped unattributed
    assert not [s for s in _sessions(blind) if s.instance_id == H100_ID]

    fake.denied.clear()
    again, _ = _run(config, env)  # same checkpoints as before the blind run

    assert [s for s in _sessions(again) if s.instance_id == H100_ID]
    assert all(b.checkpoint for b in again.values())
