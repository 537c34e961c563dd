"""Inventory: subscriptions -> VMs and scale-set VMs with accelerators and NIC addresses.

Accelerators come from the bundled size catalog, cross-checked against the Resource SKUs
``GPUs`` capability (fetched once per region). NICs and public IPs are read for GPU VMs only:
they exist to attribute flow-log tuples (by MAC, else by private IP) to a GPU VM.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from agent.contracts import CollectContext
from agent.errors import RecordError, SourceError
from agent.models import Accelerator, EvidenceRef, GpuInstance, ScopeError
from providers.azure.catalog import AzureSizeCatalog
from providers.azure.client import AzureClient
from providers.azure.normalize import (
    gpu_instance,
    nic_info,
    public_ip_address,
    resource_id,
    sku_gpu_counts,
    vm_size_of,
)

__all__ = [
    "TAG_GPU_COUNT",
    "TAG_SKU_GPUS",
    "TAG_UNKNOWN_SIZE",
    "UNKNOWN_GPU",
    "InventoryCollector",
    "InventoryIndex",
    "Resolution",
    "resolve_accelerators",
    "scope_error_from",
]

log = structlog.get_logger(__name__)

UNKNOWN_GPU = "unknown-gpu"
TAG_UNKNOWN_SIZE = "chipwarden:unknown-size"
TAG_SKU_GPUS = "chipwarden:sku-gpus"
TAG_GPU_COUNT = "chipwarden:gpu-count"


@dataclass(frozen=True)
class Resolution:
    """Accelerators of one vmSize plus the tags that flag doubts about them."""

    accelerators: tuple[Accelerator, ...]
    tags: dict[str, str] = field(default_factory=dict)


def resolve_accelerators(
    vm_size: str | None, *, catalog: AzureSizeCatalog, sku_gpus: float | None
) -> Resolution:
    """Catalog first; the SKU ``GPUs`` count (None = not known) checks it or fills unknowns."""
    if not vm_size:
        return Resolution(())
    entry = catalog.lookup(vm_size)
    if entry is not None:
        tags: dict[str, str] = {}
        fractional_reported_as_one = entry.count < 1 and sku_gpus == 1
        if sku_gpus is not None and sku_gpus != entry.count and not fractional_reported_as_one:
            tags[TAG_SKU_GPUS] = f"{sku_gpus:g}"
            log.warning(
                "azure_gpu_count_mismatch", vm_size=vm_size, catalog=entry.count, sku=sku_gpus
            )
        return Resolution((entry.accelerator(),), tags)
    if sku_gpus is not None and sku_gpus > 0:
        log.warning("azure_unknown_gpu_size", vm_size=vm_size, sku_gpus=sku_gpus)
        return Resolution(
            (Accelerator(model=UNKNOWN_GPU, count=sku_gpus, source_name=vm_size),),
            {TAG_UNKNOWN_SIZE: vm_size},
        )
    if sku_gpus is None and catalog.is_gpu_family(vm_size):
        log.warning("azure_unknown_gpu_size", vm_size=vm_size, sku_gpus=None)
        return Resolution(
            (Accelerator(model=UNKNOWN_GPU, count=1, source_name=vm_size),),
            {TAG_UNKNOWN_SIZE: vm_size, TAG_GPU_COUNT: "unknown"},
        )
    return Resolution(())


def scope_error_from(exc: SourceError, *, source: str, scope: str) -> ScopeError:
    """A SourceError as the run-level ScopeError record."""
    return ScopeError(
        source=source,
        scope=scope,
        code=exc.code,
        message=exc.message,
        remediation=exc.hint,
        permission=getattr(exc, "permission", None),
    )


@dataclass
class InventoryIndex:
    """Instances plus the MAC / private-IP maps used to attribute flow tuples."""

    instances: list[GpuInstance] = field(default_factory=list)
    by_mac: dict[str, str] = field(default_factory=dict)
    by_ip: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    incomplete: set[str] = field(default_factory=set)
    """Scopes whose VMs could not be listed: their flow tuples cannot be attributed, so flow
    checkpoints must not move past them."""

    def by_id(self) -> dict[str, GpuInstance]:
        return {i.instance_id: i for i in self.instances}


class InventoryCollector:
    """Reads one or more subscriptions; every failure is a ScopeError, never an empty success."""

    def __init__(self, *, client: AzureClient, catalog: AzureSizeCatalog, source: str) -> None:
        self.client = client
        self.catalog = catalog
        self.source = source
        self._skus: dict[str, dict[str, float]] = {}
        self._reported: set[tuple[str, str]] = set()
        self._unlisted = False  # the subscription list itself failed

    def _fail(self, ctx: CollectContext, exc: SourceError, *, scope: str) -> None:
        key = (scope, getattr(exc, "permission", None) or exc.code)
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning("azure_scope_failed", scope=scope, code=exc.code, error=exc.message)
        ctx.scope_error(scope_error_from(exc, source=self.source, scope=scope))

    def subscriptions(self, ctx: CollectContext, configured: list[str] | None) -> list[str]:
        """The configured ids, else every Enabled subscription the credential can list."""
        if configured is not None:
            return list(configured)
        try:
            found = [
                str(s["subscriptionId"]).lower()
                for s in self.client.subscriptions()
                if str(s.get("state", "")).lower() == "enabled" and s.get("subscriptionId")
            ]
        except SourceError as exc:
            self._fail(ctx, exc, scope="subscriptions")
            self._unlisted = True
            return []
        log.info("azure_subscriptions_listed", count=len(found))
        return found

    def collect(self, ctx: CollectContext, subscriptions: Iterable[str]) -> InventoryIndex:
        index = InventoryIndex()
        if self._unlisted:
            index.incomplete.add("subscriptions")
        seen: set[str] = set()
        for sub in subscriptions:
            scope = f"subscriptions/{sub}"
            try:
                vms: list[tuple[Any, str | None]] = [
                    (vm, None) for vm in self.client.virtual_machines(sub)
                ]
            except SourceError as exc:
                self._fail(ctx, exc, scope=scope)
                index.incomplete.add(scope)
                continue
            scale_set_vms, complete = self._scale_set_vms(ctx, sub)
            if not complete:
                index.incomplete.add(scope)
            vms += scale_set_vms
            before = len(index.instances)
            for position, (vm, fallback_size) in enumerate(vms):
                self._add(ctx, index, seen, sub, position, vm, fallback_size)
            log.info(
                "azure_inventory_subscription",
                subscription=sub,
                vms=len(vms),
                gpu_vms=sum(1 for i in index.instances[before:] if i.has_accelerators),
            )
        return index

    def _scale_set_vms(
        self, ctx: CollectContext, sub: str
    ) -> tuple[list[tuple[Any, str | None]], bool]:
        """Scale-set VMs with their scale set's size, and whether every one could be listed."""
        out: list[tuple[Any, str | None]] = []
        complete = True
        try:
            scale_sets = list(self.client.scale_sets(sub))
        except SourceError as exc:
            self._fail(ctx, exc, scope=f"subscriptions/{sub}")
            return out, False
        for vmss in scale_sets:
            try:
                parts = resource_id(vmss.get("id")).split("/")
                group, name = parts[4], parts[8]
                sku = (vmss.get("sku") or {}).get("name")
                out += [(vm, sku) for vm in self.client.scale_set_vms(sub, group, name)]
            except (RecordError, IndexError) as exc:
                ctx.quarantine(
                    source=self.source,
                    locator=f"arm:subscriptions/{sub}/virtualMachineScaleSets",
                    position=str(vmss.get("id") or vmss.get("name")),
                    reason=f"scale set without a usable id: {exc}",
                )
            except SourceError as exc:
                self._fail(ctx, exc, scope=f"subscriptions/{sub}")
                complete = False
        return out, complete

    def _sku_gpus(self, ctx: CollectContext, sub: str, location: str, size: str) -> float | None:
        if location not in self._skus:
            try:
                self._skus[location] = sku_gpu_counts(
                    list(self.client.resource_skus(sub, location))
                )
            except SourceError as exc:
                self._fail(ctx, exc, scope=f"subscriptions/{sub}")
                return None
        return self._skus[location].get(size.lower())

    def _add(
        self,
        ctx: CollectContext,
        index: InventoryIndex,
        seen: set[str],
        sub: str,
        position: int,
        vm: Mapping[str, Any],
        fallback_size: str | None,
    ) -> None:
        locator = f"arm:subscriptions/{sub}/virtualMachines"
        try:
            vm_id = resource_id(vm.get("id"))
            if vm_id in seen:  # flexible scale-set VMs show up in both listings
                return
            size = vm_size_of(vm, fallback=fallback_size)
            location = str(vm.get("location") or "").lower()
            sku_gpus = None
            if (
                size
                and location
                and (self.catalog.is_gpu_family(size) or self.catalog.lookup(size))
            ):
                sku_gpus = self._sku_gpus(ctx, sub, location, size)
            found = resolve_accelerators(size, catalog=self.catalog, sku_gpus=sku_gpus)
            evidence = EvidenceRef(kind="api", locator=locator, position=vm_id)
            instance = gpu_instance(
                vm,
                subscription_id=sub,
                vm_size=size,
                accelerators=found.accelerators,
                extra_tags=found.tags,
                evidence=evidence,
            )
        except RecordError as exc:
            ctx.quarantine(
                source=self.source, locator=locator, position=f"item {position}", reason=exc.message
            )
            return
        seen.add(vm_id)
        if instance.has_accelerators:
            instance = self._with_addresses(ctx, index, sub, instance)
        index.instances.append(instance)

    def _with_addresses(
        self, ctx: CollectContext, index: InventoryIndex, sub: str, instance: GpuInstance
    ) -> GpuInstance:
        private: list[str] = []
        public: list[str] = []
        for nic_id in instance.network_interfaces:
            try:
                nic = nic_info(
                    self.client.get_resource(
                        nic_id, action="Microsoft.Network/networkInterfaces/read"
                    )
                )
            except RecordError as exc:
                ctx.quarantine(
                    source=self.source,
                    locator="arm:networkInterfaces",
                    position=nic_id,
                    reason=exc.message,
                )
                continue
            except SourceError as exc:
                self._fail(ctx, exc, scope=f"subscriptions/{sub}")
                continue
            private += nic.private_ips
            public += nic.public_ips
            if nic.mac:
                index.by_mac[nic.mac] = instance.instance_id
            for ip in nic.private_ips:
                index.by_ip[ip].add(instance.instance_id)
            for pip_id in nic.public_ip_ids:
                try:
                    pip = self.client.get_resource(
                        pip_id, action="Microsoft.Network/publicIPAddresses/read"
                    )
                    address = public_ip_address(pip)
                except RecordError as exc:
                    ctx.quarantine(
                        source=self.source,
                        locator="arm:publicIPAddresses",
                        position=pip_id,
                        reason=exc.message,
                    )
                    continue
                except SourceError as exc:
                    self._fail(ctx, exc, scope=f"subscriptions/{sub}")
                    continue
                if address:
                    public.append(address)
        return instance.model_copy(
            update={"private_ips": tuple(private), "public_ips": tuple(public)}
        )
