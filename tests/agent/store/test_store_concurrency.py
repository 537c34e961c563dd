"""Concurrent writers never duplicate a finding and count each new id exactly once."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from agent.models import Finding, Session
from agent.store import SqlStore, open_store

SessionFactory = Callable[..., Session]
FindingFactory = Callable[..., Finding]


WRITERS = 4
ROUNDS = 3


def _overlapping_slices(findings: Sequence[Finding], writers: int) -> list[list[Finding]]:
    """Each writer gets a window that overlaps its neighbours' (and some in reverse order)."""
    step = len(findings) // (writers + 1)
    slices = [list(findings[i * step : i * step + 2 * step]) for i in range(writers)]
    return [s if i % 2 == 0 else s[::-1] for i, s in enumerate(slices)]


def _run_threads(stores: list[SqlStore], batches: list[list[Finding]], run_id: str) -> list[int]:
    barrier = threading.Barrier(len(stores))
    results: list[Any] = [None] * len(stores)

    def write(i: int) -> None:
        barrier.wait()
        try:
            results[i] = stores[i].commit_batch(
                findings=batches[i],
                sessions=[],
                checkpoint=("shared", f"{run_id}-{i}"),
                run_id=run_id,
            )
        except Exception as exc:  # reported below, with the thread's index
            results[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return [int(r) for r in results]


def test_threads_upserting_the_same_findings_store_each_exactly_once(
    store_url: str, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    stores = [open_store(store_url) for _ in range(WRITERS)]
    try:
        findings = [make_finding(make_session(f"evt-{i:03d}")) for i in range(60)]
        counted_new = 0
        for round_no in range(ROUNDS):
            batches = _overlapping_slices(findings, WRITERS)
            counted_new += sum(_run_threads(stores, batches, run_id=f"run-{round_no}"))

        distinct = {f.id for batch in _overlapping_slices(findings, WRITERS) for f in batch}
        stored = stores[0].list_findings()
        assert len(stored) == len({f.id for f in stored}) == len(distinct)
        assert counted_new == len(distinct)
        assert stores[0].get_checkpoint("shared") is not None
    finally:
        for s in stores:
            s.close()


def _process_writer(url: str, findings: list[Finding], barrier: Any, results: Any) -> None:
    with open_store(url) as store:
        barrier.wait()
        results.put(store.commit_batch(findings=findings, sessions=[], checkpoint=None, run_id="p"))


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_two_processes_upserting_the_same_findings_store_each_exactly_once(
    store_url: str, make_session: SessionFactory, make_finding: FindingFactory
) -> None:
    with open_store(store_url) as store:  # migrate once, up front
        findings = [make_finding(make_session(f"evt-{i:03d}")) for i in range(100)]
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [
            ctx.Process(target=_process_writer, args=(store_url, batch, barrier, results))
            for batch in (findings, findings[::-1])
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0]

        new_counts = sorted(results.get(timeout=5) for _ in procs)
        assert sum(new_counts) == len(findings)
        assert store.count_findings() == len(findings)
