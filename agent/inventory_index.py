"""Resolve a session's target to an inventory instance (by id, then by private IP)."""

from __future__ import annotations

from collections.abc import Iterable

from agent.models import GpuInstance, Session

__all__ = ["InventoryIndex"]

_IP_ATTRIBUTES = ("privateIpAddress", "target_ip", "targetVMIPAddress", "dest_ip")


class InventoryIndex:
    """Instances keyed by (provider, account, id), by (provider, id), and by private IP.

    Later sources override earlier ones for the same key, so a live provider's view of an
    instance wins over a static CSV row listed before it.
    """

    def __init__(self, instances: Iterable[GpuInstance] = ()) -> None:
        self._by_full: dict[tuple[str, str, str], GpuInstance] = {}
        self._by_id: dict[tuple[str, str], GpuInstance] = {}
        self._by_ip: dict[tuple[str, str], GpuInstance] = {}
        self._gpu_accounts: set[tuple[str, str]] = set()
        self._accounts: set[tuple[str, str]] = set()
        for inst in instances:
            self.add(inst)

    def add(self, inst: GpuInstance) -> None:
        self._by_full[(inst.provider, inst.account, inst.instance_id)] = inst
        self._by_id[(inst.provider, inst.instance_id)] = inst
        for ip in inst.private_ips:
            self._by_ip[(inst.provider, ip)] = inst
        self._accounts.add((inst.provider, inst.account))
        if inst.has_accelerators:
            self._gpu_accounts.add((inst.provider, inst.account))

    def __len__(self) -> int:
        return len(self._by_full)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_full.values())

    def resolve(self, session: Session) -> GpuInstance | None:
        """The instance a session targets, or ``None`` if the inventory does not know it."""
        if session.instance_id:
            if session.account:
                hit = self._by_full.get((session.provider, session.account, session.instance_id))
                if hit:
                    return hit
            return self._by_id.get((session.provider, session.instance_id))
        for attr in _IP_ATTRIBUTES:
            ip = session.attributes.get(attr)
            if ip:
                hit = self._by_ip.get((session.provider, ip))
                if hit and (not session.account or hit.account == session.account):
                    return hit
        return None

    def account_has_gpus(self, provider: str, account: str | None) -> bool | None:
        """True/False when the inventory covers the account, ``None`` when it does not."""
        if account is None or (provider, account) not in self._accounts:
            return None
        return (provider, account) in self._gpu_accounts
