"""Cloud faults at the network seam, Azure: the real SDK clients against the local HTTPS fake,
which answers the calls a seeded ``FaultPlan`` draws with a fault made on the wire (429 /
ServerBusy, 500 / 503, withheld answers, TCP resets, expired tokens, truncated and missing
blobs; see tests/providers/azure/fakefaults.py).

Transient faults (30% of calls, never more than ``max_consecutive`` in a row for one request)
must leave no trace: the audit finds exactly what a clean run finds. A permanent outage of
part of the scope ends in ScopeErrors and exit 4 with the rest audited, and the next run,
with the outage over, reads what was missed because the failed units' checkpoints stood still.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import agent.cli
from agent.assembly import Plugins, build_classifier, build_engine
from agent.cli import run
from agent.config import AppConfig
from agent.contracts import AuditWindow, SourceEnv
from agent.enrich import GeoEnricher
from agent.models import AuditRun
from agent.pipeline import run_audit
from agent.store import open_store
from providers.azure.client import AzureClient
from providers.azure.config import AzureConfig
from providers.azure.provider import AzureSource
from tests.providers.azure.azfixtures import (
    FLOW_ACCOUNT,
    H100_ID,
    NOW,
    NSG_CONTAINER,
    SUB_A,
    make_ctx,
    seed_arm,
)
from tests.providers.azure.faultworld import (
    Served,
    credential,
    seed_world,
    serve,
    source_config,
)
from tests.reliability.faultlab import TRANSIENT_KINDS, FaultPlan, fault_figures, seeds

Report = Callable[[str, dict[str, Any]], None]
SCHEDULED = AuditWindow(since=None, until=None, explicit=False)
ALL_KINDS = (*TRANSIENT_KINDS, "expired", "truncated", "missing")
SEED = 0


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve() as running:
        yield running


@pytest.fixture
def world(served: Served) -> Served:
    """The seeded world; the fake's token endpoint issues one-minute tokens (azure-identity
    then fetches a new token for every call, as it does for any token near its expiry)."""
    served.fake.reset()
    seed_world(served.fake)
    served.fake.token_lifetime = 60
    return served


def _audit(world: Served, store_url: str, plan: FaultPlan | None) -> None:
    """One scheduled audit through the pipeline, signing in with a service principal."""
    world.fake.plan = plan
    config = AzureConfig.model_validate(source_config(world))
    env = SourceEnv(name="azure", base_dir=world.ca_file.parent, clock=lambda: NOW)
    client = AzureClient.from_config(config, environ={}, credential=credential(world))
    source = AzureSource(config, env=env, client=client)
    app = AppConfig.model_validate({"store": store_url})
    try:
        with (
            GeoEnricher.from_config(app.geo, base_dir=app.base_dir) as enricher,
            open_store(store_url) as store,
        ):
            run_audit(
                plugins=Plugins(inventories=[], sources=[source]),
                store=store,
                engine=build_engine(app, clock=lambda: NOW),
                enricher=enricher,
                classifier=build_classifier(app),
                window=SCHEDULED,
                clock=lambda: NOW,
            )
    finally:
        source.close()
        world.fake.plan = None


@dataclass(frozen=True)
class Stored:
    """What a store holds: finding ids, session ids, checkpoints and its latest run."""

    findings: set[str]
    sessions: set[str]
    checkpoints: dict[str, str]
    last_run: AuditRun


def _stored(store_url: str) -> Stored:
    with open_store(store_url) as store:
        (last_run,) = store.list_runs(limit=1)
        return Stored(
            findings={f.id for f in store.list_findings(limit=100_000)},
            sessions={s.session_id for s in store.list_sessions()},
            checkpoints=store.list_checkpoints(),
            last_run=last_run,
        )


@pytest.mark.parametrize("seed", seeds(SEED))
def test_with_30_percent_of_calls_failing_transiently_the_azure_audit_finds_exactly_what_a_clean_run_finds(  # noqa: E501
    seed: int, world: Served, tmp_path: Path, report: Report
) -> None:
    clean_url, faulted_url = f"sqlite:///{tmp_path}/clean.db", f"sqlite:///{tmp_path}/faulted.db"
    _audit(world, clean_url, None)
    plan = FaultPlan(rate=0.3, seed=seed, kinds=ALL_KINDS, cover=True)
    _audit(world, faulted_url, plan)
    clean, faulted = _stored(clean_url), _stored(faulted_url)
    what = ("findings", "sessions", "checkpoints")
    identical = all(getattr(faulted, name) == getattr(clean, name) for name in what)
    report(
        f"faults-azure-transient-{seed}",
        fault_figures(
            plan,
            provider="azure",
            scenario="30% transient",
            findings=len(clean.findings),
            sessions=len(clean.sessions),
            identical=identical,
            scope_errors=len(faulted.last_run.scope_errors),
            status=faulted.last_run.status.value,
            tokens_issued=len(world.fake.issued),
        ),
    )
    assert clean.last_run.status.value == "complete" and len(clean.findings) >= 5
    assert set(plan.tally) == set(ALL_KINDS), plan.tally  # SEED makes every kind happen
    assert plan.faults > 0.15 * plan.calls
    assert faulted.last_run.scope_errors == ()
    assert faulted.last_run.status.value == "complete"
    assert faulted.findings == clean.findings
    assert faulted.sessions == clean.sessions
    assert faulted.checkpoints == clean.checkpoints
    counts = faulted.last_run.counts
    assert counts == clean.last_run.counts
    assert counts.read == counts.sessions + counts.ignored + counts.quarantined


def test_a_token_that_expires_mid_run_is_renewed_and_the_call_sent_again(
    served: Served, tmp_path: Path
) -> None:
    fake = served.fake
    fake.reset()
    seed_arm(fake)
    fake.token_lifetime = 60
    fake.plan = FaultPlan(rate=1.0, kinds=("expired",), max_consecutive=2)  # 2 per request
    config = AzureConfig.model_validate(
        source_config(served, subscriptions=[SUB_A], retry_total=2, streams=["activity"])
    )
    client = AzureClient.from_config(config, environ={}, credential=credential(served))
    source = AzureSource(config, env=SourceEnv("azure", tmp_path, lambda: NOW), client=client)
    ctx = make_ctx()
    instances = {i.instance_id for i in source.inventory(ctx)}
    source.close()
    assert H100_ID in instances and ctx.scope_errors == []
    sent: dict[str, list[str]] = {}
    for (_, path), token in zip(fake.requests, fake.bearers, strict=True):
        sent.setdefault(path, []).append(token)
    assert sent and all(len(set(tokens)) == len(tokens) == 3 for tokens in sent.values())
    assert all(t in fake.issued for tokens in sent.values() for t in tokens)  # all fresh
    assert fake.plan.tally["expired"] == 2 * len(sent)


def _write_config(world: Served, folder: Path, store: str) -> Path:
    path = folder / f"{store}.yaml"
    document = {"store": f"sqlite:///{folder / store}.db", "sources": [source_config(world)]}
    path.write_text(yaml.safe_dump(document))
    return path


def _cli_audit(config: Path) -> int:
    return run(["audit", "-c", str(config), "--format", "json", "--no-progress"])


def _outage(identity: str) -> bool:
    """Sub A's Activity Log, and every read of an NSG flow-log blob (listing still works)."""
    lower = identity.lower()
    activity = f"get /subscriptions/{SUB_A}/providers/microsoft.insights/eventtypes/"
    nsg_blob = f"get /mlflowlogs/{NSG_CONTAINER}/"
    return lower.startswith(activity) or lower.startswith(nsg_blob)


def test_a_permanent_azure_outage_ends_in_scope_errors_exit_4_and_the_next_run_picks_up_the_rest(
    world: Served,
    tmp_path: Path,
    report: Report,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(agent.cli, "_now", lambda: NOW)  # scheduled runs at the world's "now"
    assert _cli_audit(_write_config(world, tmp_path, "clean")) == 0
    clean = _stored(f"sqlite:///{tmp_path}/clean.db")
    config = _write_config(world, tmp_path, "outage")
    plan = FaultPlan(permanent_after=1, permanent_kind="server-error", matches=_outage)
    world.fake.plan = plan
    capsys.readouterr()
    first_code = _cli_audit(config)
    stderr = capsys.readouterr().err
    world.fake.plan = None
    first = _stored(f"sqlite:///{tmp_path}/outage.db")
    next_code = _cli_audit(config)
    after = _stored(f"sqlite:///{tmp_path}/outage.db")
    errors = first.last_run.scope_errors
    report(
        "faults-azure-permanent",
        fault_figures(
            plan,
            provider="azure",
            scenario="permanent",
            exit_code=first_code,
            scope_errors=len(errors),
            findings_first_run=len(first.findings),
            missed_first_run=len(clean.findings - first.findings),
            findings=len(clean.findings),
            next_exit_code=next_code,
            recovered_identical=after.findings == clean.findings,
        ),
    )
    assert first_code == 4 and plan.faults > 0
    nsg = f"{FLOW_ACCOUNT}/{NSG_CONTAINER}/"
    assert f"subscriptions/{SUB_A}" in {e.scope for e in errors}
    assert any(e.scope.startswith(nsg) for e in errors)
    assert all(e.code == "unavailable" and e.remediation for e in errors)
    assert f"subscriptions/{SUB_A}" in stderr and "hint:" in stderr
    # the rest was audited, and the failed units' checkpoints stood still
    assert set() < first.findings < clean.findings
    failed_units = {f"azure:activity:{SUB_A}", f"azure:flow-logs:{nsg}"}
    assert failed_units <= set(clean.checkpoints)
    assert set(first.checkpoints) == set(clean.checkpoints) - failed_units
    # the next scheduled run, with the outage over, reads what was missed
    assert next_code == 0
    assert after.findings == clean.findings
    assert after.checkpoints == clean.checkpoints
