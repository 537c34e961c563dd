"""How the azure source rides out transient faults and reports lasting ones, one fault kind at
a time: the real SDK clients against the local fake, which answers the calls a ``FaultPlan``
draws with a fault made on the wire (tests/providers/azure/fakefaults.py). An expired token
renewed mid-run is specified in tests/reliability/test_reliability_faults_azure.py (its token
endpoint traffic is not an RBAC call, so it stays out of the deploy/iam traffic recording)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from agent.contracts import CollectContext, SessionBatch, SourceEnv
from providers.azure.provider import AzureSource
from tests.providers.azure.azfixtures import (
    BASTION_CONTAINER,
    FLOW_ACCOUNT,
    H100_ID,
    SUB_A,
    WORKSPACE,
    make_ctx,
    seed_arm,
    seed_bastion_blobs,
    seed_workspace,
)
from tests.providers.azure.fakeazure import FakeAzure
from tests.reliability.faultlab import FaultPlan


def _every_call(kind: str, times: int, **options: Any) -> FaultPlan:
    """Each request fails ``times`` in a row with ``kind``, then goes through."""
    return FaultPlan(rate=1.0, kinds=(kind,), max_consecutive=times, **options)


def _inventory(config: dict[str, Any], env: SourceEnv) -> tuple[dict[str, Any], CollectContext]:
    ctx = make_ctx()
    source = AzureSource.from_config(config, env=env)
    instances = {i.instance_id: i for i in source.inventory(ctx)}
    source.close()
    return instances, ctx


def _sessions(config: dict[str, Any], env: SourceEnv) -> tuple[list[SessionBatch], CollectContext]:
    ctx = make_ctx()
    source = AzureSource.from_config(config, env=env)
    batches = list(source.sessions(ctx))
    source.close()
    return batches, ctx


def test_throttled_arm_calls_are_retried_within_the_budget_and_beyond_it_are_a_scope_error(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    fake.plan = _every_call("throttle", 2)
    config = {**config, "subscriptions": [SUB_A], "retry_backoff_factor": 0}
    instances, ctx = _inventory({**config, "retry_total": 2}, env)
    assert H100_ID in instances and ctx.scope_errors == []
    assert fake.plan.tally["throttle"] >= 2 * len(set(fake.calls(f"/subscriptions/{SUB_A}")))
    fake.plan = _every_call("throttle", 2)
    instances, ctx = _inventory({**config, "retry_total": 1}, env)
    (error,) = ctx.scope_errors
    assert (error.scope, error.code) == (f"subscriptions/{SUB_A}", "unavailable")
    assert "429" in error.message and "retry_total" in (error.remediation or "")


def test_a_rejected_credential_is_not_retried(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    _, ctx = _inventory({**config, "token": "not-a-token", "retry_total": 3}, env)
    assert [(e.scope, e.code) for e in ctx.scope_errors] == [("subscriptions", "auth_error")]
    assert len(fake.calls("/subscriptions")) == 1  # no new token would change the answer


def test_log_analytics_queries_are_sent_again_after_a_reset_and_a_timeout(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_workspace(fake)
    fake.plan = FaultPlan(rate=1.0, kinds=("reset", "timeout"), max_consecutive=2, seed=3)
    settings = {
        **config,
        "workspace_id": WORKSPACE,
        "streams": ["bastion"],
        "retry_total": 2,
        "retry_backoff_factor": 0,
        "timeout_seconds": 0.5,
    }
    batches, ctx = _sessions(settings, env)
    assert ctx.scope_errors == [] and [b.unit for b in batches] == [
        f"workspaces/{WORKSPACE}/bastion"
    ]
    assert batches[0].sessions and batches[0].checkpoint is not None
    assert fake.plan.tally == {"reset": 1, "timeout": 1}
    assert len(fake.calls("/query")) == 3


def _bastion_blob_config(config: dict[str, Any]) -> dict[str, Any]:
    return {
        **config,
        "streams": ["bastion"],
        "bastion_blobs": {"account_url": FLOW_ACCOUNT, "container": BASTION_CONTAINER},
        "retry_total": 3,
        "retry_backoff_factor": 0,
    }


def test_a_blob_cut_short_is_read_again_until_whole(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    names = seed_bastion_blobs(fake)
    recent = names["recent"]
    clean, _ = _sessions(_bastion_blob_config(config), env)
    # three short bodies in a row: storage re-reads twice itself, then the source reads again
    fake.plan = _every_call("truncated", 3, matches=lambda i: "h=08" in unquote(i))
    batches, ctx = _sessions(_bastion_blob_config(config), env)
    assert fake.plan.tally == {"truncated": 3}
    assert ctx.scope_errors == []
    assert batches == clean and batches[0].sessions
    assert batches[0].sessions[0].evidence[0].locator.endswith(recent)


def test_a_listed_blob_that_answers_404_is_read_again_and_one_that_stays_gone_holds_the_checkpoint(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    names = seed_bastion_blobs(fake)

    def recent(identity: str) -> bool:
        return "h=08" in unquote(identity)

    fake.plan = _every_call("missing", 2, matches=recent)
    batches, ctx = _sessions(_bastion_blob_config(config), env)
    assert ctx.scope_errors == [] and batches[0].sessions and batches[0].checkpoint
    fake.plan = FaultPlan(permanent_after=1, permanent_kind="missing", matches=recent)
    batches, ctx = _sessions(_bastion_blob_config(config), env)
    (error,) = ctx.scope_errors
    assert error.scope.endswith(names["recent"]) and "404" in error.message
    assert "deleted after the listing" in (error.remediation or "")
    assert batches[0].sessions == () and batches[0].checkpoint is None
