"""Pure mapping of Kubernetes API objects (v1 Node, v1 Pod as JSON dicts) to inventory models.

No SDK here: the client hands over the wire JSON, so these functions are tested from recorded
``kubectl get -o json`` shaped files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent.contracts import InstanceTypeCatalog
from agent.errors import RecordError
from agent.models import Accelerator, EvidenceRef, Frozen, GpuInstance
from providers.kubernetes.labels import LabelCatalog

__all__ = [
    "GPU_RESOURCES",
    "PodPlacement",
    "accelerators_for_node",
    "cloud_of",
    "gpu_capacity",
    "instance_from_node",
    "instance_type_of",
    "pod_placement",
]

NVIDIA_GPU = "nvidia.com/gpu"
AMD_GPU = "amd.com/gpu"
GOOGLE_TPU = "google.com/tpu"
NEURON = ("aws.amazon.com/neuron", "aws.amazon.com/neurondevice")
NEURON_CORE = "aws.amazon.com/neuroncore"
GPU_RESOURCES = (NVIDIA_GPU, AMD_GPU, GOOGLE_TPU, *NEURON, NEURON_CORE)
"""Extended resource names that mean "this container/node has an accelerator"."""

_MIG_RESOURCE = re.compile(r"^nvidia\.com/mig-")
_CLOUD_PREFIX = {"aws": "aws", "gce": "gcp", "azure": "azure"}
_NOISY_LABEL_PREFIXES = ("feature.node.kubernetes.io/",)


class PodPlacement(Frozen):
    """Where a GPU-requesting pod runs: ``(namespace, name) -> node`` plus what it asked for."""

    namespace: str
    name: str
    node: str
    gpu_requests: dict[str, float]


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _quantity(value: Any) -> float | None:
    """Kubernetes quantity for a countable resource ("8", 8, "1k"); None when unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(k|M|G)?\s*", value)
    if not match:
        return None
    factor = {"k": 1e3, "M": 1e6, "G": 1e9}.get(match.group(2) or "", 1.0)
    return float(match.group(1)) * factor


def _is_gpu_resource(name: str) -> bool:
    return name in GPU_RESOURCES or bool(_MIG_RESOURCE.match(name))


def gpu_capacity(node: Mapping[str, Any]) -> dict[str, float]:
    """Accelerator resources in ``status.capacity`` (``allocatable`` if capacity is absent)."""
    status = node.get("status") or {}
    raw = status.get("capacity") or status.get("allocatable") or {}
    out: dict[str, float] = {}
    for name, value in raw.items() if isinstance(raw, Mapping) else ():
        qty = _quantity(value)
        if _is_gpu_resource(str(name)) and qty is not None and qty > 0:
            out[str(name)] = qty
    return out


def cloud_of(provider_id: str | None) -> str | None:
    """``aws:///us-east-1a/i-0ab`` -> ``aws``; ``gce://`` -> ``gcp``; ``azure://`` -> ``azure``."""
    if not provider_id or "://" not in provider_id:
        return None
    return _CLOUD_PREFIX.get(provider_id.split("://", 1)[0].lower())


def instance_type_of(node: Mapping[str, Any]) -> str | None:
    """``node.kubernetes.io/instance-type`` (or the deprecated beta label)."""
    labels = _labels(node)
    return labels.get("node.kubernetes.io/instance-type") or labels.get(
        "beta.kubernetes.io/instance-type"
    )


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    value = labels.get(key, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _pick(accs: tuple[Accelerator, ...] | None, prefix: str) -> Accelerator | None:
    for acc in accs or ():
        if acc.model.startswith(prefix) or (acc.vendor or "").lower().startswith(prefix[:-1]):
            return acc
    return None


def _nvidia(
    caps: Mapping[str, float],
    labels: Mapping[str, str],
    table: LabelCatalog,
    typed: tuple[Accelerator, ...] | None,
) -> Accelerator | None:
    product = labels.get("nvidia.com/gpu.product")
    gke = labels.get("cloud.google.com/gke-accelerator")
    mig = sum(v for k, v in caps.items() if _MIG_RESOURCE.match(k))
    if not (caps.get(NVIDIA_GPU) or mig or product or gke):
        return None
    from_type = _pick(typed, "nvidia-")
    if product:
        match = table.nvidia_product(product)
        model, source = match.model, match.source_name
    elif gke:
        match = table.gke_accelerator(gke)
        model, source = match.model, match.source_name
    elif from_type is not None:
        model, source = from_type.model, from_type.source_name or from_type.model
    else:
        model, source = "nvidia-unknown", NVIDIA_GPU
    replicas = _int_label(labels, "nvidia.com/gpu.replicas") or 1
    plugin = caps.get(NVIDIA_GPU, 0.0) / replicas
    count = (
        (from_type.count if from_type is not None else None)
        or _int_label(labels, "nvidia.com/gpu.count")
        or _int_label(labels, "cloud.google.com/gke-accelerator-count")
        or (math.ceil(plugin) if plugin else None)
    )
    if not count:
        return None
    memory = _int_label(labels, "nvidia.com/gpu.memory")
    if memory is None and from_type is not None:
        memory = from_type.memory_mib
    return Accelerator(
        model=model, count=float(count), source_name=source, vendor="nvidia", memory_mib=memory
    )


def _amd(
    caps: Mapping[str, float],
    labels: Mapping[str, str],
    table: LabelCatalog,
    typed: tuple[Accelerator, ...] | None,
) -> Accelerator | None:
    product = labels.get("amd.com/gpu.product-name") or labels.get("beta.amd.com/gpu.product-name")
    device = labels.get("amd.com/gpu.device-id") or labels.get("beta.amd.com/gpu.device-id")
    if not caps.get(AMD_GPU):
        return None
    from_type = _pick(typed, "amd-")
    if product or device:
        match = table.amd_product(product=product, device_id=device)
        model, source = match.model, match.source_name
    elif from_type is not None:
        model, source = from_type.model, from_type.source_name or from_type.model
    else:
        model, source = "amd-unknown", AMD_GPU
    count = from_type.count if from_type is not None else caps[AMD_GPU]
    return Accelerator(model=model, count=float(count), source_name=source, vendor="amd")


def _tpu(
    caps: Mapping[str, float], labels: Mapping[str, str], table: LabelCatalog
) -> Accelerator | None:
    if not caps.get(GOOGLE_TPU):
        return None
    value = labels.get("cloud.google.com/gke-tpu-accelerator")
    match = table.gke_tpu(value) if value else None
    return Accelerator(
        model=match.model if match else "google-tpu-unknown",
        count=caps[GOOGLE_TPU],
        source_name=match.source_name if match else GOOGLE_TPU,
        vendor="google",
    )


def _neuron(caps: Mapping[str, float], typed: tuple[Accelerator, ...] | None) -> Accelerator | None:
    devices = next((caps[r] for r in NEURON if caps.get(r)), None)
    cores = caps.get(NEURON_CORE)
    if not (devices or cores):
        return None
    from_type = _pick(typed, "aws-")
    if from_type is not None:
        return from_type
    count = devices or cores or 0.0
    name = next((r for r in NEURON if caps.get(r)), NEURON_CORE)
    return Accelerator(model="aws-neuron-unknown", count=count, source_name=name, vendor="aws")


def accelerators_for_node(
    node: Mapping[str, Any], *, table: LabelCatalog, catalog: InstanceTypeCatalog | None
) -> tuple[tuple[Accelerator, ...], str]:
    """Accelerators of a node and what they were derived from.

    Device-plugin capacity and vendor labels name the chip; the provider's instance-type catalog
    (when the node runs in a known cloud) gives the physical count and fills unknown models.
    Returns ``(accelerators, basis)``, basis ``node-resources`` (capacity/labels) |
    ``instance-type`` | ``none``.
    """
    caps = gpu_capacity(node)
    labels = _labels(node)
    itype = instance_type_of(node)
    typed = catalog.accelerators(itype) if catalog is not None and itype else None
    found = [
        acc
        for acc in (
            _nvidia(caps, labels, table, typed),
            _amd(caps, labels, table, typed),
            _tpu(caps, labels, table),
            _neuron(caps, typed),
        )
        if acc is not None
    ]
    if found:
        return tuple(found), "node-resources"
    if typed:
        return tuple(typed), "instance-type"
    return (), "none"


def _state(node: Mapping[str, Any]) -> str:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )
    if ready is None:
        return "unknown"
    return "ready" if ready.get("status") == "True" else "not-ready"


def _created(meta: Mapping[str, Any]) -> datetime | None:
    value = meta.get("creationTimestamp")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def instance_from_node(
    node: Mapping[str, Any],
    *,
    cluster: str,
    accelerators: tuple[Accelerator, ...],
    basis: str = "node-resources",
    locator: str = "kubernetes:core/v1/nodes",
) -> GpuInstance:
    """A v1 Node as a GpuInstance (instance_id = node name, account = cluster name)."""
    if not isinstance(node, Mapping):
        raise RecordError(f"node is a {type(node).__name__}, not an object")
    meta = node.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise RecordError("node has no metadata.name")
    labels = _labels(node)
    spec = node.get("spec") or {}
    addresses = (node.get("status") or {}).get("addresses") or []

    def addrs(kind: str) -> tuple[str, ...]:
        return tuple(
            str(a["address"])
            for a in addresses
            if isinstance(a, Mapping) and a.get("type") == kind and a.get("address")
        )

    tags = {k: v for k, v in labels.items() if not k.startswith(_NOISY_LABEL_PREFIXES)}
    if spec.get("providerID"):
        tags["providerID"] = str(spec["providerID"])
    if spec.get("unschedulable"):
        tags["unschedulable"] = "true"
    tags["chipwarden/accelerator_basis"] = basis
    return GpuInstance(
        provider="kubernetes",
        account=cluster,
        region=labels.get("topology.kubernetes.io/region")
        or labels.get("failure-domain.beta.kubernetes.io/region"),
        instance_id=name,
        instance_type=instance_type_of(node),
        accelerators=accelerators,
        state=_state(node),
        name=name,
        private_ips=addrs("InternalIP"),
        public_ips=addrs("ExternalIP"),
        tags=tags,
        launched_at=_created(meta),
        evidence=EvidenceRef(
            kind="api", locator=locator, position=name, event_id=meta.get("uid") or None
        ),
    )


def _requests(container: Mapping[str, Any]) -> dict[str, float]:
    resources = container.get("resources") or {}
    out: dict[str, float] = {}
    for section in ("limits", "requests"):
        for name, value in (resources.get(section) or {}).items():
            qty = _quantity(value)
            if _is_gpu_resource(str(name)) and qty:
                out[str(name)] = max(out.get(str(name), 0.0), qty)
    return out


def pod_placement(pod: Mapping[str, Any]) -> PodPlacement | None:
    """The pod's node when it requests accelerators and is scheduled; else None."""
    if not isinstance(pod, Mapping):
        raise RecordError(f"pod is a {type(pod).__name__}, not an object")
    meta = pod.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise RecordError("pod has no metadata.namespace/metadata.name")
    spec = pod.get("spec") or {}
    totals: dict[str, float] = {}
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, Mapping):
                for res, qty in _requests(container).items():
                    totals[res] = totals.get(res, 0.0) + qty
    node = spec.get("nodeName")
    if not totals or not isinstance(node, str) or not node:
        return None
    return PodPlacement(namespace=namespace, name=name, node=node, gpu_requests=totals)
