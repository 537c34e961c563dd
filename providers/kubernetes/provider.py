"""``kubernetes`` source: GPU node inventory and GPU pod index from the live API, plus (optionally)
audit log files whose pods resolve to nodes through that index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from agent.config import ResolvedGlob, ResolvedPath
from agent.contracts import Clock, CollectContext, InstanceTypeCatalog, SessionBatch, SourceEnv
from agent.errors import PluginError, RecordError, SourceError
from agent.models import GpuInstance, ScopeError
from agent.registry import instance_catalogs
from providers.kubernetes.auditfiles import read_audit_files
from providers.kubernetes.client import KubeClient, KubeConnection
from providers.kubernetes.events import NodeRef
from providers.kubernetes.labels import LabelCatalog
from providers.kubernetes.normalize import (
    accelerators_for_node,
    cloud_of,
    instance_from_node,
    pod_placement,
)

__all__ = ["CatalogResolver", "ClusterSnapshot", "KubernetesConfig", "KubernetesSource"]

log = structlog.get_logger(__name__)

CatalogResolver = Callable[[str], InstanceTypeCatalog | None]
"""``"aws" | "gcp" | "azure" -> catalog`` (None when that provider's catalog is not installed)."""


class KubernetesConfig(BaseModel):
    """Config of a ``kubernetes`` source; give at most one of kubeconfig, in_cluster, host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["kubernetes"] = "kubernetes"
    cluster: str = Field(min_length=1, description="cluster name; becomes the account")
    kubeconfig: ResolvedPath | None = None
    context: str | None = None
    in_cluster: bool = False
    host: str | None = Field(default=None, pattern=r"^https?://")
    token: SecretStr | None = None
    verify_ssl: bool | None = None
    ca_cert: ResolvedPath | None = None
    audit_paths: list[ResolvedGlob] = Field(default_factory=list)
    page_size: int = Field(default=500, ge=1, le=10_000)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        ways = [
            n
            for n, on in (
                ("kubeconfig", self.kubeconfig),
                ("in_cluster", self.in_cluster),
                ("host", self.host),
            )
            if on
        ]
        if len(ways) > 1:
            raise ValueError(
                f"give only one of kubeconfig, in_cluster, host (got {', '.join(ways)})"
            )
        if self.token is not None and not self.host:
            raise ValueError("token is only used with host")
        if self.context and (self.in_cluster or self.host):
            raise ValueError("context selects a kubeconfig context; it needs kubeconfig")
        return self

    def connection(self) -> KubeConnection:
        """Connection settings for the client."""
        return KubeConnection(
            host=self.host,
            token=self.token.get_secret_value() if self.token else None,
            kubeconfig=self.kubeconfig,
            context=self.context,
            in_cluster=self.in_cluster,
            verify_ssl=self.verify_ssl,
            ca_cert=self.ca_cert,
            timeout_seconds=self.timeout_seconds,
        )


@dataclass
class ClusterSnapshot:
    """What one listing of the cluster found: GPU nodes and the GPU pods placed on them."""

    instances: list[GpuInstance] = field(default_factory=list)
    pod_index: dict[tuple[str, str], str] = field(default_factory=dict)
    regions: dict[str, str | None] = field(default_factory=dict)

    def resolve(self, namespace: str, pod: str) -> NodeRef | None:
        """Node of a GPU pod, with the node's region when the node is in the inventory."""
        node = self.pod_index.get((namespace, pod))
        if node is None:
            return None
        return NodeRef(node=node, region=self.regions.get(node), basis="pod-index")


def registry_catalogs() -> CatalogResolver:
    """Resolver over ``chipwarden.instance_catalogs``; a missing plug-in means unknown types."""
    cache: dict[str, InstanceTypeCatalog | None] = {}

    def resolve(cloud: str) -> InstanceTypeCatalog | None:
        if cloud not in cache:
            try:
                cache[cloud] = instance_catalogs.load(cloud)()
            except PluginError as exc:
                log.warning("k8s_instance_catalog_unavailable", cloud=cloud, error=exc.message)
                cache[cloud] = None
        return cache[cloud]

    return resolve


class KubernetesSource:
    """Inventory of GPU nodes (and a GPU pod -> node index) from one cluster's API server."""

    Config = KubernetesConfig

    def __init__(
        self,
        *,
        name: str,
        config: KubernetesConfig,
        clock: Clock,
        client_factory: Callable[[], KubeClient] | None = None,
        catalogs: CatalogResolver | None = None,
        labels: LabelCatalog | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self._client_factory = client_factory or (
            lambda: KubeClient(connection=config.connection(), page_size=config.page_size)
        )
        self._catalogs = catalogs or registry_catalogs()
        self._labels = labels
        self._snapshot: ClusterSnapshot | None = None
        self._snapshot_ctx: CollectContext | None = None

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated config (or a raw mapping, validated here)."""
        if not isinstance(config, KubernetesConfig):
            config = KubernetesConfig.model_validate(config, context={"base_dir": env.base_dir})
        return cls(name=env.name, config=config, clock=env.clock)

    @property
    def pod_index(self) -> dict[tuple[str, str], str]:
        """``(namespace, pod) -> node`` for GPU-requesting pods seen by the last inventory."""
        return dict(self._snapshot.pod_index) if self._snapshot else {}

    def inventory(self, ctx: CollectContext) -> list[GpuInstance]:
        """GPU nodes of the cluster; failures become ScopeErrors on ``ctx``."""
        return list(self._ensure_snapshot(ctx).instances)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """Sessions from ``audit_paths`` (none configured: nothing), pods resolved live."""
        if not self.config.audit_paths:
            return
        snapshot = self._ensure_snapshot(ctx)
        yield from read_audit_files(
            source=self.name,
            cluster=self.config.cluster,
            patterns=self.config.audit_paths,
            resolve=snapshot.resolve,
            ctx=ctx,
        )

    def _ensure_snapshot(self, ctx: CollectContext) -> ClusterSnapshot:
        if self._snapshot is None or self._snapshot_ctx is not ctx:
            self._snapshot = self._list(ctx)
            self._snapshot_ctx = ctx
        return self._snapshot

    def _scope_error(self, ctx: CollectContext, scope: str, exc: SourceError) -> None:
        log.warning(
            "k8s_scope_error", source=self.name, scope=scope, code=exc.code, error=exc.message
        )
        ctx.scope_error(
            ScopeError(
                source=self.name,
                scope=f"{self.config.cluster}/{scope}",
                code=exc.code,
                message=exc.message,
                remediation=exc.hint,
                permission=getattr(exc, "permission", None),
            )
        )

    def _list(self, ctx: CollectContext) -> ClusterSnapshot:
        snapshot = ClusterSnapshot()
        if self._labels is None:
            self._labels = LabelCatalog.load()
        labels = self._labels
        with self._client_factory() as client:
            try:
                for i, node in enumerate(client.list_nodes()):
                    self._add_node(ctx, snapshot, node, i, labels)
            except SourceError as exc:
                self._scope_error(ctx, "nodes", exc)
                return snapshot
            try:
                for i, pod in enumerate(client.list_pods()):
                    self._add_pod(ctx, snapshot, pod, i)
            except SourceError as exc:
                self._scope_error(ctx, "pods", exc)
        log.info(
            "k8s_inventory_listed",
            source=self.name,
            cluster=self.config.cluster,
            gpu_nodes=len(snapshot.instances),
            gpu_pods=len(snapshot.pod_index),
        )
        return snapshot

    def _add_node(
        self,
        ctx: CollectContext,
        snapshot: ClusterSnapshot,
        node: Any,
        index: int,
        labels: LabelCatalog,
    ) -> None:
        try:
            if not isinstance(node, dict):
                raise RecordError(f"node is a JSON {type(node).__name__}, not an object")
            cloud = cloud_of((node.get("spec") or {}).get("providerID"))
            catalog = self._catalogs(cloud) if cloud else None
            accs, basis = accelerators_for_node(node, table=labels, catalog=catalog)
            instance = instance_from_node(
                node, cluster=self.config.cluster, accelerators=accs, basis=basis
            )
        except (RecordError, AttributeError, TypeError, ValueError) as exc:
            reason = exc.message if isinstance(exc, RecordError) else f"malformed node: {exc}"
            ctx.count_read()
            ctx.quarantine(
                source=self.name,
                locator="kubernetes:core/v1/nodes",
                position=f"item {index}",
                reason=reason,
            )
            return
        snapshot.regions[instance.instance_id] = instance.region
        if instance.has_accelerators:
            snapshot.instances.append(instance)

    def _add_pod(
        self, ctx: CollectContext, snapshot: ClusterSnapshot, pod: Any, index: int
    ) -> None:
        try:
            placement = pod_placement(pod)
        except (RecordError, AttributeError, TypeError, ValueError) as exc:
            reason = exc.message if isinstance(exc, RecordError) else f"malformed pod: {exc}"
            ctx.count_read()
            ctx.quarantine(
                source=self.name,
                locator="kubernetes:core/v1/pods",
                position=f"item {index}",
                reason=reason,
            )
            return
        if placement is not None:
            snapshot.pod_index[(placement.namespace, placement.name)] = placement.node
