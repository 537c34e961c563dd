"""One watch cycle: follow files, list whole files, poll cloud sources, commit, notify.

:class:`WatchCycle` owns the state of one running watch (its streams, counters, the run
record); :func:`agent.watch.watch_loop` calls :meth:`WatchCycle.cycle` until it is stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.assembly import Plugins
from agent.contracts import AuditWindow, CollectContext, FollowableSource, ListedFilesSource
from agent.errors import StoreError
from agent.follow import MAX_CHUNK_BYTES
from agent.models import AuditRun, Finding, RunCounts, RunStatus, ScopeError, Session
from agent.pipeline import Evaluator, RunHook, scope_error_from, collect_inventory
from agent.store import SqlStore
from agent.watch_streams import FollowSet, FollowStream, ListedFiles

__all__ = ["Monotonic", "WatchCycle", "WatchOptions", "WatchStats"]

log = structlog.get_logger(__name__)

Monotonic = Callable[[], float]


@dataclass(frozen=True)
class WatchOptions:
    """Timing and reading knobs of the watch loop (seconds and bytes)."""

    follow_interval: float = 0.5
    poll_interval: float = 60.0
    list_interval: float = 5.0
    inventory_interval: float = 900.0
    run_save_interval: float = 10.0
    from_end: bool = False
    max_batches_per_file: int = 32
    max_chunk_bytes: int = MAX_CHUNK_BYTES
    max_backoff: float = 30.0
    until_idle: bool = False
    """Stop after the first cycle that found nothing new (``chipwarden watch --once``)."""


@dataclass
class WatchStats:
    """Counters of one watch run (also saved as the run's ``counts``)."""

    cycles: int = 0
    lines: int = 0
    sessions: int = 0
    evaluated: int = 0
    findings: int = 0
    new_findings: int = 0
    commit_failures: int = 0
    scope_errors: dict[tuple[str, str, str], ScopeError] = field(default_factory=dict)


class WatchCycle:
    """State of one running watch (not thread-safe: one loop owns it)."""

    def __init__(
        self,
        *,
        plugins: Plugins,
        store: SqlStore,
        evaluator: Evaluator,
        run: AuditRun,
        options: WatchOptions,
        stop: threading.Event,
        after_run: Sequence[RunHook],
        monotonic: Monotonic,
    ) -> None:
        self.plugins, self.store, self.evaluator = plugins, store, evaluator
        self.run, self.options, self.stop = run, options, stop
        self.after_run, self.monotonic = after_run, monotonic
        self.ctx = CollectContext(
            window=AuditWindow(since=None, until=None, explicit=False),
            clock=evaluator.clock,
            checkpoints=store.get_checkpoint,
        )
        self.stats = WatchStats()
        self.follow_sets: list[FollowSet] = []
        self.listed: list[ListedFiles] = []
        self.polled: list[Any] = []
        for source in plugins.session_sources:
            if isinstance(source, FollowableSource):
                self.follow_sets.append(
                    FollowSet(
                        source,
                        checkpoints=store.get_checkpoint,
                        from_end=options.from_end,
                        max_bytes=options.max_chunk_bytes,
                    )
                )
            elif isinstance(source, ListedFilesSource):
                self.listed.append(ListedFiles(source, checkpoints=store.get_checkpoint))
            else:
                self.polled.append(source)
        self.touched: set[str] = set()
        self._due: dict[str, float] = {}

    # -- one cycle ------------------------------------------------------------------------

    def cycle(self) -> bool:
        """Read everything that is due once; True when any file had new lines or batches."""
        self.stats.cycles += 1
        worked = False
        if self._is_due("inventory", self.options.inventory_interval, first=False):
            self.evaluator.inventory = collect_inventory(self.plugins, self.ctx)
        for follow_set in self.follow_sets:
            if self._is_due(f"relist:{follow_set.source.name}", self.options.list_interval):
                follow_set.relist(self.ctx, on_error=_file_error)
            for stream in follow_set:
                worked |= self._follow(stream)
        if self.listed and self._is_due("list", self.options.list_interval):
            worked |= self._read_listed()
        if self.polled and self._is_due("poll", self.options.poll_interval):
            worked |= self._poll()
        self._notify()
        self._collect_errors()
        self._save_run(RunStatus.RUNNING, throttle=True)
        return worked

    def _follow(self, stream: FollowStream) -> bool:
        worked = False
        if self.monotonic() < stream.retry_at:
            return worked
        for _ in range(self.options.max_batches_per_file):
            if self.stop.is_set():
                break
            counts = _Counts.of(self.ctx)
            try:
                batch = stream.next_batch(self.ctx)
            except Exception as exc:  # unreadable file or parser bug: this file waits a poll
                counts.restore(self.ctx)
                stream.rollback()
                stream.retry_at = self.monotonic() + self.options.poll_interval
                self.ctx.scope_error(_file_error(stream.source.name, stream.path, exc))
                return worked
            if batch is None:
                break
            worked = True
            try:
                self._commit(batch.sessions, (batch.scope, batch.checkpoint))
            except StoreError:
                stream.rollback()  # the lines are read again, so they are counted again
                counts.restore(self.ctx)
                raise
            stream.committed_to(batch)
            self.stats.lines += batch.lines
        return worked

    def _read_listed(self) -> bool:
        worked = False
        for listed in self.listed:
            for path, scope, stamp in listed.new_files(self.ctx):
                if self.stop.is_set():
                    return worked
                batch = _guarded(listed.source, self.ctx, listed.source.read_file, path)
                if batch is not None:
                    self._commit(batch.sessions, (scope, stamp))
                    worked = True
                listed.done(path, stamp)
        return worked

    def _poll(self) -> bool:
        worked = False
        for source in self.polled:
            batches = _source_batches(source, self.ctx)
            for batch in batches:
                checkpoint = (
                    (batch.checkpoint_scope, batch.checkpoint)
                    if batch.checkpoint_scope and batch.checkpoint is not None
                    else None
                )
                self._commit(batch.sessions, checkpoint)
                worked = worked or bool(batch.sessions)
                if self.stop.is_set():
                    batches.close()
                    return worked
        return worked

    def _commit(self, sessions: Sequence[Session], checkpoint: tuple[str, str] | None) -> None:
        findings: list[Finding] = []
        for item in self.evaluator.inputs(sessions):
            findings.extend(self.evaluator.findings(item, run_id=self.run.id))
        new = self.store.commit_batch(
            findings=findings, sessions=sessions, checkpoint=checkpoint, run_id=self.run.id
        )
        self.stats.sessions += len(sessions)
        self.stats.evaluated += len(sessions)
        self.stats.findings += len(findings)
        self.stats.new_findings += new
        self.touched.update(f.id for f in findings)

    # -- hooks, errors and the run record ---------------------------------------------------

    def _notify(self) -> None:
        if not self.touched:
            return
        ids, self.touched = sorted(self.touched), set()
        if not self.after_run:
            return
        stored = [f for f in (self.store.get_finding(i) for i in ids) if f is not None]
        snapshot = self._run_snapshot(RunStatus.RUNNING)
        for hook in self.after_run:
            try:
                hook(snapshot, stored)
            except Exception as exc:  # a notifier never stops the watch
                log.warning(
                    "after_run_hook_failed",
                    hook=getattr(hook, "__name__", str(hook)),
                    error=str(exc),
                )

    def _collect_errors(self) -> None:
        for error in self.ctx.scope_errors:
            key = (error.source, error.scope, error.code)
            if key not in self.stats.scope_errors:
                log.warning(
                    "watch_scope_error",
                    source=error.source,
                    scope=error.scope,
                    code=error.code,
                    error=error.message,
                )
            self.stats.scope_errors[key] = error
        self.ctx.scope_errors.clear()

    def _run_snapshot(self, status: RunStatus) -> AuditRun:
        s, ctx = self.stats, self.ctx
        return self.run.model_copy(
            update={
                "status": status,
                "counts": RunCounts(
                    read=ctx.read,
                    sessions=s.sessions,
                    ignored=ctx.ignored,
                    quarantined=ctx.quarantined_total,
                    evaluated=s.evaluated,
                    findings=s.findings,
                    new_findings=s.new_findings,
                ),
                "scope_errors": tuple(s.scope_errors.values()),
                "quarantined": tuple(ctx.quarantined),
            }
        )

    def _save_run(self, status: RunStatus, *, throttle: bool = False) -> None:
        if throttle and not self._is_due("save", self.options.run_save_interval):
            return
        run = self._run_snapshot(status)
        if status is not RunStatus.RUNNING:
            run = run.model_copy(update={"finished_at": self.evaluator.clock()})
        self.store.save_run(run)

    def finish(self) -> AuditRun:
        """Save the run as complete (or partial after scope errors / quarantines)."""
        self._collect_errors()
        partial = bool(self.stats.scope_errors) or self.ctx.quarantined_total > 0
        status = RunStatus.PARTIAL if partial else RunStatus.COMPLETE
        for follow_set in self.follow_sets:
            follow_set.close()
        try:
            self._save_run(status)
        except StoreError as exc:  # the checkpoints are committed already; only counts lost
            log.warning("watch_run_not_saved", error=exc.message)
        return self._run_snapshot(status)

    def _is_due(self, name: str, interval: float, *, first: bool = True) -> bool:
        now = self.monotonic()
        due = self._due.get(name)
        if due is None:
            self._due[name] = now + interval
            return first
        if now >= due:
            self._due[name] = now + interval
            return True
        return False


@dataclass(frozen=True)
class _Counts:
    """The context's counters before a batch (restored when its commit fails)."""

    read: int
    ignored: int
    quarantined_total: int
    kept: int

    @classmethod
    def of(cls, ctx: CollectContext) -> _Counts:
        return cls(ctx.read, ctx.ignored, ctx.quarantined_total, len(ctx.quarantined))

    def restore(self, ctx: CollectContext) -> None:
        ctx.read, ctx.ignored, ctx.quarantined_total = (
            self.read,
            self.ignored,
            self.quarantined_total,
        )
        del ctx.quarantined[self.kept :]


def _file_error(source: str, path: Path, exc: BaseException) -> ScopeError:
    """ScopeError for a followed file that cannot be read (or whose parser failed)."""
    if not isinstance(exc, OSError):
        return scope_error_from(source, str(path), exc)
    return ScopeError(
        source=source,
        scope=str(path),
        code="file_unreadable",
        message=f"cannot read {path}: {exc.strerror or exc}",
        remediation="check the path and that chipwarden may read it (auth logs are often "
        "root:adm 0640); the watch tries again every poll interval",
    )


def _guarded(
    source: object, ctx: CollectContext, read: Callable[[Path, CollectContext], Any], path: Path
) -> Any:
    """Read one file of ``source``; an exception becomes a ScopeError (the watch goes on)."""
    try:
        return read(path, ctx)
    except StoreError:
        raise
    except Exception as exc:  # one source must not stop the others
        name = getattr(source, "name", type(source).__name__)
        log.warning("source_failed", source=name, error=str(exc))
        ctx.scope_error(scope_error_from(name, "sessions", exc))
        return None


def _source_batches(source: Any, ctx: CollectContext) -> Generator[Any, None, None]:
    name = getattr(source, "name", type(source).__name__)
    try:
        yield from source.sessions(ctx)
    except StoreError:
        raise
    except Exception as exc:  # one source must not stop the others
        log.warning("source_failed", source=name, error=str(exc))
        ctx.scope_error(scope_error_from(name, "sessions", exc))
