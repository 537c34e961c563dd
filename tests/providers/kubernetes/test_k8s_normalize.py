"""Node and Pod JSON (recorded ``kubectl get -o json`` shapes) -> GpuInstance / PodPlacement."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.errors import RecordError
from providers.kubernetes.labels import LabelCatalog
from providers.kubernetes.normalize import (
    accelerators_for_node,
    cloud_of,
    gpu_capacity,
    instance_from_node,
    pod_placement,
)

TABLE = LabelCatalog.load()


def _items(data_dir: Path, name: str) -> dict[str, dict[str, Any]]:
    listing = json.loads((data_dir / "api" / f"{name}.json").read_text())
    return {item["metadata"]["name"]: item for item in listing["items"]}


@pytest.fixture
def nodes(data_dir: Path) -> dict[str, dict[str, Any]]:
    return _items(data_dir, "nodes")


@pytest.fixture
def pods(data_dir: Path) -> dict[str, dict[str, Any]]:
    return _items(data_dir, "pods")


def _accs(
    node: dict[str, Any], catalogs: Callable[[str], Any]
) -> tuple[list[tuple[str, float]], str]:
    cloud = cloud_of(node["spec"].get("providerID"))
    accs, basis = accelerators_for_node(
        node, table=TABLE, catalog=catalogs(cloud) if cloud else None
    )
    return [(a.model, a.count) for a in accs], basis


@pytest.mark.parametrize(
    ("node", "expected", "basis"),
    [
        ("ip-10-0-1-23.ec2.internal", [("nvidia-h100", 8)], "node-resources"),
        ("gke-gpu-lab-a2-pool-3f9c2d1e-x7k2", [("nvidia-a100", 1)], "node-resources"),
        # time-sliced T4: the device plugin advertises 4 replicas of 1 physical GPU
        ("aks-t4pool-12345678-vmss000000", [("nvidia-t4", 1)], "node-resources"),
        ("dgx-07", [("nvidia-l40s", 4)], "node-resources"),
        ("ip-10-0-2-40.ec2.internal", [("aws-trainium", 16)], "node-resources"),
        ("gke-gpu-lab-tpu-pool-8d7c6b5a-q1w2", [("google-tpu-v5e", 4)], "node-resources"),
        ("ip-10-0-3-7.ec2.internal", [], "none"),
        # no device plugin yet: the instance type still says what hardware is there
        ("ip-10-0-1-99.ec2.internal", [("nvidia-a10g", 1)], "instance-type"),
    ],
)
def test_node_accelerators_come_from_labels_capacity_and_instance_type(
    nodes: dict[str, dict[str, Any]],
    catalogs: Callable[[str], Any],
    node: str,
    expected: list[tuple[str, float]],
    basis: str,
) -> None:
    assert _accs(nodes[node], catalogs) == (expected, basis)


def test_neuron_node_without_a_catalog_keeps_the_device_count_under_an_unknown_model(
    nodes: dict[str, dict[str, Any]],
) -> None:
    accs, _ = accelerators_for_node(nodes["ip-10-0-2-40.ec2.internal"], table=TABLE, catalog=None)
    assert [(a.model, a.count, a.source_name) for a in accs] == [
        ("aws-neuron-unknown", 16.0, "aws.amazon.com/neuron")
    ]


def test_nvidia_node_with_no_model_label_and_no_catalog_is_reported_as_unknown_model() -> None:
    node = {"metadata": {"name": "n"}, "status": {"capacity": {"nvidia.com/gpu": "2"}}}
    accs, basis = accelerators_for_node(node, table=TABLE, catalog=None)
    assert [(a.model, a.count) for a in accs] == [("nvidia-unknown", 2.0)]
    assert basis == "node-resources"


def test_time_sliced_replicas_are_divided_out_when_no_count_label_is_set() -> None:
    node = {
        "metadata": {
            "name": "n",
            "labels": {"nvidia.com/gpu.product": "Tesla-T4-SHARED", "nvidia.com/gpu.replicas": "4"},
        },
        "status": {"capacity": {"nvidia.com/gpu": "8"}},
    }
    accs, _ = accelerators_for_node(node, table=TABLE, catalog=None)
    assert [(a.model, a.count) for a in accs] == [("nvidia-t4", 2.0)]


def test_catalog_count_wins_over_an_inflated_device_plugin_count(
    nodes: dict[str, dict[str, Any]], catalogs: Callable[[str], Any]
) -> None:
    node = json.loads(json.dumps(nodes["ip-10-0-1-23.ec2.internal"]))
    node["status"]["capacity"]["nvidia.com/gpu"] = "32"  # e.g. time-slicing without GFD labels
    del node["metadata"]["labels"]["nvidia.com/gpu.count"]
    accs, _ = accelerators_for_node(node, table=TABLE, catalog=catalogs("aws"))
    assert [(a.model, a.count, a.memory_mib) for a in accs] == [("nvidia-h100", 8.0, 81559)]


def test_amd_node_uses_the_labeller_product_name() -> None:
    node = {
        "metadata": {
            "name": "mi",
            "labels": {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"},
        },
        "status": {"capacity": {"amd.com/gpu": "8"}},
    }
    accs, _ = accelerators_for_node(node, table=TABLE, catalog=None)
    assert [(a.model, a.count, a.vendor) for a in accs] == [("amd-mi300x", 8.0, "amd")]


def test_gpu_capacity_ignores_zero_unparseable_and_non_accelerator_resources() -> None:
    node = {
        "status": {
            "capacity": {
                "cpu": "8",
                "nvidia.com/gpu": "0",
                "amd.com/gpu": "lots",
                "google.com/tpu": "4",
                "nvidia.com/mig-1g.10gb": "7",
            }
        }
    }
    assert gpu_capacity(node) == {"google.com/tpu": 4.0, "nvidia.com/mig-1g.10gb": 7.0}


@pytest.mark.parametrize(
    ("provider_id", "cloud"),
    [
        ("aws:///us-east-1a/i-0a1b2c3d4e5f60718", "aws"),
        ("gce://proj/us-central1-c/gke-x", "gcp"),
        ("azure:///subscriptions/x/resourceGroups/y", "azure"),
        ("kind://docker/kind/kind-worker", None),
        ("", None),
        (None, None),
    ],
)
def test_cloud_is_read_from_the_provider_id_prefix(
    provider_id: str | None, cloud: str | None
) -> None:
    assert cloud_of(provider_id) == cloud


def test_node_becomes_a_gpu_instance_with_cluster_region_addresses_and_tags(
    nodes: dict[str, dict[str, Any]], catalogs: Callable[[str], Any]
) -> None:
    node = nodes["gke-gpu-lab-a2-pool-3f9c2d1e-x7k2"]
    accs, basis = accelerators_for_node(node, table=TABLE, catalog=catalogs("gcp"))
    inst = instance_from_node(node, cluster="gpu-lab", accelerators=accs, basis=basis)
    assert (inst.provider, inst.account, inst.region) == ("kubernetes", "gpu-lab", "us-central1")
    assert inst.instance_id == inst.name == "gke-gpu-lab-a2-pool-3f9c2d1e-x7k2"
    assert inst.instance_type == "a2-highgpu-1g"
    assert inst.private_ips == ("10.128.0.12",)
    assert inst.public_ips == ("203.0.113.50",)
    assert inst.tags["providerID"] == node["spec"]["providerID"]
    assert inst.tags["cloud.google.com/gke-accelerator"] == "nvidia-tesla-a100"
    assert not any(k.startswith("feature.node.kubernetes.io/") for k in inst.tags)
    assert inst.state == "ready"
    assert inst.launched_at is not None and inst.launched_at.tzinfo is not None
    assert inst.evidence is not None and inst.evidence.event_id == node["metadata"]["uid"]


def test_cordoned_not_ready_node_is_marked(nodes: dict[str, dict[str, Any]]) -> None:
    inst = instance_from_node(nodes["ip-10-0-1-99.ec2.internal"], cluster="c", accelerators=())
    assert inst.state == "not-ready"
    assert inst.tags["unschedulable"] == "true"


def test_node_without_a_name_is_a_record_error() -> None:
    with pytest.raises(RecordError, match=r"metadata\.name"):
        instance_from_node({"metadata": {}}, cluster="c", accelerators=())


def test_gpu_pods_map_to_their_node_and_sum_container_requests(
    pods: dict[str, dict[str, Any]],
) -> None:
    placement = pod_placement(pods["l40s-job-abc"])
    assert placement is not None
    assert (placement.namespace, placement.name, placement.node) == (
        "research",
        "l40s-job-abc",
        "dgx-07",
    )
    assert placement.gpu_requests == {"nvidia.com/gpu": 3.0}  # 2 (job) + 1 (init container)


@pytest.mark.parametrize("name", ["nginx", "pending-job"])
def test_pods_without_gpu_requests_or_node_are_not_placed(
    pods: dict[str, dict[str, Any]], name: str
) -> None:
    assert pod_placement(pods[name]) is None


def test_pod_without_namespace_is_a_record_error() -> None:
    with pytest.raises(RecordError, match="namespace"):
        pod_placement({"metadata": {"name": "x"}, "spec": {}})
