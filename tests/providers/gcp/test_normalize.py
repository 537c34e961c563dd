"""Inventory normalisation from recorded Compute / TPU REST responses (pure, no SDK)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import RecordError
from providers.gcp.catalog import GcpMachineCatalog
from providers.gcp.normalize import (
    InventoryIndex,
    guest_accelerators,
    instance_from_compute,
    machine_type_accelerators,
    scope_warning,
    tpu_node_instance,
)

from .samples import load_json

CATALOG = GcpMachineCatalog()


def _gke1_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = load_json("gcpdiag__gke1__compute-instances-europe-west4-a.json")[
        "items"
    ]
    return items


def _by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i["name"] == name)


def test_real_gke_node_with_an_attached_v100_is_a_gpu_instance_named_by_name() -> None:
    raw = _by_name(_gke1_items(), "gke-gke6-default-pool-d8412db4-pb55")
    inst = instance_from_compute(
        raw,
        project="gcpdiag-gke1-aaaa",
        zone="europe-west4-a",
        accelerators=guest_accelerators(raw, CATALOG),
    )
    assert inst.provider == "gcp"
    assert (inst.account, inst.region, inst.instance_id) == (
        "gcpdiag-gke1-aaaa",
        "europe-west4-a",
        "gke-gke6-default-pool-d8412db4-pb55",
    )
    assert inst.instance_type == "n1-standard-2"
    assert [(a.model, a.count, a.source_name) for a in inst.accelerators] == [
        ("nvidia-v100", 1, "nvidia-tesla-v100")
    ]
    assert inst.tags["gcp-instance-id"] == raw["id"]
    assert inst.public_ips == ("34.141.239.85",)
    assert inst.private_ips == ("10.164.15.227",)
    assert inst.tags["network-tags"] == "gke-gke6-ae0d6714-node"
    assert inst.tags["gke-cluster"] == "gke6"  # from the node's cluster-name metadata
    assert inst.state == "running"
    assert inst.evidence is not None and inst.evidence.event_id == raw["id"]


def test_real_cpu_nodes_have_no_accelerators_and_keep_labels_and_tags() -> None:
    raw = _by_name(_gke1_items(), "gke-gke2-default-pool-dabb2ff4-76fs")
    inst = instance_from_compute(
        raw, project="p", zone="europe-west4-a", accelerators=guest_accelerators(raw, CATALOG)
    )
    assert not inst.has_accelerators
    assert inst.tags["network-tags"] == "gke-gke2-12cd17cd-node,gke-gke2-custom-tag"
    assert inst.launched_at is not None and inst.launched_at.tzinfo is not None


def test_a_node_without_external_ip_has_no_public_ips() -> None:
    raw = _by_name(_gke1_items(), "gke-gke4-default-pool-4c934268-yzb0")
    inst = instance_from_compute(raw, project="p", zone="z", accelerators=())
    assert inst.public_ips == ()


def test_bundled_machine_type_accelerators_come_from_the_machine_type_response() -> None:
    accs = machine_type_accelerators(load_json("own__machine-type__a3-highgpu-8g.json"), CATALOG)
    assert [(a.model, a.count) for a in accs] == [("nvidia-h100", 8)]


def test_aggregated_scopes_with_only_a_no_results_warning_are_not_problems() -> None:
    items = load_json("gcpdiag__gce1__compute-instances-aggregated.json")["items"]
    problems = [scope_warning(scope, scoped) for scope, scoped in items.items()]
    assert not any(problems)
    assert sum(len(s.get("instances", [])) for s in items.values()) == 6


def test_an_unreachable_zone_warning_is_reported_as_a_problem() -> None:
    scoped = {"warning": {"code": "UNREACHABLE", "message": "zone us-east1-c unreachable"}}
    problem = scope_warning("zones/us-east1-c", scoped)
    assert problem is not None and "UNREACHABLE" in problem and "us-east1-c" in problem


@pytest.mark.parametrize(
    "raw",
    [
        {"machineType": "zones/z/machineTypes/n1-standard-1"},  # no name
        {"name": "x", "guestAccelerators": [{"acceleratorCount": 1}]},  # no type
        {
            "name": "x",
            "guestAccelerators": [{"acceleratorType": "nvidia-l4", "acceleratorCount": "many"}],
        },
    ],
)
def test_malformed_instances_raise_record_error(raw: dict[str, Any]) -> None:
    with pytest.raises(RecordError):
        instance_from_compute(
            raw, project="p", zone="z", accelerators=guest_accelerators(raw, CATALOG)
        )


def test_tpu_nodes_become_instances_with_chip_counts_and_endpoints() -> None:
    nodes = load_json("own__gpu-prod__tpu-nodes.json")["nodes"]
    v4 = tpu_node_instance(nodes[0], project="gpu-prod", catalog=CATALOG)
    assert (v4.instance_id, v4.region, v4.instance_type) == ("tpu-v4-node", "us-central2-b", "v4-8")
    assert [(a.model, a.count) for a in v4.accelerators] == [("google-tpu-v4", 4)]
    assert v4.private_ips == ("10.130.0.2",) and v4.public_ips == ("35.186.10.2",)
    assert v4.tags["tpu-node"] == "true" and v4.tags["network-tags"] == "tpu-ssh"
    v5e = tpu_node_instance(nodes[1], project="gpu-prod", catalog=CATALOG)
    assert [(a.model, a.count) for a in v5e.accelerators] == [("google-tpu-v5e", 8)]


def test_an_unknown_tpu_type_is_kept_with_a_tag_instead_of_guessing() -> None:
    node = {"name": "projects/p/locations/z/nodes/n", "acceleratorType": "v99-8"}
    inst = tpu_node_instance(node, project="p", catalog=CATALOG)
    assert inst.accelerators == () and inst.tags["accelerators-unknown"] == "v99-8"


def test_inventory_index_resolves_numeric_ids_names_ips_and_gke_clusters() -> None:
    items = _gke1_items()
    instances = [
        instance_from_compute(
            raw,
            project="gcpdiag-gke1-aaaa",
            zone="europe-west4-a",
            accelerators=guest_accelerators(raw, CATALOG),
        )
        for raw in items
    ]
    index = InventoryIndex.build(instances)
    gpu = index.by_numeric_id[("gcpdiag-gke1-aaaa", "8425029699468829252")]
    assert gpu.instance_id == "gke-gke6-default-pool-d8412db4-pb55"
    assert index.by_ip[("gcpdiag-gke1-aaaa", "34.141.239.85")] is gpu
    assert index.by_cluster[("gcpdiag-gke1-aaaa", "gke6")] == [gpu]
    assert [i.instance_id for i in index.gpu_instances("gcpdiag-gke1-aaaa")] == [gpu.instance_id]
    assert index.gpu_instances("other-project") == []
