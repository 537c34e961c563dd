"""Incremental parsing of a followed Kubernetes audit log (JSON lines) for ``chipwarden watch``.

Each access event becomes a session at once; a later stage record of the same request (the
``ResponseComplete`` of an exec stream that opened with ``ResponseStarted``) is merged into it
and emitted again under the same key, so the stored session gains its end. Requests whose
stream is still open are saved with the file offset, so the merge survives restarts.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from agent.contracts import CollectContext
from agent.errors import RecordError
from agent.models import EvidenceRef, Session
from providers.kubernetes.auditfiles import NodeResolver
from providers.kubernetes.events import AuditAccess, access_from, merge, to_session
from providers.kubernetes.wrappers import unwrap

__all__ = ["AuditLineParser"]

log = structlog.get_logger(__name__)

_KEYWORDS = ("exec", "attach", "portforward", "ephemeralcontainers")
_COMPLETE_RANK = 3
MAX_RECENT = 10_000
"""Requests remembered for merging stage records (the oldest are forgotten first)."""


class AuditLineParser:
    """The :class:`agent.contracts.LineParser` of one followed audit log file."""

    def __init__(
        self,
        *,
        source: str,
        cluster: str,
        locator: str,
        resolve: NodeResolver,
        state: Mapping[str, Any] | None = None,
        max_recent: int = MAX_RECENT,
    ) -> None:
        self.source, self.cluster, self.locator = source, cluster, locator
        self.resolve = resolve
        self.max_recent = max_recent
        self._recent: OrderedDict[str, tuple[AuditAccess, EvidenceRef]] = OrderedDict()
        if state:
            self._restore(state)

    def feed(
        self, lines: Sequence[str], *, first_line: int, ctx: CollectContext
    ) -> tuple[Session, ...]:
        """Sessions started or completed by ``lines``; every record is counted in ``ctx``."""
        changed: dict[str, Session] = {}
        for n, line in enumerate(lines, start=first_line):
            text = line.strip()
            if not text:
                continue
            if (
                text.startswith("{")
                and text.endswith("}")
                and not any(k in text for k in _KEYWORDS)
            ):
                ctx.count_read()
                ctx.count_ignored()
                continue
            try:
                record = json.loads(text)
            except ValueError as exc:
                self._bad(ctx, f"line {n}", RecordError(f"not valid JSON: {exc}"))
                continue
            for suffix, raw in unwrap(record):
                session = self._take(ctx, raw, position=f"line {n}{suffix}")
                if session is not None:
                    changed[session.key] = session
        return tuple(changed.values())

    def state(self) -> dict[str, Any]:
        """Requests whose stream has not completed yet (to merge their end after a restart)."""
        return {
            "open": [
                {"access": a.model_dump(mode="json"), "evidence": e.model_dump(mode="json")}
                for a, e in self._recent.values()
                if a.stage_rank < _COMPLETE_RANK
            ]
        }

    def _take(self, ctx: CollectContext, raw: Any, *, position: str) -> Session | None:
        if isinstance(raw, RecordError):
            self._bad(ctx, position, raw)
            return None
        try:
            access = access_from(raw)
        except RecordError as exc:
            self._bad(ctx, position, exc)
            return None
        ctx.count_read()
        if access is None:
            ctx.count_ignored()
            return None
        evidence = EvidenceRef(
            kind="file",
            locator=self.locator,
            position=position,
            event_id=access.key,
            event_name=f"pods/{access.subresource} {access.verb}",
        )
        current = self._recent.pop(access.key, None)
        if current is not None:
            ctx.count_ignored()  # a later stage of a request already emitted
            merged, won = merge(current[0], access)
            access, evidence = merged, evidence if won else current[1]
        self._recent[access.key] = (access, evidence)
        while len(self._recent) > self.max_recent:
            self._recent.popitem(last=False)
        return to_session(
            access,
            cluster=self.cluster,
            source=self.source,
            node=self.resolve(access.namespace, access.pod),
            evidence=evidence,
        )

    def _bad(self, ctx: CollectContext, position: str, exc: RecordError) -> None:
        ctx.count_read()
        ctx.quarantine(
            source=self.source, locator=self.locator, position=position, reason=exc.message
        )

    def _restore(self, state: Mapping[str, Any]) -> None:
        try:
            for item in state.get("open") or ():
                access = AuditAccess.model_validate(item["access"])
                self._recent[access.key] = (access, EvidenceRef.model_validate(item["evidence"]))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("k8s_follow_state_ignored", source=self.source, error=str(exc))
            self._recent.clear()
