"""Read Kubernetes audit log files (JSON lines, rotated, gzip) into per-file SessionBatches.

Shared by ``kubernetes-audit`` (static pod -> node map) and ``kubernetes`` (live pod index).
Stages of one request are deduplicated by auditID across all files of a run: ResponseComplete
wins over ResponseStarted, so a stream that opened in a rotated file and closed in the current
one is one session with both start and end.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agent.contracts import CollectContext, SessionBatch
from agent.errors import RecordError
from agent.models import EvidenceRef, ScopeError
from providers.kubernetes.events import AuditAccess, NodeRef, access_from, merge, to_session
from providers.kubernetes.wrappers import unwrap

__all__ = ["NodeResolver", "expand_paths", "read_audit_files", "static_resolver"]

log = structlog.get_logger(__name__)

NodeResolver = Callable[[str, str], NodeRef | None]
"""``(namespace, pod) -> NodeRef | None``."""

_KEYWORDS = (b"exec", b"attach", b"portforward", b"ephemeralcontainers")
_CORRUPT = (OSError, EOFError, zlib.error, gzip.BadGzipFile)
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Largest file tried as one pretty-printed JSON document when its first line is not JSON."""


def static_resolver(nodes: Mapping[str, str]) -> NodeResolver:
    """Resolver over a configured ``{"namespace/pod": node}`` map."""
    table = {tuple(key.split("/", 1)): node for key, node in nodes.items()}

    def resolve(namespace: str, pod: str) -> NodeRef | None:
        node = table.get((namespace, pod))
        return NodeRef(node=node, basis="static-map") if node else None

    return resolve


def expand_paths(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(sorted unique files, patterns that matched nothing)``; ``**`` is recursive."""
    files: set[str] = set()
    empty: list[str] = []
    for pattern in patterns:
        hits = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
        if not hits:
            empty.append(pattern)
        files.update(hits)
    return sorted(files), empty


def _open(path: str) -> io.BufferedIOBase:
    """Binary reader; gzip is detected by its magic bytes, not the file name."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _skippable(line: bytes) -> bool:
    """A complete-looking JSON object with no access keyword cannot be pod access."""
    stripped = line.strip()
    return (
        stripped.startswith(b"{")
        and stripped.endswith(b"}")
        and not any(k in stripped for k in _KEYWORDS)
    )


MAX_LINE_BYTES = 16 * 1024 * 1024
"""An audit event at RequestResponse level can be large, but never this large; a longer line
(corrupt or hostile) is quarantined without being held in memory."""


def _bounded_lines(fh: Any) -> Iterator[tuple[bytes, int]]:
    """``(line, 0)`` per line, or ``(b"", size)`` for a line over ``MAX_LINE_BYTES``."""
    while line := fh.readline(MAX_LINE_BYTES):
        if len(line) < MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line, 0
            continue
        size = len(line)
        while rest := fh.readline(MAX_LINE_BYTES):
            size += len(rest)
            if rest.endswith(b"\n"):
                break
        yield b"", size


def _records(path: str) -> Iterator[tuple[str, Any]]:
    """``(position, parsed JSON | RecordError | None)``; None = skipped without parsing."""
    with _open(path) as fh:
        for number, (line, oversize) in enumerate(_bounded_lines(fh), start=1):
            if oversize:
                yield f"line {number}", RecordError(
                    f"line of {oversize} bytes is over the {MAX_LINE_BYTES}-byte limit"
                )
                continue
            if not line.strip():
                continue
            if _skippable(line):
                yield f"line {number}", None
                continue
            try:
                yield f"line {number}", json.loads(line.strip())
            except (ValueError, RecursionError) as exc:  # bad JSON, 4300+ digit ints, deep nesting
                if number == 1 and line.strip()[:1] in (b"{", b"["):
                    document = _whole_document(path)
                    if document is not None:
                        yield "document", document
                        return
                yield f"line {number}", RecordError(f"not valid JSON: {exc}")


def _whole_document(path: str) -> Any:
    """A pretty-printed JSON file (one object or list), or None when it is not one. A file
    over ``MAX_DOCUMENT_BYTES``, on disk or once decompressed (a gzip bomb), is not tried."""
    if os.path.getsize(path) > MAX_DOCUMENT_BYTES:
        return None
    with _open(path) as fh:
        text = fh.read(MAX_DOCUMENT_BYTES + 1)  # gzip inflates a bounded piece at a time
        if len(text) > MAX_DOCUMENT_BYTES:
            return None
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return None


@dataclass
class _Chosen:
    access: AuditAccess
    unit: str
    evidence: EvidenceRef


class _Collector:
    """Dedupes accesses by key across files and counts every event read."""

    def __init__(self, *, source: str, ctx: CollectContext) -> None:
        self.source, self.ctx = source, ctx
        self.best: dict[str, _Chosen] = {}

    def offer(self, access: AuditAccess, *, unit: str, evidence: EvidenceRef) -> None:
        window = self.ctx.window
        if window.explicit and not window.contains(access.started_at):
            self.ctx.count_ignored()
            return
        current = self.best.get(access.key)
        if current is None:
            self.best[access.key] = _Chosen(access, unit, evidence)
            return
        self.ctx.count_ignored()  # two stage records of one request make one session
        merged, won = merge(current.access, access)
        if won:
            self.best[access.key] = _Chosen(merged, unit, evidence)
        else:
            current.access = merged

    def read_file(self, path: str) -> int:
        """Feed every event of ``path``; returns how many records were read."""
        count = 0
        for position, record in _records(path):
            if record is None:
                count += 1
                self.ctx.count_read()
                self.ctx.count_ignored()
                continue
            if isinstance(record, RecordError):
                count += 1
                self._bad(path, position, record)
                continue
            for suffix, raw in unwrap(record):
                count += 1
                where = position + suffix
                if isinstance(raw, RecordError):
                    self._bad(path, where, raw)
                    continue
                try:
                    access = access_from(raw)
                except RecordError as exc:
                    self._bad(path, where, exc)
                    continue
                self.ctx.count_read()
                if access is None:
                    self.ctx.count_ignored()
                    continue
                evidence = EvidenceRef(
                    kind="file",
                    locator=path,
                    position=where,
                    event_id=access.key,
                    event_name=f"pods/{access.subresource} {access.verb}",
                )
                self.offer(access, unit=path, evidence=evidence)
        return count

    def _bad(self, path: str, position: str, exc: RecordError) -> None:
        self.ctx.count_read()
        self.ctx.quarantine(source=self.source, locator=path, position=position, reason=exc.message)


def read_audit_files(
    *,
    source: str,
    cluster: str,
    patterns: Sequence[str],
    resolve: NodeResolver,
    ctx: CollectContext,
) -> Iterator[SessionBatch]:
    """One SessionBatch per file (sorted paths); unreadable files become ScopeErrors."""
    files, empty = expand_paths(patterns)
    for pattern in empty:
        ctx.scope_error(
            ScopeError(
                source=source,
                scope=pattern,
                code="no_files",
                message=f"no audit log file matches {pattern!r}",
                remediation="check the path glob; an audit of no files must not look clean",
            )
        )
    collector = _Collector(source=source, ctx=ctx)
    for path in files:
        try:
            count = collector.read_file(path)
        except _CORRUPT as exc:
            log.warning("k8s_audit_file_unreadable", source=source, path=path, error=str(exc))
            ctx.scope_error(
                ScopeError(
                    source=source,
                    scope=path,
                    code="file_unreadable",
                    message=f"cannot read {path}: {exc}",
                    remediation="check permissions; events before a truncated .gz cut are kept",
                )
            )
            continue
        ctx.on_progress(path, count)
        log.debug("k8s_audit_file_read", source=source, path=path, records=count)
    by_unit: dict[str, list[_Chosen]] = {path: [] for path in files}
    for chosen in collector.best.values():
        by_unit[chosen.unit].append(chosen)
    for path, chosen_here in by_unit.items():
        sessions = tuple(
            to_session(
                chosen.access,
                cluster=cluster,
                source=source,
                node=resolve(chosen.access.namespace, chosen.access.pod),
                evidence=chosen.evidence,
            )
            for chosen in chosen_here
        )
        yield SessionBatch(unit=path, sessions=sessions)
    log.info(
        "k8s_audit_files_done",
        source=source,
        cluster=cluster,
        files=len(files),
        sessions=len(collector.best),
    )
