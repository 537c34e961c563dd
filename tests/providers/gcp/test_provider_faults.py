"""GcpSource when Cloud Logging fails for good part-way: what was read is committed with its
checkpoint, the failure is one ScopeError per cause, and the next run reads only the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.contracts import CollectContext, SessionBatch, SourceEnv
from providers.gcp.config import ALL_STREAMS
from providers.gcp.provider import GcpSource
from tests.reliability.faultlab import FaultPlan

from .fakegcp import FakeGcp

ConfigFactory = Callable[..., dict[str, Any]]
CtxFactory = Callable[..., CollectContext]
NO_WAIT = {"initial": 0.001, "maximum": 0.001, "multiplier": 1, "deadline": 30, "attempts": 3}


def _run(source: GcpSource, ctx: CollectContext) -> list[SessionBatch]:
    list(source.inventory(ctx))
    return list(source.sessions(ctx))


def _keys(batches: list[SessionBatch]) -> set[str]:
    return {s.key for b in batches for s in b.sessions}


def test_a_stream_failing_mid_way_commits_what_it_read_and_the_next_run_reads_only_the_rest(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    config = gcp_config(streams=["vpc-flows"], page_size=2, batch_size=1000, retry=NO_WAIT)
    clean = _run(GcpSource.from_config(config, env=env), make_ctx())

    gpu_prod.plan = FaultPlan(permanent_after=1, matches=lambda i: '"pageToken": "4"' in i)
    store: dict[str, str] = {}
    ctx = make_ctx(checkpoints=store)
    first = _run(GcpSource.from_config(config, env=env), ctx)
    (batch,) = first  # pages one and two, as one batch, though far below batch_size
    assert batch.checkpoint and batch.checkpoint.endswith("|flow-0004")
    assert ctx.read == 4 == len(batch.sessions) + ctx.ignored + ctx.quarantined_total
    (error,) = ctx.scope_errors
    assert (error.scope, error.code) == ("projects/gpu-prod", "unavailable")
    assert "reading vpc-flows logs" in error.message
    store[batch.checkpoint_scope or ""] = batch.checkpoint  # what the pipeline commits

    gpu_prod.plan = None
    later = make_ctx(checkpoints=store)
    second = _run(GcpSource.from_config(config, env=env), later)
    assert later.read == 1 and later.scope_errors == []  # flow-0005 only
    assert _keys(first) | _keys(second) == _keys(clean)
    assert second[-1].checkpoint == clean[-1].checkpoint


def test_one_scope_error_per_cause_names_every_stream_it_left_unread(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    gpu_prod.plan = FaultPlan(permanent_after=1, matches=lambda i: "entries:list" in i)
    ctx = make_ctx()
    assert _run(GcpSource.from_config(gcp_config(retry=NO_WAIT), env=env), ctx) == []
    (error,) = ctx.scope_errors
    assert error.message.startswith(f"reading {', '.join(ALL_STREAMS)} logs:")
    assert error.remediation and "checkpoint" in error.remediation
    assert len(gpu_prod.calls("POST", "entries:list")) == 3 * len(ALL_STREAMS)


def test_an_inventory_outage_holds_the_checkpoints_so_the_next_run_judges_against_it_whole(
    gpu_prod: FakeGcp, gcp_config: ConfigFactory, make_ctx: CtxFactory, env: SourceEnv
) -> None:
    config = gcp_config(streams=["iap"], retry=NO_WAIT)
    gpu_prod.plan = FaultPlan(permanent_after=1, matches=lambda i: "aggregated/instances" in i)
    ctx = make_ctx()
    first = _run(GcpSource.from_config(config, env=env), ctx)
    assert [e.message.split(":")[0] for e in ctx.scope_errors] == ["listing instances"]
    assert first and all(b.checkpoint is None and b.checkpoint_scope is None for b in first)
    targets = {s.instance_id for b in first for s in b.sessions}
    assert "7340001000000000001" in targets  # reported now, by numeric id: no inventory

    store = {b.checkpoint_scope: b.checkpoint for b in first if b.checkpoint_scope}
    assert store == {}  # what the pipeline commits: findings, but no checkpoint
    gpu_prod.plan = None
    later = make_ctx(checkpoints=store)
    second = _run(GcpSource.from_config(config, env=env), later)
    assert later.scope_errors == []
    assert "trainer-a3" in {s.instance_id for b in second for s in b.sessions}
    assert _keys(second) == _keys(first)  # the same sessions, now resolved
    assert second[-1].checkpoint_scope == "gcp:gpu-prod:iap" and second[-1].checkpoint
