"""Models to table rows and back: ``model_dump(mode="json")`` out, ``model_validate`` in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from agent.models import AuditRun, Finding, Session
from agent.models.base import clean_value as clean

__all__ = [
    "checkpoint_row",
    "finding_from_row",
    "finding_to_row",
    "latest_by",
    "run_from_row",
    "run_to_row",
    "session_from_row",
    "session_to_row",
]

T = TypeVar("T")

_FINDING_MODEL_COLUMNS = (
    "id",
    "policy_id",
    "severity",
    "status",
    "title",
    "reasons",
    "session",
    "ip",
    "instance",
    "jurisdictions",
    "indeterminate",
    "bundle_revision",
    "pack_version",
    "citations",
    "first_seen",
    "last_seen",
    "run_id",
    "extra",
)
_RUN_JSON_COLUMNS = ("counts", "scope_errors", "quarantined", "sources", "geo_sources")


def finding_to_row(finding: Finding, *, run_id: str) -> dict[str, Any]:
    """Row for ``findings``; a new row's first_seen is its last_seen (the brief's rule)."""
    data = finding.model_dump(mode="json")
    session = finding.session
    return clean(
        {
            "id": finding.id,
            "policy_id": finding.policy_id,
            "severity": finding.severity.value,
            "severity_rank": finding.severity.rank,
            "status": finding.status.value,
            "title": finding.title,
            "reasons": data["reasons"],
            "session_id": session.session_id,
            "provider": session.provider,
            "account": session.account,
            "region": session.region,
            "instance_id": session.instance_id,
            "principal": session.principal,
            "source_ip": session.source_ip,
            "country": finding.ip.country,
            "method": session.method.value,
            "started_at": session.started_at,
            "session": data["session"],
            "ip": data["ip"],
            "instance": data["instance"],
            "jurisdictions": data["jurisdictions"],
            "indeterminate": finding.indeterminate,
            "bundle_revision": finding.bundle_revision,
            "pack_version": finding.pack_version,
            "citations": data["citations"],
            "first_seen": finding.last_seen,
            "last_seen": finding.last_seen,
            "run_id": run_id,
            "extra": data["extra"],
        }
    )


def finding_from_row(row: Mapping[Any, Any]) -> Finding:
    """Rebuild a ``Finding`` from a ``findings`` row (a ``RowMapping``)."""
    return Finding.model_validate({name: row[name] for name in _FINDING_MODEL_COLUMNS})


def session_to_row(session: Session) -> dict[str, Any]:
    """Row for ``sessions``: queryable columns plus the whole model in ``data``."""
    return clean(
        {
            "session_id": session.session_id,
            "provider": session.provider,
            "account": session.account,
            "instance_id": session.instance_id,
            "principal": session.principal,
            "source_ip": session.source_ip,
            "method": session.method.value,
            "started_at": session.started_at,
            "data": session.model_dump(mode="json"),
        }
    )


def session_from_row(data: Mapping[str, Any]) -> Session:
    """Rebuild a ``Session`` from the ``data`` column."""
    return Session.model_validate(data)


def run_to_row(run: AuditRun) -> dict[str, Any]:
    """Row for ``runs``: timestamps as columns, lists and counters as JSON."""
    data = run.model_dump(mode="json")
    row: dict[str, Any] = {name: data[name] for name in _RUN_JSON_COLUMNS}
    row.update(
        id=run.id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status.value,
        window_start=run.window_start,
        window_end=run.window_end,
        bundle_revision=run.bundle_revision,
    )
    return clean(row)  # type: ignore[no-any-return]


def run_from_row(row: Mapping[Any, Any]) -> AuditRun:
    """Rebuild an ``AuditRun`` from a ``runs`` row."""
    return AuditRun.model_validate(dict(row))


def checkpoint_row(scope: str, value: str, *, now: datetime) -> dict[str, Any]:
    """Row for ``checkpoints``."""
    return {"scope": scope, "value": value, "updated_at": now}


def latest_by(items: Iterable[T], *, key: Callable[[T], str], order: Callable[[T], Any]) -> list[T]:
    """One item per key (the greatest by ``order``; later wins ties), sorted by key.

    Sorting gives concurrent writers one lock order, so PostgreSQL upserts cannot deadlock.
    """
    chosen: dict[str, T] = {}
    for item in items:
        k = key(item)
        if k not in chosen or order(item) >= order(chosen[k]):
            chosen[k] = item
    return [chosen[k] for k in sorted(chosen)]
