"""Bounded concurrency across account x region units, with thread-confined reporting.

Each unit runs in a worker thread against its OWN ``CollectContext`` (counts, quarantine,
scope errors); the caller's context is only touched from the calling thread, when the unit's
result is merged, in submission order (deterministic output). Checkpoints are read before
the fan-out (by the calling thread) and handed to the units.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from agent.contracts import CollectContext, SessionBatch
from agent.errors import ChipwardenError
from agent.models import ScopeError, Session

__all__ = ["Unit", "fan_out", "merge_context", "to_batches"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Unit(Generic[T]):
    """One piece of work: a label for errors and progress, and the function doing it."""

    label: str
    run: Callable[[CollectContext], T]


def _local(ctx: CollectContext) -> CollectContext:
    return CollectContext(
        window=ctx.window,
        clock=ctx.clock,
        max_quarantine_kept=ctx.max_quarantine_kept,
        inventory=ctx.inventory,
    )


def merge_context(local: CollectContext, into: CollectContext) -> None:
    """Add a unit's counters, quarantined records and scope errors to the run's context."""
    into.count_read(local.read)
    into.count_ignored(local.ignored)
    for record in local.quarantined:
        into.quarantine(
            source=record.source,
            locator=record.locator,
            position=record.position,
            reason=record.reason,
        )
    into.quarantined_total += local.quarantined_total - len(local.quarantined)
    for error in local.scope_errors:
        into.scope_error(error)


def _internal_error(source: str, label: str, exc: BaseException) -> ScopeError:
    if isinstance(exc, ChipwardenError):
        return ScopeError(
            source=source, scope=label, code=exc.code, message=exc.message, remediation=exc.hint
        )
    return ScopeError(
        source=source,
        scope=label,
        code="internal_error",
        message=f"{type(exc).__name__}: {exc}",
        remediation="this is a bug in chipwarden; please report it with the log",
    )


def fan_out(
    units: Sequence[Unit[T]], *, ctx: CollectContext, max_workers: int, source: str
) -> Iterator[tuple[Unit[T], T | None]]:
    """Run ``units`` on at most ``max_workers`` threads; yield (unit, result) in submission
    order after merging the unit's report into ``ctx``. A unit that raises yields ``None`` and
    leaves a ScopeError; the others go on. Closing the iterator cancels pending units."""
    if not units:
        return
    executor = ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(units))), thread_name_prefix="aws"
    )
    try:
        submitted: list[tuple[Unit[T], CollectContext, Future[T]]] = []
        for unit in units:
            local = _local(ctx)
            submitted.append((unit, local, executor.submit(unit.run, local)))
        for unit, local, future in submitted:
            result: T | None
            try:
                result = future.result()
            except Exception as exc:  # one unit must not hide the others
                log.warning("aws_unit_failed", unit=unit.label, error=str(exc))
                local.scope_error(_internal_error(source, unit.label, exc))
                result = None
            merge_context(local, ctx)
            ctx.on_progress(unit.label, local.read)
            yield unit, result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def to_batches(
    unit: str,
    sessions: Sequence[tuple[str | None, Session]],
    checkpoints: Sequence[tuple[str | None, str, str]],
) -> list[SessionBatch]:
    """Split a unit's tagged sessions into one batch per tag (a day), each carrying that tag's
    first checkpoint; further checkpoints of a tag ride on empty batches right after it, so
    no checkpoint is committed before the sessions it covers."""
    by_tag: dict[str | None, list[Session]] = defaultdict(list)
    for tag, session in sessions:
        by_tag[tag].append(session)
    tags = list(dict.fromkeys([t for t, _, _ in checkpoints] + [t for t, _ in sessions]))
    out: list[SessionBatch] = []
    for tag in tags:
        label = f"{unit}/{tag}" if tag else unit
        marks = [(scope, value) for t, scope, value in checkpoints if t == tag]
        first = marks[0] if marks else (None, None)
        out.append(
            SessionBatch(
                unit=label,
                sessions=tuple(by_tag.get(tag, ())),
                checkpoint_scope=first[0],
                checkpoint=first[1],
            )
        )
        out.extend(
            SessionBatch(unit=label, sessions=(), checkpoint_scope=scope, checkpoint=value)
            for scope, value in marks[1:]
        )
    return out or [SessionBatch(unit=unit, sessions=())]
