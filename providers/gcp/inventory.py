"""Inventory collection for one run: project discovery, Compute VMs, Cloud TPU nodes.

Failures are reported per scope (a project, a folder, an unreachable zone) through the run's
``Reporter`` and never stop the other projects; ``incomplete`` names the projects whose listing
failed or was partial (their sessions cannot all be resolved to their targets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from agent.contracts import CollectContext
from agent.errors import RecordError, SourceError
from agent.models import Accelerator, GpuInstance, ScopeError
from providers.gcp.catalog import GcpMachineCatalog, short_name
from providers.gcp.client import ApiDisabled, GcpClient
from providers.gcp.config import GcpSourceConfig
from providers.gcp.normalize import (
    guest_accelerators,
    instance_from_compute,
    machine_type_accelerators,
    scope_warning,
    tpu_node_instance,
)

__all__ = ["InventoryCollector", "Reporter"]

log = structlog.get_logger(__name__)


@dataclass
class Reporter:
    """Reports ScopeErrors to the context once per (scope, code, permission)."""

    ctx: CollectContext
    source: str
    seen: set[tuple[str, str, str | None]] = field(default_factory=set)

    def error(self, scope: str, exc: SourceError, *, what: str | None = None) -> None:
        permission = getattr(exc, "permission", None)
        key = (scope, exc.code, permission)
        if key in self.seen:
            return
        self.seen.add(key)
        message = f"{what}: {exc.message}" if what else exc.message
        log.warning("gcp_scope_error", scope=scope, code=exc.code, permission=permission)
        self.ctx.scope_error(
            ScopeError(
                source=self.source,
                scope=scope,
                code=exc.code,
                message=message,
                remediation=exc.hint,
                permission=permission,
            )
        )

    def problem(
        self,
        scope: str,
        *,
        code: str,
        message: str,
        remediation: str,
        permission: str | None = None,
    ) -> None:
        """Report a problem that is not an exception (unreachable zone, logs disabled)."""
        key = (scope, code, permission)
        if key in self.seen:
            return
        self.seen.add(key)
        log.warning("gcp_scope_problem", scope=scope, code=code)
        self.ctx.scope_error(
            ScopeError(
                source=self.source,
                scope=scope,
                code=code,
                message=message,
                remediation=remediation,
                permission=permission,
            )
        )


@dataclass
class InventoryCollector:
    """Discovers projects and lists their instances (and TPU nodes when configured)."""

    config: GcpSourceConfig
    client: GcpClient
    catalog: GcpMachineCatalog
    reporter: Reporter
    incomplete: set[str] = field(default_factory=set)

    # -- projects ------------------------------------------------------------------------------

    def projects(self) -> list[str]:
        """Configured projects, or every ACTIVE project under the organization/folder."""
        if self.config.projects:
            return list(self.config.projects)
        root = (
            f"organizations/{self.config.organization}"
            if self.config.organization
            else f"folders/{self.config.folder}"
        )
        found = list(dict.fromkeys(self._walk(root)))
        log.info("gcp_projects_resolved", root=root, projects=len(found))
        return found

    def _walk(self, root: str) -> Iterator[str]:
        queue, seen = [root], set()
        while queue:
            parent = queue.pop(0)
            if parent in seen:
                continue
            seen.add(parent)
            try:
                for project in self.client.list_projects(parent=parent):
                    state = project.get("state", "ACTIVE")
                    if state != "ACTIVE" or not project.get("projectId"):
                        log.info(
                            "gcp_project_skipped", project=project.get("projectId"), state=state
                        )
                        continue
                    yield str(project["projectId"])
                if self.config.recursive:
                    for folder in self.client.list_folders(parent=parent):
                        if folder.get("state", "ACTIVE") == "ACTIVE" and folder.get("name"):
                            queue.append(str(folder["name"]))
            except SourceError as exc:
                self.reporter.error(parent, exc, what="listing projects")

    # -- instances -----------------------------------------------------------------------------

    def collect(self, projects: list[str], count_bad: Callable[[], None]) -> list[GpuInstance]:
        """Every VM (GPU or not) and, with ``tpu: true``, every TPU node of ``projects``."""
        out: list[GpuInstance] = []
        for project in projects:
            before = len(out)
            self._compute(project, out, count_bad)
            if self.config.tpu:
                self._tpu(project, out, count_bad)
            log.info("gcp_inventory_project", project=project, instances=len(out) - before)
        return out

    def _compute(self, project: str, out: list[GpuInstance], count_bad: Callable[[], None]) -> None:
        try:
            for scope, scoped in self.client.aggregated_instances(project):
                problem = scope_warning(scope, scoped)
                if problem:
                    self.incomplete.add(project)
                    self.reporter.problem(
                        f"projects/{project}/{scope}",
                        code="partial_listing",
                        message=problem,
                        remediation="re-run later; the zone did not answer the aggregated list",
                    )
                zone = short_name(scope)
                for raw in scoped.get("instances") or ():
                    try:
                        out.append(self._instance(project, zone, raw))
                    except RecordError as exc:
                        count_bad()
                        self.reporter.ctx.quarantine(
                            source=self.reporter.source,
                            locator=f"compute:projects/{project}/aggregated/instances",
                            position=str(raw.get("name") if isinstance(raw, dict) else None),
                            reason=str(exc),
                        )
        except ApiDisabled as exc:
            log.info("gcp_api_disabled", project=project, api="compute", detail=exc.message)
        except SourceError as exc:
            self.incomplete.add(project)
            self.reporter.error(f"projects/{project}", exc, what="listing instances")

    def _instance(self, project: str, zone: str, raw: Any) -> GpuInstance:
        if not isinstance(raw, dict):
            raise RecordError("instance is not an object")
        accelerators, basis = self._accelerators(project, zone, raw)
        instance = instance_from_compute(raw, project=project, zone=zone, accelerators=accelerators)
        if basis:
            instance = instance.model_copy(
                update={"tags": {**instance.tags, "accelerators-source": basis}}
            )
        return instance

    def _accelerators(
        self, project: str, zone: str, raw: dict[str, Any]
    ) -> tuple[tuple[Accelerator, ...], str | None]:
        attached = guest_accelerators(raw, self.catalog)
        if attached:
            return attached, "guestAccelerators"
        machine_type = short_name(str(raw.get("machineType") or ""))
        if not machine_type or not self.catalog.bundles_accelerators(machine_type):
            return (), None
        try:
            bundled = machine_type_accelerators(
                self.client.machine_type(project, zone, machine_type), self.catalog
            )
            if bundled:
                return bundled, "machineTypes.get"
        except SourceError as exc:
            log.warning(
                "gcp_machine_type_fallback",
                project=project,
                zone=zone,
                machine_type=machine_type,
                error=exc.message,
            )
        fallback = self.catalog.accelerators(machine_type)
        return (fallback or ()), ("catalog" if fallback else "unknown")

    def _tpu(self, project: str, out: list[GpuInstance], count_bad: Callable[[], None]) -> None:
        try:
            for node in self.client.tpu_nodes(project):
                try:
                    out.append(tpu_node_instance(node, project=project, catalog=self.catalog))
                except RecordError as exc:
                    count_bad()
                    self.reporter.ctx.quarantine(
                        source=self.reporter.source,
                        locator=f"tpu:projects/{project}/nodes",
                        position=str(node.get("name") if isinstance(node, dict) else None),
                        reason=str(exc),
                    )
        except ApiDisabled as exc:
            log.info("gcp_api_disabled", project=project, api="tpu", detail=exc.message)
        except SourceError as exc:
            self.incomplete.add(project)
            self.reporter.error(f"projects/{project}", exc, what="listing TPU nodes")
