"""``kubernetes`` source against a fake API server through the real ``kubernetes`` client."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from structlog.testing import capture_logs

from agent.contracts import CollectContext, InventorySource, SessionSource, SourceEnv
from agent.registry import sources
from providers.kubernetes.audit import KubernetesAuditFilesSource
from providers.kubernetes.provider import KubernetesConfig, KubernetesSource, registry_catalogs

FakeKubeApi = Any  # conftest.FakeKubeApi, reached through the ``kube_api`` fixture

GPU_NODES = {
    "ip-10-0-1-23.ec2.internal": [("nvidia-h100", 8.0)],
    "gke-gpu-lab-a2-pool-3f9c2d1e-x7k2": [("nvidia-a100", 1.0)],
    "aks-t4pool-12345678-vmss000000": [("nvidia-t4", 1.0)],
    "dgx-07": [("nvidia-l40s", 4.0)],
    "ip-10-0-2-40.ec2.internal": [("aws-trainium", 16.0)],
    "gke-gpu-lab-tpu-pool-8d7c6b5a-q1w2": [("google-tpu-v5e", 4.0)],
    "ip-10-0-1-99.ec2.internal": [("nvidia-a10g", 1.0)],
}
GPU_PODS = {
    ("ml-team", "trainer-0"): "ip-10-0-1-23.ec2.internal",
    ("ml-team", "notebook-7f9c"): "gke-gpu-lab-a2-pool-3f9c2d1e-x7k2",
    ("inference", "t4-server-5d8f"): "aks-t4pool-12345678-vmss000000",
    ("research", "l40s-job-abc"): "dgx-07",
    ("neuron", "llm-train-0"): "ip-10-0-2-40.ec2.internal",
    ("tpu", "jax-0"): "gke-gpu-lab-tpu-pool-8d7c6b5a-q1w2",
}


def _source(
    config: dict[str, Any],
    catalogs: Callable[[str], Any] | None = None,
    base_dir: Path = Path("."),
) -> KubernetesSource:
    validated = KubernetesConfig.model_validate(
        {"cluster": "gpu-lab"} | config, context={"base_dir": base_dir}
    )
    return KubernetesSource(
        name="k8s", config=validated, clock=lambda: datetime.now(UTC), catalogs=catalogs
    )


def _host(api: FakeKubeApi, **extra: Any) -> dict[str, Any]:
    return {"host": api.url, "token": api.token, "page_size": 3} | extra


def test_the_source_is_registered_under_its_entry_point_name() -> None:
    assert sources.load("kubernetes") is KubernetesSource


def test_inventory_pages_through_nodes_and_returns_gpu_nodes_with_models(
    kube_api: FakeKubeApi, catalogs: Callable[[str], Any], make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(_host(kube_api), catalogs)
    ctx = make_ctx()
    instances = source.inventory(ctx)
    got = {i.instance_id: [(a.model, a.count) for a in i.accelerators] for i in instances}
    assert got == GPU_NODES
    assert ctx.scope_errors == []
    calls = kube_api.paths_requested("/api/v1/nodes")
    assert len(calls) == 3  # 8 nodes, 3 per page
    assert [c.get("limit") for c in calls] == ["3", "3", "3"]
    assert "continue" not in calls[0] and calls[1]["continue"] and calls[2]["continue"]
    h100 = next(i for i in instances if i.instance_id == "ip-10-0-1-23.ec2.internal")
    assert (h100.provider, h100.account, h100.region) == ("kubernetes", "gpu-lab", "us-east-1")
    assert h100.instance_type == "p5.48xlarge"
    assert h100.tags["providerID"] == "aws:///us-east-1a/i-0a1b2c3d4e5f60718"


def test_gpu_requesting_pods_are_indexed_to_their_nodes(
    kube_api: FakeKubeApi, catalogs: Callable[[str], Any], make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(_host(kube_api), catalogs)
    source.inventory(make_ctx())
    assert source.pod_index == GPU_PODS
    [first, *_] = kube_api.paths_requested("/api/v1/pods")
    assert first["fieldSelector"] == "spec.nodeName!="


def test_exec_into_a_gpu_pod_resolves_to_its_node_through_the_live_index(
    tmp_path: Path,
    data_dir: Path,
    kube_api: FakeKubeApi,
    catalogs: Callable[[str], Any],
    make_ctx: Callable[..., CollectContext],
) -> None:
    shutil.copy(data_dir / "audit" / "gpu-lab" / "audit.log", tmp_path / "audit.log")
    source = _source(_host(kube_api, audit_paths=["audit.log"]), catalogs, base_dir=tmp_path)
    ctx = make_ctx()
    instances = {i.instance_id: i for i in source.inventory(ctx)}
    sessions = {s.key: s for b in source.sessions(ctx) for s in b.sessions}
    exec_ = sessions["0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10001"]
    assert exec_.instance_id == "ip-10-0-1-23.ec2.internal"
    assert exec_.region == "us-east-1"
    assert exec_.attributes["node_resolved_by"] == "pod-index"
    target = instances[exec_.instance_id or ""]
    assert [a.model for a in target.accelerators] == ["nvidia-h100"]
    resolved = {s.attributes["pod"]: s.instance_id for s in sessions.values()}
    assert resolved["notebook-7f9c"] == "gke-gpu-lab-a2-pool-3f9c2d1e-x7k2"
    assert resolved["l40s-job-abc"] == "dgx-07"
    assert resolved["nginx"] is None  # requests no GPU
    assert len(kube_api.paths_requested("/api/v1/nodes")) == 3  # one listing per run


def test_sessions_before_inventory_lists_the_cluster_itself(
    tmp_path: Path,
    data_dir: Path,
    kube_api: FakeKubeApi,
    make_ctx: Callable[..., CollectContext],
) -> None:
    shutil.copy(data_dir / "audit" / "falco__exec_pod.json", tmp_path / "audit.log")
    source = _source(_host(kube_api, audit_paths=[str(tmp_path / "*.log")]))
    [batch] = list(source.sessions(make_ctx()))
    assert [s.principal for s in batch.sessions] == ["minikube-user"]
    assert kube_api.paths_requested("/api/v1/pods")


def test_without_audit_paths_sessions_yield_nothing_and_call_no_api(
    kube_api: FakeKubeApi, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(_host(kube_api))
    assert list(source.sessions(make_ctx())) == []
    assert kube_api.requests == []


def test_kubeconfig_context_selects_server_and_credentials(
    tmp_path: Path,
    kube_api: FakeKubeApi,
    catalogs: Callable[[str], Any],
    make_ctx: Callable[..., CollectContext],
) -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "lab", "cluster": {"server": kube_api.url}},
            {"name": "other", "cluster": {"server": "http://127.0.0.1:9"}},
        ],
        "users": [{"name": "auditor", "user": {"token": kube_api.token}}],
        "contexts": [
            {"name": "gpu-lab", "context": {"cluster": "lab", "user": "auditor"}},
            {"name": "other", "context": {"cluster": "other", "user": "auditor"}},
        ],
        "current-context": "other",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    source = _source(
        {"kubeconfig": "kubeconfig", "context": "gpu-lab", "page_size": 500},
        catalogs,
        base_dir=tmp_path,
    )
    ctx = make_ctx()
    assert len(source.inventory(ctx)) == len(GPU_NODES)
    assert ctx.scope_errors == []


def test_rejected_token_is_an_auth_scope_error_not_an_empty_cluster(
    kube_api: FakeKubeApi, make_ctx: Callable[..., CollectContext]
) -> None:
    source = _source(_host(kube_api, token="wrong"))  # noqa: S106 - a fake, rejected token
    ctx = make_ctx()
    assert source.inventory(ctx) == []
    [error] = ctx.scope_errors
    assert (error.source, error.scope, error.code) == ("k8s", "gpu-lab/nodes", "auth_error")
    assert "401" in error.message
    assert error.remediation


def test_forbidden_pod_list_keeps_the_nodes_and_names_the_missing_permission(
    kube_api: FakeKubeApi, catalogs: Callable[[str], Any], make_ctx: Callable[..., CollectContext]
) -> None:
    kube_api.fail["/api/v1/pods"] = 403
    source = _source(_host(kube_api), catalogs)
    ctx = make_ctx()
    assert len(source.inventory(ctx)) == len(GPU_NODES)
    [error] = ctx.scope_errors
    assert (error.scope, error.code, error.permission) == (
        "gpu-lab/pods",
        "permission_denied",
        "list pods",
    )
    assert "cannot list resource" in error.message
    assert error.remediation and "ClusterRole" in error.remediation
    assert source.pod_index == {}


def test_expired_continue_token_restarts_the_list_once_without_duplicates(
    kube_api: FakeKubeApi, catalogs: Callable[[str], Any], make_ctx: Callable[..., CollectContext]
) -> None:
    kube_api.expire_continue_once.add("/api/v1/nodes")
    source = _source(_host(kube_api), catalogs)
    ctx = make_ctx()
    with capture_logs() as seen:
        instances = source.inventory(ctx)
    assert sorted(i.instance_id for i in instances) == sorted(GPU_NODES)
    assert ctx.scope_errors == []
    assert [e["what"] for e in seen if e["event"] == "k8s_list_restarted"] == ["list nodes"]
    calls = kube_api.paths_requested("/api/v1/nodes")
    assert ["continue" in c for c in calls] == [False, True, False, True, True]


def test_unreachable_api_server_is_an_unavailable_scope_error(
    make_ctx: Callable[..., CollectContext],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = _source({"host": f"http://127.0.0.1:{port}", "timeout_seconds": 2})
    ctx = make_ctx()
    assert source.inventory(ctx) == []
    [error] = ctx.scope_errors
    assert error.code == "unavailable"
    assert f"127.0.0.1:{port}" in error.message


def test_in_cluster_mode_outside_a_pod_is_an_auth_scope_error(
    monkeypatch: pytest.MonkeyPatch, make_ctx: Callable[..., CollectContext]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    source = _source({"in_cluster": True})
    ctx = make_ctx()
    assert source.inventory(ctx) == []
    [error] = ctx.scope_errors
    assert error.code == "auth_error"
    assert "in-cluster" in error.message


def test_from_config_validates_a_raw_mapping_against_the_config_folder(tmp_path: Path) -> None:
    env = SourceEnv(name="lab", base_dir=tmp_path, clock=lambda: datetime.now(UTC))
    source = KubernetesSource.from_config(
        {"type": "kubernetes", "cluster": "gpu-lab", "kubeconfig": "kc.yaml"}, env=env
    )
    assert source.name == "lab"
    assert source.config.kubeconfig == tmp_path / "kc.yaml"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"host": "https://k8s.example", "in_cluster": True}, "only one of"),
        ({"token": "t"}, "token is only used with host"),
        ({"in_cluster": True, "context": "x"}, "needs kubeconfig"),
        ({"host": "k8s.example"}, "should match pattern"),
        ({"clusterr": "x"}, "Extra inputs"),
    ],
)
def test_config_rejects_contradictory_or_unknown_settings(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        KubernetesConfig.model_validate({"cluster": "gpu-lab"} | config)


def test_a_cloud_without_an_installed_catalog_resolves_to_none() -> None:
    resolve = registry_catalogs()
    with capture_logs() as seen:
        assert resolve("no-such-cloud") is None
    assert [e["event"] for e in seen] == ["k8s_instance_catalog_unavailable"]


def test_sources_satisfy_the_ports_they_are_registered_for(kube_api: FakeKubeApi) -> None:
    live = _source(_host(kube_api))
    files = KubernetesAuditFilesSource.from_config(
        {"cluster": "c", "paths": ["x"]},
        env=SourceEnv(name="f", base_dir=Path("."), clock=lambda: datetime.now(UTC)),
    )
    assert isinstance(live, SessionSource) and isinstance(live, InventorySource)
    assert isinstance(files, SessionSource)
