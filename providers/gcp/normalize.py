"""Pure inventory normalisation: Compute ``Instance`` / TPU ``Node`` REST dicts -> GpuInstance.

Input dicts have the REST (camelCase) shape, whether recorded JSON or ``Message.to_dict`` of an
SDK object. ``InventoryIndex`` is what log normalisation resolves targets against: audit logs
name instances by numeric id, flow logs by VM name or IP, GKE exec logs by cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.errors import RecordError
from agent.models import Accelerator, EvidenceRef, GpuInstance
from providers.gcp.catalog import GcpMachineCatalog, short_name
from providers.gcp.entries import parse_timestamp

__all__ = [
    "InventoryIndex",
    "guest_accelerators",
    "instance_from_compute",
    "machine_type_accelerators",
    "scope_warning",
    "tpu_node_instance",
]

NETWORK_TAGS = "network-tags"
INSTANCE_ID_TAG = "gcp-instance-id"
GKE_CLUSTER_TAG = "gke-cluster"
_GKE_CLUSTER_LABELS = ("goog-k8s-cluster-name",)
_PROBLEM_WARNINGS = frozenset({"UNREACHABLE", "PARTIAL_SUCCESS"})


def _require_str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise RecordError(f"{what} has no {key!r}")
    return value


def _count(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{what} count {value!r} is not an integer") from exc
    if number < 0:
        raise RecordError(f"{what} count {number} is negative")
    return number


def guest_accelerators(
    instance: dict[str, Any], catalog: GcpMachineCatalog
) -> tuple[Accelerator, ...]:
    """Accelerators attached through ``guestAccelerators[]`` (N1 + T4/V100/P100/P4/L4...)."""
    out = []
    for item in instance.get("guestAccelerators") or ():
        if not isinstance(item, dict):
            raise RecordError("guestAccelerators[] entry is not an object")
        name = _require_str(item, "acceleratorType", "guestAccelerators[]")
        count = _count(item.get("acceleratorCount", 0), name)
        if count:
            out.append(catalog.accelerator(name, count))
    return tuple(out)


def machine_type_accelerators(
    machine_type: dict[str, Any], catalog: GcpMachineCatalog
) -> tuple[Accelerator, ...]:
    """Accelerators bundled with a machine type (``MachineType.accelerators[]``)."""
    out = []
    for item in machine_type.get("accelerators") or ():
        if not isinstance(item, dict):
            raise RecordError("machineType accelerators[] entry is not an object")
        name = _require_str(item, "guestAcceleratorType", "machineType accelerators[]")
        count = _count(item.get("guestAcceleratorCount", 0), name)
        if count:
            out.append(catalog.accelerator(name, count))
    return tuple(out)


def _obj(value: Any) -> dict[str, Any]:
    """``value`` when it is an object, else ``{}`` (a malformed part is skipped, not fatal)."""
    return value if isinstance(value, dict) else {}


def _seq(value: Any) -> list[Any]:
    """``value`` when it is a list, else ``[]``."""
    return value if isinstance(value, list) else []


def _metadata(instance: dict[str, Any]) -> dict[str, str]:
    items = _seq(_obj(instance.get("metadata")).get("items"))
    return {
        str(i.get("key")): str(i.get("value", ""))
        for i in items
        if isinstance(i, dict) and i.get("key")
    }


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(value)[0]
    except RecordError:
        return None


def instance_from_compute(
    instance: dict[str, Any],
    *,
    project: str,
    zone: str,
    accelerators: tuple[Accelerator, ...],
) -> GpuInstance:
    """One Compute Engine VM; ``instance_id`` is the NAME, the numeric id goes to tags."""
    if not isinstance(instance, dict):
        raise RecordError("instance is not an object")
    name = _require_str(instance, "name", "instance")
    zone = short_name(str(instance.get("zone") or zone))
    private, public, nics = [], [], []
    for nic in _seq(instance.get("networkInterfaces")):
        if not isinstance(nic, dict):
            continue
        if nic.get("name"):
            nics.append(str(nic["name"]))
        for key in ("networkIP", "ipv6Address"):
            if nic.get(key):
                private.append(str(nic[key]))
        for access in (*_seq(nic.get("accessConfigs")), *_seq(nic.get("ipv6AccessConfigs"))):
            if isinstance(access, dict):
                ext = access.get("natIP") or access.get("externalIpv6")
                if ext:
                    public.append(str(ext))
    tags: dict[str, str] = {f"label:{k}": str(v) for k, v in _obj(instance.get("labels")).items()}
    network_tags = _seq(_obj(instance.get("tags")).get("items"))
    if network_tags:
        tags[NETWORK_TAGS] = ",".join(str(t) for t in network_tags)
    if instance.get("id"):
        tags[INSTANCE_ID_TAG] = str(instance["id"])
    cluster = _gke_cluster(instance)
    if cluster:
        tags[GKE_CLUSTER_TAG] = cluster
    if _obj(instance.get("scheduling")).get("provisioningModel"):
        tags["provisioning-model"] = str(instance["scheduling"]["provisioningModel"])
    return GpuInstance(
        provider="gcp",
        account=project,
        region=zone,
        instance_id=name,
        instance_type=short_name(str(instance.get("machineType") or "")) or None,
        accelerators=accelerators,
        state=str(instance["status"]).lower() if instance.get("status") else None,
        name=name,
        private_ips=tuple(private),
        public_ips=tuple(public),
        network_interfaces=tuple(nics),
        tags=tags,
        launched_at=_timestamp(instance.get("lastStartTimestamp"))
        or _timestamp(instance.get("creationTimestamp")),
        evidence=EvidenceRef(
            kind="api",
            locator="compute:instances.aggregatedList",
            position=f"projects/{project}/zones/{zone}/instances/{name}",
            event_id=str(instance["id"]) if instance.get("id") else None,
        ),
    )


def _gke_cluster(instance: dict[str, Any]) -> str | None:
    labels = _obj(instance.get("labels"))
    for key in _GKE_CLUSTER_LABELS:
        if labels.get(key):
            return str(labels[key])
    if "goog-gke-node" in labels:
        return _metadata(instance).get("cluster-name") or None
    return None


def tpu_node_instance(
    node: dict[str, Any], *, project: str, catalog: GcpMachineCatalog
) -> GpuInstance:
    """One Cloud TPU VM node (``tpu.googleapis.com`` v2 ``Node``)."""
    if not isinstance(node, dict):
        raise RecordError("TPU node is not an object")
    full = _require_str(node, "name", "TPU node")
    parts = full.split("/")
    name = parts[-1]
    zone = parts[3] if len(parts) >= 6 and parts[2] == "locations" else None
    accel_type = str(node.get("acceleratorType") or "")
    topology = (node.get("acceleratorConfig") or {}).get("topology")
    accelerators = catalog.tpu_accelerators(accel_type, topology=topology) if accel_type else None
    private, public = [], []
    for endpoint in node.get("networkEndpoints") or ():
        if isinstance(endpoint, dict):
            if endpoint.get("ipAddress"):
                private.append(str(endpoint["ipAddress"]))
            ext = (endpoint.get("accessConfig") or {}).get("externalIp")
            if ext:
                public.append(str(ext))
    tags: dict[str, str] = {f"label:{k}": str(v) for k, v in (node.get("labels") or {}).items()}
    tags["tpu-node"] = "true"
    if node.get("tags"):
        tags[NETWORK_TAGS] = ",".join(str(t) for t in node["tags"])
    if node.get("id"):
        tags[INSTANCE_ID_TAG] = str(node["id"])
    if accelerators is None and accel_type:
        tags["accelerators-unknown"] = accel_type
    return GpuInstance(
        provider="gcp",
        account=project,
        region=zone,
        instance_id=name,
        instance_type=accel_type or None,
        accelerators=accelerators or (),
        state=str(node["state"]).lower() if node.get("state") else None,
        name=name,
        private_ips=tuple(private),
        public_ips=tuple(public),
        tags=tags,
        launched_at=_timestamp(node.get("createTime")),
        evidence=EvidenceRef(kind="api", locator="tpu:nodes.list", position=full),
    )


def scope_warning(scope: str, scoped: dict[str, Any]) -> str | None:
    """A problem message for an aggregatedList scope (``UNREACHABLE`` zone), else ``None``."""
    warning = scoped.get("warning") if isinstance(scoped, dict) else None
    if isinstance(warning, dict) and warning.get("code") in _PROBLEM_WARNINGS:
        return f"{scope}: {warning.get('code')}: {warning.get('message', '')}".rstrip(": ")
    return None


@dataclass
class InventoryIndex:
    """Lookups over one run's inventory, keyed by project."""

    by_name: dict[tuple[str, str], GpuInstance] = field(default_factory=dict)
    by_numeric_id: dict[tuple[str, str], GpuInstance] = field(default_factory=dict)
    by_ip: dict[tuple[str, str], GpuInstance] = field(default_factory=dict)
    by_cluster: dict[tuple[str, str], list[GpuInstance]] = field(default_factory=dict)

    @classmethod
    def build(cls, instances: Iterable[GpuInstance]) -> InventoryIndex:
        index = cls()
        for inst in instances:
            index.add(inst)
        return index

    def add(self, inst: GpuInstance) -> None:
        project = inst.account
        self.by_name[(project, inst.instance_id)] = inst
        numeric = inst.tags.get(INSTANCE_ID_TAG)
        if numeric:
            self.by_numeric_id[(project, numeric)] = inst
        for ip in (*inst.private_ips, *inst.public_ips):
            self.by_ip.setdefault((project, ip), inst)
        cluster = inst.tags.get(GKE_CLUSTER_TAG)
        if cluster:
            self.by_cluster.setdefault((project, cluster), []).append(inst)

    def gpu_instances(self, project: str) -> list[GpuInstance]:
        """Instances of ``project`` that carry accelerators."""
        return [i for (p, _), i in self.by_name.items() if p == project and i.has_accelerators]
