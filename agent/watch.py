"""Continuous watch: follow file sources like ``tail -F`` and poll cloud sources.

:func:`watch_loop` runs until its ``stop`` event is set (SIGTERM/SIGINT in ``chipwarden
watch``; the server's shutdown in ``chipwarden serve``). Every cycle it reads what is new in
each followed file, evaluates the sessions with the same :class:`Evaluator` as an audit and
commits findings, sessions and the file's checkpoint in one transaction; lists whole-file
sources for new files; and every ``poll_interval`` asks the other (cloud) sources for sessions
since their checkpoints. After a cycle that touched findings the ``after_run`` hooks (notifiers)
get the run and those findings as stored. A stop lets the batch in progress commit, then the
loop saves the run and returns.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import structlog

from agent.assembly import Plugins, build_classifier, build_engine, build_plugins
from agent.config import AppConfig
from agent.contracts import AcceleratorClassifier, Clock, Enricher, PolicyEngine
from agent.enrich import GeoEnricher
from agent.errors import StoreError
from agent.inventory_index import InventoryIndex
from agent.models import AuditRun
from agent.pipeline import Evaluator, FindingHook, RunHook, collect_inventory
from agent.store import SqlStore, open_store
from agent.watch_cycle import Monotonic, WatchCycle, WatchOptions, WatchStats
from agent.yamlio import YamlDocument

__all__ = ["WatchOptions", "WatchStats", "run_watch", "stop_on_signals", "watch_loop"]

log = structlog.get_logger(__name__)


def watch_loop(
    *,
    plugins: Plugins,
    store: SqlStore,
    engine: PolicyEngine,
    enricher: Enricher,
    classifier: AcceleratorClassifier,
    clock: Clock,
    stop: threading.Event,
    options: WatchOptions | None = None,
    finding_hook: FindingHook | None = None,
    after_run: Sequence[RunHook] = (),
    run_id: str | None = None,
    monotonic: Monotonic = time.monotonic,
) -> AuditRun:
    """Follow, poll, evaluate and store until ``stop`` is set; returns the saved run.

    The batch in progress when ``stop`` is set is committed (with its checkpoint) first.
    A store error rolls the file back to its last committed checkpoint and is retried with
    a growing pause; any other source error becomes a ScopeError of the run.
    """
    options = options or WatchOptions()
    run_id = run_id or f"watch-{uuid.uuid4().hex[:12]}"
    structlog.contextvars.bind_contextvars(run_id=run_id)
    names = tuple(getattr(s, "name", type(s).__name__) for s in plugins.sources)
    run = AuditRun(
        id=run_id,
        started_at=clock(),
        sources=names,
        bundle_revision=engine.revision,
        geo_sources=enricher.describe(),
    )
    store.start_run(run)
    watch = WatchCycle(
        plugins=plugins,
        store=store,
        evaluator=Evaluator(
            engine=engine,
            enricher=enricher,
            classifier=classifier,
            inventory=InventoryIndex(),
            clock=clock,
            finding_hook=finding_hook,
        ),
        run=run,
        options=options,
        stop=stop,
        after_run=after_run,
        monotonic=monotonic,
    )
    watch.evaluator.inventory = collect_inventory(plugins, watch.ctx)
    log.info(
        "watch_started",
        followed=[f.source.name for f in watch.follow_sets],
        listed=[x.source.name for x in watch.listed],
        polled=[getattr(p, "name", "?") for p in watch.polled],
    )
    failures = 0
    try:
        while not stop.is_set():
            try:
                worked = watch.cycle()
                failures = 0
            except StoreError as exc:
                failures += 1
                watch.stats.commit_failures += 1
                pause = min(options.max_backoff, options.follow_interval * 2**failures)
                log.warning("watch_store_failed", error=exc.message, retry_in=pause)
                stop.wait(pause)
                continue
            if not worked:
                if options.until_idle:
                    break
                stop.wait(options.follow_interval)
    finally:
        final = watch.finish()
        log.info(
            "watch_stopped",
            status=final.status.value,
            lines=watch.stats.lines,
            sessions=watch.stats.sessions,
            findings=watch.stats.findings,
            new_findings=watch.stats.new_findings,
        )
        structlog.contextvars.unbind_contextvars("run_id")
    return final


def run_watch(
    config: AppConfig,
    *,
    doc: YamlDocument | None,
    stop: threading.Event,
    clock: Clock,
    options: WatchOptions | None = None,
    finding_hook: FindingHook | None = None,
    after_run: Sequence[RunHook] = (),
    hooks: Callable[[SqlStore], tuple[FindingHook | None, Sequence[RunHook]]] | None = None,
) -> AuditRun:
    """Build sources, policies, enrichment and the store from ``config`` and run
    :func:`watch_loop` until ``stop`` is set (what ``chipwarden watch`` and ``serve`` run).
    ``hooks`` builds (finding_hook, after_run) from the opened store: exceptions, notifiers."""
    plugins = build_plugins(config, doc=doc, clock=clock)
    engine = build_engine(config, clock=clock)
    classifier = build_classifier(config)
    with (
        GeoEnricher.from_config(config.geo, base_dir=config.base_dir) as enricher,
        open_store(config.store) as store,
    ):
        if hooks is not None:
            finding_hook, after_run = hooks(store)
        return watch_loop(
            plugins=plugins,
            store=store,
            engine=engine,
            enricher=enricher,
            classifier=classifier,
            clock=clock,
            stop=stop,
            options=options,
            finding_hook=finding_hook,
            after_run=after_run,
        )


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """While open, SIGTERM and SIGINT set ``stop`` (the loop drains and saves, then exits);
    a second signal ends the process at once. Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: object) -> None:
        stop.set()  # only set the event: the handler may run between any two bytecodes
        signal.signal(signum, signal.SIG_DFL)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def review_hooks(
    config: AppConfig, doc: YamlDocument | None, *, clock: Clock
) -> Callable[[SqlStore], tuple[FindingHook | None, Sequence[RunHook]]]:
    """Exceptions and notifiers for a watch loop, built once its store is open."""

    def build(store: SqlStore) -> tuple[FindingHook | None, Sequence[RunHook]]:
        from agent.review.hooks import build_audit_hooks

        built = build_audit_hooks(config=config, doc=doc, store=store, clock=clock)
        return built.finding_hook, built.after_run

    return build
