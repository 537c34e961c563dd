"""``kubernetes-audit`` source (audit log files) and the webhook EventList parser.

Files: JSON lines from the API server's log backend (rotated, gzip), EKS CloudWatch exports,
GKE Cloud Audit entries and AKS diagnostic records. Pods resolve to nodes through an optional
static ``nodes: {"namespace/pod": node}`` map; the ``kubernetes`` source resolves them through
its live inventory instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.config import ResolvedGlob
from agent.contracts import Clock, CollectContext, SessionBatch, SourceEnv
from agent.errors import RecordError
from agent.models import EvidenceRef, Session
from providers.kubernetes.auditfiles import expand_paths, read_audit_files, static_resolver
from providers.kubernetes.events import AuditAccess, access_from, merge, to_session
from providers.kubernetes.follow import AuditLineParser
from providers.kubernetes.wrappers import RawEvent

__all__ = ["KubernetesAuditFilesConfig", "KubernetesAuditFilesSource", "parse_event_list"]

MAX_WEBHOOK_BYTES = 32 * 1024 * 1024


def _check_nodes(value: dict[str, str]) -> dict[str, str]:
    for key, node in value.items():
        namespace, _, pod = key.partition("/")
        if not namespace or not pod or "/" in pod:
            raise ValueError(f"key {key!r} must be 'namespace/pod'")
        if not node:
            raise ValueError(f"node for {key!r} is empty")
    return value


class KubernetesAuditFilesConfig(BaseModel):
    """Config of a ``kubernetes-audit`` source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["kubernetes-audit"] = "kubernetes-audit"
    cluster: str = Field(min_length=1, description="cluster name; becomes Session.account")
    paths: list[ResolvedGlob] = Field(min_length=1, description="audit log globs (** recursive)")
    nodes: dict[str, str] = Field(
        default_factory=dict, description='static {"namespace/pod": node} map'
    )

    @field_validator("nodes")
    @classmethod
    def _nodes_ok(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_nodes(value)


class KubernetesAuditFilesSource:
    """Sessions from Kubernetes audit log files (exec, attach, port-forward, debug)."""

    Config = KubernetesAuditFilesConfig

    def __init__(self, *, name: str, config: KubernetesAuditFilesConfig, clock: Clock) -> None:
        self.name = name
        self.config = config
        self.clock = clock

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated config (or a raw mapping, validated here)."""
        if not isinstance(config, KubernetesAuditFilesConfig):
            config = KubernetesAuditFilesConfig.model_validate(
                config, context={"base_dir": env.base_dir}
            )
        return cls(name=env.name, config=config, clock=env.clock)

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch per file; malformed records are quarantined with file and line."""
        yield from read_audit_files(
            source=self.name,
            cluster=self.config.cluster,
            patterns=self.config.paths,
            resolve=static_resolver(self.config.nodes),
            ctx=ctx,
        )

    def follow_paths(self) -> list[Path]:
        """Plain (not gzip) files matching the globs, for ``chipwarden watch`` to follow."""
        files, _empty = expand_paths(self.config.paths)
        return [Path(f) for f in files if not f.endswith(".gz")]

    def line_parser(self, path: Path, *, state: Mapping[str, Any] | None) -> AuditLineParser:
        """Incremental parser of one followed audit log (stage records merged by auditID)."""
        return AuditLineParser(
            source=self.name,
            cluster=self.config.cluster,
            locator=str(path),
            resolve=static_resolver(self.config.nodes),
            state=state,
        )


def _items(body: bytes) -> list[Any]:
    if len(body) > MAX_WEBHOOK_BYTES:
        raise RecordError(f"webhook body is {len(body)} bytes, over {MAX_WEBHOOK_BYTES}")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad JSON, 4300+ digit ints, deep nesting
        raise RecordError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise RecordError(f"webhook body is a JSON {type(doc).__name__}, not an EventList object")
    if doc.get("kind") != "EventList":
        raise RecordError(f"webhook body kind is {doc.get('kind')!r}, expected 'EventList'")
    api = str(doc.get("apiVersion", ""))
    if not api.startswith("audit.k8s.io/"):
        raise RecordError(f"webhook body apiVersion is {api!r}, expected audit.k8s.io/v1")
    items = doc.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise RecordError("webhook EventList.items is not a list")
    return items


def parse_event_list(
    body: bytes,
    *,
    cluster: str,
    nodes: Mapping[str, str] | None = None,
    source: str = "kubernetes-webhook",
) -> tuple[list[Session], list[str]]:
    """Sessions from an audit webhook POST body (``EventList``) and per-item error strings.

    Non-access events are skipped silently; stages of one request collapse to one session.
    A body that is not an ``audit.k8s.io`` EventList raises RecordError.
    """
    resolve = static_resolver(nodes or {})
    best: dict[str, tuple[AuditAccess, int]] = {}
    errors: list[str] = []
    for index, item in enumerate(_items(body)):
        if not isinstance(item, Mapping):
            errors.append(f"items[{index}]: not an object")
            continue
        try:
            access = access_from(RawEvent("k8s", item, "audit-webhook"))
        except RecordError as exc:
            errors.append(f"items[{index}]: {exc.message}")
            continue
        if access is None:
            continue
        current = best.get(access.key)
        merged, won = merge(current[0] if current else None, access)
        best[access.key] = (merged, index if won or current is None else current[1])
    sessions = [
        to_session(
            access,
            cluster=cluster,
            source=source,
            node=resolve(access.namespace, access.pod),
            evidence=EvidenceRef(
                kind="webhook",
                locator=source,
                position=f"items[{index}]",
                event_id=access.key,
                event_name=f"pods/{access.subresource} {access.verb}",
            ),
        )
        for access, index in best.values()
    ]
    return sessions, errors
