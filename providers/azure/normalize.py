"""Pure normalisation of ARM inventory JSON (VMs, scale-set VMs, NICs, public IPs, SKUs).

Azure resource ids compare case-insensitively, so every id leaving this module is lower-cased:
the pipeline joins sessions to instances by exact string match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.errors import RecordError
from agent.models import Accelerator, EvidenceRef, GpuInstance

__all__ = [
    "NicInfo",
    "as_mapping",
    "gpu_instance",
    "mac_key",
    "nic_ids_of",
    "nic_info",
    "parse_time",
    "public_ip_address",
    "resource_id",
    "sku_gpu_counts",
    "subscription_of",
    "vm_id_of",
    "vm_size_of",
]

_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_VM_ID = re.compile(
    r"^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.compute/"
    r"(?:virtualmachines/[^/]+|virtualmachinescalesets/[^/]+/virtualmachines/[^/]+))"
)


def resource_id(value: Any) -> str:
    """Canonical (lower-case, no trailing slash) form of an ARM resource id."""
    if not isinstance(value, str) or not value.strip().startswith("/"):
        raise RecordError(f"not an ARM resource id: {value!r}")
    return value.strip().rstrip("/").lower()


def subscription_of(value: str | None) -> str | None:
    """Subscription id (lower-case) named by a resource id, if any."""
    found = _SUBSCRIPTION.match(value or "")
    return found.group(1).lower() if found else None


def vm_id_of(value: str | None) -> str | None:
    """The VM (or scale-set VM) id that ``value`` is or sits under, lower-cased; else None."""
    if not value:
        return None
    found = _VM_ID.match(value.strip().lower())
    return found.group(1) if found else None


def as_mapping(value: Any) -> dict[str, Any]:
    """A dynamic Log Analytics column arrives as a dict or as JSON text; ``{}`` when empty."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def parse_time(value: Any, *, field: str) -> datetime:
    """ISO-8601 text (7-digit fractions, ``Z`` or offsets) or datetime -> aware UTC datetime."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise RecordError(f"{field}: not an ISO-8601 time: {value!r}") from exc
    else:
        raise RecordError(f"{field}: missing or not a time: {value!r}")
    try:
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min UTC
        raise RecordError(f"{field}: out of range: {value!r}") from exc


def mac_key(value: str | None) -> str | None:
    """``00-0D-3A-EF-1C-8C`` / ``000d3aef1c8c`` -> ``000D3AEF1C8C`` (flow logs use the latter)."""
    if not value:
        return None
    key = re.sub(r"[^0-9A-Fa-f]", "", value).upper()
    return key if len(key) == 12 else None


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    props = resource.get("properties") or {}
    if not isinstance(props, Mapping):
        raise RecordError("properties is not an object")
    return props


def vm_size_of(vm: Mapping[str, Any], *, fallback: str | None = None) -> str | None:
    """``properties.hardwareProfile.vmSize``; uniform scale-set VMs carry ``sku.name`` instead."""
    size = (_props(vm).get("hardwareProfile") or {}).get("vmSize")
    if not size:
        size = (vm.get("sku") or {}).get("name")
    return str(size) if size else fallback


def sku_gpu_counts(skus: list[Mapping[str, Any]]) -> dict[str, float]:
    """``{lower-case vmSize: GPUs}`` from Resource SKUs (0 when the capability is absent)."""
    counts: dict[str, float] = {}
    for sku in skus:
        if str(sku.get("resourceType", "")).lower() != "virtualmachines" or not sku.get("name"):
            continue
        capabilities = {
            str(c.get("name", "")).lower(): c.get("value") for c in sku.get("capabilities") or ()
        }
        try:
            gpus = float(capabilities.get("gpus") or 0)
        except (TypeError, ValueError):
            gpus = 0.0
        counts[str(sku["name"]).lower()] = gpus
    return counts


@dataclass(frozen=True)
class NicInfo:
    """What flow-log matching needs from one network interface."""

    id: str
    mac: str | None
    private_ips: tuple[str, ...]
    public_ip_ids: tuple[str, ...]
    public_ips: tuple[str, ...]


def nic_info(nic: Mapping[str, Any]) -> NicInfo:
    """Private IPs, MAC and public IP references (or inline addresses) of a NIC."""
    if not isinstance(nic, Mapping) or not nic.get("id"):
        raise RecordError("network interface without id")
    props = _props(nic)
    private: list[str] = []
    pip_ids: list[str] = []
    pips: list[str] = []
    for config in props.get("ipConfigurations") or ():
        cprops = (config or {}).get("properties") or {}
        if cprops.get("privateIPAddress"):
            private.append(str(cprops["privateIPAddress"]))
        pip = cprops.get("publicIPAddress") or {}
        address = (pip.get("properties") or {}).get("ipAddress")
        if address:
            pips.append(str(address))
        elif pip.get("id"):
            pip_ids.append(resource_id(pip["id"]))
    return NicInfo(
        id=resource_id(nic["id"]),
        mac=mac_key(props.get("macAddress")),
        private_ips=tuple(private),
        public_ip_ids=tuple(pip_ids),
        public_ips=tuple(pips),
    )


def public_ip_address(pip: Mapping[str, Any]) -> str | None:
    """``properties.ipAddress`` of a public IP resource (None while unallocated)."""
    address = _props(pip).get("ipAddress")
    return str(address) if address else None


def nic_ids_of(vm: Mapping[str, Any]) -> tuple[str, ...]:
    """Network interface ids referenced by ``properties.networkProfile``."""
    profile = _props(vm).get("networkProfile") or {}
    return tuple(
        resource_id(nic["id"]) for nic in profile.get("networkInterfaces") or () if nic.get("id")
    )


def gpu_instance(
    vm: Mapping[str, Any],
    *,
    subscription_id: str,
    vm_size: str | None,
    accelerators: tuple[Accelerator, ...],
    extra_tags: Mapping[str, str] | None = None,
    private_ips: tuple[str, ...] = (),
    public_ips: tuple[str, ...] = (),
    evidence: EvidenceRef | None = None,
) -> GpuInstance:
    """A VM or scale-set VM JSON object -> GpuInstance (ids lower-cased)."""
    if not isinstance(vm, Mapping):
        raise RecordError(f"VM entry is not an object: {type(vm).__name__}")
    vm_id = resource_id(vm.get("id"))
    props = _props(vm)
    tags = {str(k): str(v) for k, v in (vm.get("tags") or {}).items()}
    tags.update(extra_tags or {})
    created = props.get("timeCreated")
    name = vm.get("name") or (props.get("osProfile") or {}).get("computerName")
    return GpuInstance(
        provider="azure",
        account=subscription_of(vm_id) or subscription_id.lower(),
        region=str(vm["location"]).lower() if vm.get("location") else None,
        instance_id=vm_id,
        instance_type=vm_size,
        accelerators=accelerators,
        state=props.get("provisioningState"),
        name=str(name) if name else None,
        private_ips=private_ips,
        public_ips=public_ips,
        network_interfaces=nic_ids_of(vm),
        tags=tags,
        launched_at=parse_time(created, field="properties.timeCreated") if created else None,
        evidence=evidence,
    )
