"""Is IAP's Data Access audit log on? Pure decision from IAM audit configs and what a run saw.

IAP ``AuthorizeUser`` entries are Data Access logs, off by default: with them off an audit
reads "no IAP sessions" and looks clean. Detection, in order:

1. Audit config: the project's IAM policy and its ancestors' (folders, organization), since
   audit configs are inherited. Any level with an ``auditConfigs[]`` entry for
   ``iap.googleapis.com`` or ``allServices`` that enables ``DATA_READ`` -> enabled. Every level
   readable and none enabling it -> disabled -> ScopeError ``data_access_logs_disabled``.
2. Evidence: flows from the IAP range (35.235.240.0/20) to the project's GPU VMs in this run but
   zero IAP entries -> ScopeError ``iap_audit_entries_missing`` (tunnels happened, none were
   logged: config off, exempted members, or an exclusion filter), whatever the config says.
3. Config unreadable (no getIamPolicy) and zero IAP entries while the project has running GPU
   VMs (reachable through IAP) -> ScopeError ``data_access_logs_unverified``.

Checks 1 and 3 apply only to projects whose inventory holds GPU VMs: IAP access to a CPU-only
project is outside this audit, and flagging it would make every organization-wide run partial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["DataAccessState", "Finding", "assess", "iap_data_access_state"]

IAP_SERVICES = frozenset({"iap.googleapis.com", "allServices"})
REMEDIATION = (
    "enable Data Access audit logs for IAP: IAM & Admin > Audit Logs > Cloud Identity-Aware "
    "Proxy > Data Read (or an auditConfigs entry for iap.googleapis.com with logType DATA_READ "
    "on the project, folder or organization)"
)


class DataAccessState(StrEnum):
    """What the IAM audit configs say about IAP Data Access logging."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Finding:
    """A reason the run cannot vouch for IAP coverage of one project (becomes a ScopeError)."""

    code: str
    message: str
    remediation: str
    permission: str | None = None


def _enables_iap(policy: dict[str, Any]) -> tuple[bool, tuple[str, ...]]:
    exempted: list[str] = []
    for config in policy.get("auditConfigs") or ():
        if not isinstance(config, dict) or config.get("service") not in IAP_SERVICES:
            continue
        for log_config in config.get("auditLogConfigs") or ():
            if isinstance(log_config, dict) and log_config.get("logType") in ("DATA_READ", 3):
                exempted.extend(str(m) for m in log_config.get("exemptedMembers") or ())
                return True, tuple(exempted)
    return False, ()


def iap_data_access_state(
    policies: Sequence[tuple[str, dict[str, Any] | None]],
) -> tuple[DataAccessState, str]:
    """State and a reason from ``(resource, policy or None if unreadable)`` for each level."""
    unreadable = [name for name, policy in policies if policy is None]
    for name, policy in policies:
        if policy is None:
            continue
        enabled, exempted = _enables_iap(policy)
        if enabled:
            extra = f"; exempted members: {', '.join(exempted)}" if exempted else ""
            return DataAccessState.ENABLED, f"DATA_READ enabled for IAP on {name}{extra}"
    if not policies or unreadable:
        names = ", ".join(unreadable) or "no resource"
        return DataAccessState.UNKNOWN, f"could not read the IAM policy of {names}"
    levels = ", ".join(name for name, _ in policies)
    return DataAccessState.DISABLED, f"no DATA_READ audit config for IAP on {levels}"


def assess(
    *,
    project: str,
    state: DataAccessState,
    reason: str,
    iap_entries: int,
    iap_flows: int,
    gpu_vms: int,
    running_gpu_vms: Sequence[str],
) -> Finding | None:
    """The problem to report for ``project``, or ``None`` when IAP coverage is credible.

    ``iap_flows`` counts IAP-range flows to the project's GPU VMs; a project without GPU VMs
    (``gpu_vms == 0``) is out of scope for the config checks.
    """
    if iap_entries == 0 and iap_flows > 0:
        return Finding(
            code="iap_audit_entries_missing",
            message=(
                f"{iap_flows} flow(s) from the IAP range 35.235.240.0/20 reached VMs in "
                f"project {project} but no IAP AuthorizeUser audit entry was read ({reason})"
            ),
            remediation=REMEDIATION + "; check exempted members and log exclusions",
        )
    if gpu_vms == 0:
        return None
    if state is DataAccessState.DISABLED:
        return Finding(
            code="data_access_logs_disabled",
            message=f"IAP Data Access audit logs are off for project {project}: {reason}; "
            "IAP tunnels to its VMs are not recorded",
            remediation=REMEDIATION,
        )
    if state is DataAccessState.UNKNOWN and iap_entries == 0 and running_gpu_vms:
        shown = ", ".join(sorted(running_gpu_vms)[:5])
        return Finding(
            code="data_access_logs_unverified",
            message=(
                f"no IAP entries for project {project}, which has running GPU VMs reachable "
                f"through IAP ({shown}), and the audit config is unknown: {reason}"
            ),
            remediation=REMEDIATION
            + "; or grant resourcemanager.projects.getIamPolicy (and folders/organizations"
            " getIamPolicy) so chipwarden can confirm it",
            permission="resourcemanager.projects.getIamPolicy",
        )
    return None
