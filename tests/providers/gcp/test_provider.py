"""GcpSource end to end: the real Compute / Logging / Resource Manager / TPU clients against the
fake Google API server, over recorded and own-shape responses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.contracts import CollectContext, SessionBatch, SourceEnv
from agent.models import AccessMethod, Outcome, Session
from providers.gcp.provider import GcpSource

from .fakegcp import FakeGcp
from .samples import load_json

ConfigFactory = Callable[..., dict[str, Any]]
CtxFactory = Callable[..., CollectContext]
GCPDIAG = "gcpdiag-gke1-aaaa"


def _source(config: dict[str, Any], env: SourceEnv) -> GcpSource:
    return GcpSource.from_config(config, env=env)


def _sessions(batches: list[SessionBatch]) -> list[Session]:
    return [s for b in batches for s in b.sessions]


def _run(source: GcpSource, ctx: CollectContext) -> list[SessionBatch]:
    list(source.inventory(ctx))
    return list(source.sessions(ctx))


def _add_gcpdiag(fake: FakeGcp, *, org_policy: dict[str, Any] | None = None) -> None:
    """The real gcpdiag GKE project (one running V100 node), no logs, no Data Access config."""
    items = load_json("gcpdiag__gke1__compute-instances-europe-west4-a.json")["items"]
    fake.instance_pages[GCPDIAG] = [{"items": {"zones/europe-west4-a": {"instances": items}}}]
    fake.projects[GCPDIAG] = {
        "name": "projects/12340002",
        "projectId": GCPDIAG,
        "parent": "organizations/1234",
        "state": "ACTIVE",
    }
    fake.policies[f"projects/{GCPDIAG}"] = {"version": 1, "bindings": []}
    if org_policy is not None:
        fake.policies["organizations/1234"] = org_policy


# -- inventory -------------------------------------------------------------------------------


def test_inventory_resolves_accelerators_from_guest_machine_type_and_catalog(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    inventory = {i.instance_id: i for i in _source(gcp_config(tpu=True), env).inventory(make_ctx())}
    models = {name: [(a.model, a.count) for a in i.accelerators] for name, i in inventory.items()}
    assert models == {
        "trainer-a3": [("nvidia-h100", 8)],
        "notebook-t4": [("nvidia-t4", 1)],
        "web-1": [],
        "render-g2": [("nvidia-l4", 2)],
        "gke-ml-cluster-gpu-pool-1a2b3c4d-x1y2": [("nvidia-a100", 1)],
        "tpu-v4-node": [("google-tpu-v4", 4)],
        "tpu-v5e-node": [("google-tpu-v5e", 8)],
    }
    sources = {n: i.tags.get("accelerators-source") for n, i in inventory.items()}
    assert sources["trainer-a3"] == "machineTypes.get"
    assert sources["render-g2"] == "catalog"  # machineTypes.get failed: bundled table
    assert sources["notebook-t4"] == "guestAccelerators"
    a3 = inventory["trainer-a3"]
    assert (a3.account, a3.region, a3.tags["gcp-instance-id"]) == (
        "gpu-prod",
        "us-central1-a",
        "7340001000000000001",
    )
    assert a3.tags["network-tags"] == "iap-ssh" and a3.tags["label:team"] == "llm"


def test_inventory_is_listed_once_per_run_and_tpu_only_when_asked(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    source = _source(gcp_config(streams=["serial-port"]), env)
    ctx = make_ctx()
    _run(source, ctx)
    assert len(gpu_prod.calls("GET", "aggregated/instances")) == 2  # two pages, one listing
    assert gpu_prod.calls("GET", "/nodes") == []


def test_an_unreachable_zone_makes_the_listing_partial(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    gpu_prod.instance_pages["gpu-prod"][0]["items"]["zones/us-east1-c"] = {
        "warning": {"code": "UNREACHABLE", "message": "The zone is unreachable."}
    }
    ctx = make_ctx()
    assert len(list(_source(gcp_config(), env).inventory(ctx))) == 5
    (err,) = ctx.scope_errors
    assert (err.scope, err.code) == ("projects/gpu-prod/zones/us-east1-c", "partial_listing")


# -- sessions --------------------------------------------------------------------------------


def test_every_access_path_becomes_a_session_on_the_named_instance(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    sessions = _sessions(_run(_source(gcp_config(), env), make_ctx()))
    seen = {(s.method, s.instance_id, s.source_ip, s.outcome) for s in sessions}
    assert seen == {
        (AccessMethod.IAP_TUNNEL, "trainer-a3", "203.0.113.7", Outcome.SUCCESS),
        (AccessMethod.IAP_TUNNEL, "trainer-a3", "198.51.100.99", Outcome.DENIED),
        (AccessMethod.IAP_TUNNEL, "999", "203.0.113.50", Outcome.SUCCESS),
        (AccessMethod.OS_LOGIN, "notebook-t4", None, Outcome.SUCCESS),
        (AccessMethod.SERIAL_PORT, "trainer-a3", "203.0.113.8", Outcome.SUCCESS),
        (AccessMethod.SSH_KEY_GRANT, "notebook-t4", "203.0.113.10", Outcome.SUCCESS),
        (AccessMethod.SSH_KEY_GRANT, None, "203.0.113.11", Outcome.SUCCESS),
        (
            AccessMethod.KUBERNETES_EXEC,
            "gke-ml-cluster-gpu-pool-1a2b3c4d-x1y2",
            "203.0.113.9",
            Outcome.SUCCESS,
        ),
        (
            AccessMethod.KUBERNETES_PORT_FORWARD,
            "gke-ml-cluster-gpu-pool-1a2b3c4d-x1y2",
            "203.0.113.9",
            Outcome.SUCCESS,
        ),
        (AccessMethod.NETWORK_FLOW, "notebook-t4", "198.51.100.23", Outcome.SUCCESS),
        (AccessMethod.NETWORK_FLOW, "trainer-a3", "2001:db8::1", Outcome.SUCCESS),
    }
    assert all(s.provider == "gcp" and s.account == "gpu-prod" for s in sessions)
    tunnel = next(s for s in sessions if s.source_ip == "203.0.113.7")
    assert tunnel.ended_at == datetime(2026, 3, 1, 10, 20, tzinfo=UTC)  # start + end merged


def test_flows_keep_googles_country_and_iap_range_flows_are_only_counted(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    ctx = make_ctx()
    batches = _run(_source(gcp_config(streams=["vpc-flows"]), env), ctx)
    flows = _sessions(batches)
    assert {s.source_ip for s in flows} == {"198.51.100.23", "2001:db8::1"}
    assert "35.235.241.10" not in {s.source_ip for s in flows}
    ru = next(s for s in flows if s.source_ip == "198.51.100.23")
    assert ru.attributes["provider_country"] == "RU"
    assert (ctx.read, ctx.ignored) == (5, 3)  # merged repeat, IAP range, non-GPU VM


def test_counts_reconcile_and_malformed_entries_are_quarantined_by_insert_id(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    ctx = make_ctx()
    sessions = _sessions(_run(_source(gcp_config(), env), ctx))
    assert ctx.read == len(sessions) + ctx.ignored + ctx.quarantined_total
    assert {(q.position, q.locator) for q in ctx.quarantined} == {
        ("iap-bad1", "logging:projects/gpu-prod:iap"),
        ("iap-bad2", "logging:projects/gpu-prod:iap"),
    }
    assert any("RFC 3339" in q.reason for q in ctx.quarantined)
    assert ctx.scope_errors == []


def test_unknown_fields_in_log_entries_are_ignored(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    for entry in gpu_prod.entries["gpu-prod"]:
        entry["futureTopLevel"] = {"x": 1}
        if isinstance(entry.get("protoPayload"), dict):
            entry["protoPayload"]["futureAuditField"] = [1, 2]
    ctx = make_ctx()
    assert len(_sessions(_run(_source(gcp_config(), env), ctx))) == 11


def test_batches_carry_per_stream_checkpoints_and_respect_batch_size(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    batches = _run(
        _source(gcp_config(streams=["iap", "ssh-keys"], page_size=1, batch_size=1), env), make_ctx()
    )
    iap = [b for b in batches if b.checkpoint_scope == "gcp:gpu-prod:iap"]
    assert len(iap) >= 3 and all(b.unit == "gcp:gpu-prod:iap" for b in iap)
    checkpoints = [b.checkpoint or "" for b in iap]
    assert checkpoints == sorted(checkpoints) and len(set(checkpoints)) == len(checkpoints)
    assert iap[-1].checkpoint == "2026-03-01T11:50:00.000000000Z|iap-bad2"
    md = [b for b in batches if b.checkpoint_scope == "gcp:gpu-prod:ssh-keys"]
    assert md[-1].checkpoint == "2026-03-01T13:40:00.000000000Z|md-0004"


def test_a_second_run_resumes_from_the_checkpoint_and_reads_nothing_twice(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    entries = gpu_prod.entries["gpu-prod"]
    entries[:] = [e for e in entries if e["insertId"] not in ("iap-bad1", "iap-bad2")]
    store: dict[str, str] = {}
    first = make_ctx(checkpoints=store)
    run1 = _run(_source(gcp_config(), env), first)
    for batch in run1:  # what the pipeline commits with each batch's findings
        assert batch.checkpoint_scope and batch.checkpoint
        store[batch.checkpoint_scope] = batch.checkpoint
    assert store["gcp:gpu-prod:iap"] == "2026-03-01T11:30:00.000000000Z|iap-0004"

    same_time = copy.deepcopy(next(e for e in entries if e["insertId"] == "iap-0004"))
    same_time["insertId"] = "iap-0005"  # same timestamp, later insertId: new
    same_time["protoPayload"]["requestMetadata"]["callerIp"] = "203.0.113.77"
    later = copy.deepcopy(same_time)
    later.update(insertId="iap-0006", timestamp="2026-03-02T09:00:00Z")
    later["protoPayload"]["requestMetadata"]["callerIp"] = "203.0.113.78"
    entries.extend([same_time, later])

    second = make_ctx(checkpoints=store)
    run2 = _run(_source(gcp_config(), env), second)
    new = _sessions(run2)
    assert sorted(s.source_ip or "" for s in new) == ["203.0.113.77", "203.0.113.78"]
    assert second.read == 2 and second.ignored == 0
    keys1 = {s.key for s in _sessions(run1)}
    assert keys1.isdisjoint(s.key for s in new)
    iap_filters = [
        c["filter"]
        for c in gpu_prod.calls("POST", "entries:list")
        if "AuthorizeUser" in c["filter"]
    ]
    assert 'timestamp>="2026-03-01T11:30:00.000000000Z"' in iap_filters[-1]
    assert {b.checkpoint_scope: b.checkpoint for b in run2}["gcp:gpu-prod:iap"] == (
        "2026-03-02T09:00:00.000000000Z|iap-0006"
    )

    third = make_ctx(
        checkpoints={**store, **{b.checkpoint_scope or "": b.checkpoint or "" for b in run2}}
    )
    assert _sessions(_run(_source(gcp_config(), env), third)) == []
    assert third.read == 0


def test_an_explicit_window_is_used_as_given_and_ignores_checkpoints(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    ctx = make_ctx(
        checkpoints={"gcp:gpu-prod:serial-port": "2026-03-01T23:00:00Z|zzz"},
        since=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        until=datetime(2026, 3, 1, 13, 0, tzinfo=UTC),
        explicit=True,
    )
    sessions = _sessions(_run(_source(gcp_config(streams=["serial-port"]), env), ctx))
    assert [s.method for s in sessions] == [AccessMethod.SERIAL_PORT]
    (flt,) = [c["filter"] for c in gpu_prod.calls("POST", "entries:list")]
    assert 'timestamp>="2026-03-01T12:00:00.000000000Z"' in flt
    assert 'timestamp<="2026-03-01T13:00:00.000000000Z"' in flt


# -- failures and scope errors ----------------------------------------------------------------


def test_a_forbidden_project_is_a_scope_error_and_the_other_projects_continue(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    gpu_prod.fail(
        "GET",
        "/projects/locked/aggregated",
        403,
        message="Required 'compute.instances.list' permission for 'projects/locked'",
    )
    gpu_prod.denied_log_projects.add("locked")
    ctx = make_ctx()
    sessions = _sessions(_run(_source(gcp_config(projects=["locked", "gpu-prod"]), env), ctx))
    assert len(sessions) == 11  # gpu-prod is fully read
    locked = [e for e in ctx.scope_errors if e.scope == "projects/locked"]
    assert {e.permission for e in locked} == {
        "compute.instances.list",
        "logging.privateLogEntries.list",
        "logging.logEntries.list",
    }
    assert all(e.code == "permission_denied" and e.source == "gcp-test" for e in locked)
    assert all(e.remediation and "grant" in e.remediation for e in locked)
    assert [e for e in ctx.scope_errors if e.scope != "projects/locked"] == []


def test_disabled_iap_data_access_logs_are_a_scope_error_with_the_remediation(
    fake: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    _add_gcpdiag(
        fake,
        org_policy={
            "version": 1,
            "auditConfigs": [
                {"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": "DATA_READ"}]}
            ],
        },
    )
    ctx = make_ctx()
    _run(_source(gcp_config(projects=[GCPDIAG]), env), ctx)
    (err,) = ctx.scope_errors
    assert (err.scope, err.code) == (f"projects/{GCPDIAG}", "data_access_logs_disabled")
    assert err.remediation is not None
    assert "enable Data Access audit logs for IAP" in err.remediation
    assert "organizations/1234" in err.message


def test_an_unreadable_audit_config_with_gpu_vms_and_no_iap_entries_is_unverified(
    fake: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    _add_gcpdiag(fake)  # no organization policy: getIamPolicy there is denied
    ctx = make_ctx()
    _run(_source(gcp_config(projects=[GCPDIAG]), env), ctx)
    (err,) = ctx.scope_errors
    assert err.code == "data_access_logs_unverified"
    assert "gke-gke6-default-pool-d8412db4-pb55" in err.message


def test_iap_range_flows_without_any_iap_entry_reveal_missing_iap_logs(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    entries = gpu_prod.entries["gpu-prod"]
    entries[:] = [e for e in entries if not e["insertId"].startswith("iap-")]
    ctx = make_ctx()
    _run(_source(gcp_config(streams=["iap", "vpc-flows"]), env), ctx)
    (err,) = ctx.scope_errors
    assert (err.scope, err.code) == ("projects/gpu-prod", "iap_audit_entries_missing")


def test_organization_discovery_walks_folders_and_skips_projects_being_deleted(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    _add_gcpdiag(
        gpu_prod,
        org_policy={
            "auditConfigs": [
                {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_READ"}]}
            ]
        },
    )
    gpu_prod.projects_by_parent["organizations/1234"] = [
        {"name": "projects/1", "projectId": "gpu-prod", "state": "ACTIVE"},
        {"name": "projects/2", "projectId": "old-proj", "state": "DELETE_REQUESTED"},
    ]
    gpu_prod.folders_by_parent["organizations/1234"] = [
        {"name": "folders/55", "displayName": "research", "state": "ACTIVE"}
    ]
    gpu_prod.projects_by_parent["folders/55"] = [
        {"name": "projects/12340002", "projectId": GCPDIAG, "state": "ACTIVE"}
    ]
    gpu_prod.fail("GET", r"^/v3/folders$", 403, message="folders.list denied")
    ctx = make_ctx()
    config = gcp_config(projects=None, organization="1234", streams=["serial-port"])
    inventory = list(_source(config, env).inventory(ctx))
    assert {i.account for i in inventory} == {"gpu-prod"}  # folder listing denied
    (err,) = ctx.scope_errors
    assert (err.scope, err.permission) == ("organizations/1234", "resourcemanager.folders.list")
    assert gpu_prod.calls("GET", "old-proj") == []

    gpu_prod.faults.clear()
    ctx = make_ctx()
    inventory = list(_source(config, env).inventory(ctx))
    assert {i.account for i in inventory} == {"gpu-prod", GCPDIAG}
    assert ctx.scope_errors == []


def test_missing_credentials_are_one_auth_scope_error_not_a_crash(
    gpu_prod: FakeGcp,
    gcp_config: ConfigFactory,
    make_ctx: CtxFactory,
    env: SourceEnv,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file
    ctx = make_ctx()
    batches = _run(_source(gcp_config(credentials="default", projects=["gpu-prod"]), env), ctx)
    assert batches == []
    assert ctx.scope_errors and {e.code for e in ctx.scope_errors} == {"auth_error"}
    assert "application-default login" in (ctx.scope_errors[0].remediation or "")


def test_stream_reads_are_logged_with_stable_event_names(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    with capture_logs() as logs:
        _run(_source(gcp_config(streams=["vpc-flows"]), env), make_ctx())
    read = [e for e in logs if e["event"] == "gcp_stream_read"]
    assert read and read[0]["stream"] == "vpc-flows" and read[0]["read"] == 5
    assert any(e["event"] == "gcp_inventory_project" for e in logs)


def test_a_project_without_gpu_vms_is_not_flagged_for_iap_logging(
    fake: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    fake.instance_pages["cpu-only"] = [
        load_json("gcpdiag__gce1__compute-instances-aggregated.json")
    ]
    ctx = make_ctx()
    batches = _run(_source(gcp_config(projects=["cpu-only"]), env), ctx)
    assert batches == [] and ctx.scope_errors == []
    assert fake.calls("POST", "getIamPolicy") == []  # no GPU VM: the config is not even read
