"""Pure conversion of EC2 API shapes (InstanceTypeInfo, DescribeInstances items) to models.

Accelerator names are mapped to the canonical chip ids used by ``policies/data``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agent.errors import RecordError
from agent.models import Accelerator, EvidenceRef, GpuInstance, ensure_utc
from providers.aws.fields import mapping_field, scalar, text_field

__all__ = ["PROVIDER", "accelerators_from_type_info", "canonical_model", "instance_from_ec2"]

PROVIDER = "aws"

# --------------------------------------------------------------------------- accelerators

# DescribeInstanceTypes accelerator Name -> canonical chip id used by policies/data (the
# moto 5.2.x snapshot of the real API, see reference/domain.md section 4.1).
_CANONICAL_MODELS: dict[str, str] = {
    "H100": "nvidia-h100",
    "H200": "nvidia-h200",
    "A100": "nvidia-a100",
    "A10G": "nvidia-a10g",
    "L4": "nvidia-l4",
    "L40S": "nvidia-l40s",
    "T4": "nvidia-t4",
    "T4g": "nvidia-t4g",
    "V100": "nvidia-v100",
    "B200": "nvidia-b200",
    "B300": "nvidia-b300",
    "RTX PRO Server 6000": "nvidia-rtx-pro-6000",
    "Radeon Pro V520": "amd-radeon-pro-v520",
    "Trainium": "aws-trainium",
    "Trainium2": "aws-trainium2",
    "Inferentia": "aws-inferentia",
    "Inferentia2": "aws-inferentia2",
    "Gaudi HL-205": "habana-gaudi",
    "Qualcomm AI100": "qualcomm-ai100",
}
_CANONICAL_FOLDED = {k.casefold(): v for k, v in _CANONICAL_MODELS.items()}
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    return _SLUG_RE.sub("-", text.casefold()).strip("-")


def canonical_model(name: str, manufacturer: str | None = None) -> str:
    """Catalog id for an API accelerator name (``H100`` -> ``nvidia-h100``).

    Unknown names become ``<manufacturer>-<name>`` slugs (``M60`` -> ``nvidia-m60``).
    """
    known = _CANONICAL_FOLDED.get(name.strip().casefold())
    if known:
        return known
    name_slug = _slug(name)
    vendor_slug = _slug(manufacturer or "")
    if not vendor_slug or name_slug.startswith(vendor_slug + "-") or name_slug == vendor_slug:
        return name_slug or "unknown"
    return f"{vendor_slug}-{name_slug}"


def _device_list(info: Mapping[str, Any], section: str, key: str) -> list[Mapping[str, Any]]:
    block = info.get(section)
    if block is None:
        return []
    if not isinstance(block, Mapping):
        raise RecordError(f"{section} must be an object, got {type(block).__name__}")
    devices = block.get(key) or []
    if not isinstance(devices, list) or not all(isinstance(d, Mapping) for d in devices):
        raise RecordError(f"{section}.{key} must be a list of objects")
    return devices


def _number(device: Mapping[str, Any], key: str, where: str) -> float | None:
    value = device.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}.{key} must be a number, got {value!r}")
    return float(value)


def _accelerator(device: Mapping[str, Any], where: str, vendor: str | None) -> Accelerator:
    name = device.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise RecordError(f"{where}.Name is missing or not a string")
    manufacturer = device.get("Manufacturer")
    vendor = manufacturer if isinstance(manufacturer, str) and manufacturer else vendor
    count = _number(device, "Count", where) or 0.0
    if count == 0:  # fractional GPUs (g6f): Count 0, LogicalGpuCount x GpuPartitionSize
        logical = _number(device, "LogicalGpuCount", where)
        partition = _number(device, "GpuPartitionSize", where)
        if logical is not None and partition is not None:
            count = logical * partition
    memory = device.get("MemoryInfo")
    size = memory.get("SizeInMiB") if isinstance(memory, Mapping) else None
    return Accelerator(
        model=canonical_model(name, vendor),
        count=count,
        source_name=name,
        vendor=vendor,
        memory_mib=int(size) if isinstance(size, int | float) and size > 0 else None,
    )


def accelerators_from_type_info(info: Mapping[str, Any]) -> tuple[Accelerator, ...]:
    """Accelerators of one ``InstanceTypeInfo`` (GpuInfo, NeuronInfo, InferenceAcceleratorInfo).

    Inferentia appears in both NeuronInfo and InferenceAcceleratorInfo; it is counted once.
    """
    if not isinstance(info, Mapping):
        raise RecordError(f"InstanceTypeInfo must be an object, got {type(info).__name__}")
    out: list[Accelerator] = []
    for i, dev in enumerate(_device_list(info, "GpuInfo", "Gpus")):
        out.append(_accelerator(dev, f"GpuInfo.Gpus[{i}]", None))
    for i, dev in enumerate(_device_list(info, "NeuronInfo", "NeuronDevices")):
        out.append(_accelerator(dev, f"NeuronInfo.NeuronDevices[{i}]", "AWS"))
    seen = {a.model for a in out}
    for i, dev in enumerate(_device_list(info, "InferenceAcceleratorInfo", "Accelerators")):
        acc = _accelerator(dev, f"InferenceAcceleratorInfo.Accelerators[{i}]", None)
        if acc.model not in seen:
            out.append(acc)
    return tuple(out)


# --------------------------------------------------------------------------- EC2 inventory


def _tags(raw: Any) -> dict[str, str]:
    if not isinstance(raw, list):
        return {}
    return {
        str(t["Key"]): str(t.get("Value", ""))
        for t in raw
        if isinstance(t, Mapping) and t.get("Key") is not None
    }


def _launch_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, str):
        try:
            return ensure_utc(datetime.fromisoformat(value))
        except ValueError as exc:
            raise RecordError(f"LaunchTime {value!r} is not an ISO-8601 timestamp") from exc
    raise RecordError(f"LaunchTime must be a datetime or string, got {type(value).__name__}")


def _unique(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def _addresses(
    instance: Mapping[str, Any],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    enis = [n for n in instance.get("NetworkInterfaces") or [] if isinstance(n, Mapping)]
    private = [instance.get("PrivateIpAddress")]
    public = [instance.get("PublicIpAddress"), instance.get("Ipv6Address")]
    for eni in enis:
        public.append(mapping_field(eni, "Association").get("PublicIp"))
        for addr in eni.get("PrivateIpAddresses") or []:
            if isinstance(addr, Mapping):
                private.append(addr.get("PrivateIpAddress"))
                public.append(mapping_field(addr, "Association").get("PublicIp"))
        # EC2 IPv6 addresses are globally routable, so they count as public.
        public.extend(
            a.get("Ipv6Address") for a in eni.get("Ipv6Addresses") or [] if isinstance(a, Mapping)
        )
    return _unique(private), _unique(public), _unique(n.get("NetworkInterfaceId") for n in enis)


def instance_from_ec2(
    instance: Mapping[str, Any],
    *,
    account: str,
    region: str,
    accelerators: Sequence[Accelerator] | None,
    evidence: EvidenceRef | None = None,
) -> GpuInstance:
    """One DescribeInstances ``Instances[]`` item -> ``GpuInstance`` (with or without GPUs)."""
    if not isinstance(instance, Mapping):
        raise RecordError(f"instance must be an object, got {type(instance).__name__}")
    instance_id = text_field(instance, "InstanceId")
    if instance_id is None:
        raise RecordError("InstanceId is missing")
    tags = _tags(instance.get("Tags"))
    private, public, enis = _addresses(instance)
    return GpuInstance(
        provider=PROVIDER,
        account=account,
        region=region,
        instance_id=instance_id,
        instance_type=text_field(instance, "InstanceType"),
        accelerators=tuple(accelerators or ()),
        state=scalar(mapping_field(instance, "State").get("Name")),
        name=tags.get("Name"),
        private_ips=private,
        public_ips=public,
        network_interfaces=enis,
        tags=tags,
        launched_at=_launch_time(instance.get("LaunchTime")),
        evidence=evidence
        or EvidenceRef(
            kind="api",
            locator="ec2:DescribeInstances",
            position=f"{account}/{region}",
            event_id=instance_id,
        ),
    )
