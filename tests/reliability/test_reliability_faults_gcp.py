"""Cloud faults at the network seam, Google Cloud: the real google-cloud clients against the
fake Google APIs (tests/providers/gcp/fakegcp.py), which make each fault of a seeded
``FaultPlan`` for real on the wire: 429 with Retry-After, 500/503, an answer later than the read
timeout, a reset connection, a truncated body, a listed machine type answering 404, and an
access token that expires mid-run (google-auth gets a new one from the fake's /token).

The world is an organization of three projects (tests/providers/gcp/faultworld.py) whose
sessions yield findings in every project. Transient faults must leave no trace in the results;
a permanent outage must be reported (ScopeErrors, exit 4) and healed by the next run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from agent.cli import run
from agent.config import load_config
from agent.pipeline import AuditResult
from agent.store import open_store
from providers.gcp.config import ALL_STREAMS
from tests.providers.gcp.fakegcp import FakeGcpServer
from tests.providers.gcp.faultworld import World, build_world, credentials_file, source_config
from tests.reliability.faultlab import TRANSIENT_KINDS, FaultPlan, fault_figures, seeds
from tests.support.audit import scheduled_audit

Report = Callable[[str, dict[str, Any]], None]

READ_TIMEOUT = 0.5  # the client's per-attempt read timeout; a "timeout" answers after 2x that
RETRY = {"initial": 0.001, "maximum": 0.001, "multiplier": 1, "deadline": 30, "attempts": 5}
KINDS = (*TRANSIENT_KINDS, "truncated", "missing", "expired")
SEED = 28  # cover=True injects every kind at least once whatever the seed (1-40 all identical)
VOLATILE = {"first_seen", "last_seen", "run_id"}


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[FakeGcpServer]:
    server = FakeGcpServer().start()
    yield server
    server.stop()


@pytest.fixture
def world(gcp_server: FakeGcpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A fresh organization and real google-auth credentials refreshed at the fake."""
    fake = gcp_server.reset()
    fake.fault_delay = 2 * READ_TIMEOUT
    adc = credentials_file(tmp_path / "adc.json", token_url=f"{fake.url}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    return build_world(fake, now=datetime.now(UTC))


def write_config(world: World, folder: Path, name: str, *, batch_size: int = 1) -> Path:
    """A config with its own SQLite store: the GCP source only."""
    path = folder / f"{name}.yaml"
    source = source_config(world, retry=RETRY, timeout=READ_TIMEOUT, batch_size=batch_size)
    path.write_text(yaml.safe_dump({"store": f"sqlite:///{folder / name}.db", "sources": [source]}))
    return path


def audit(config: Path, world: World) -> AuditResult:
    """One scheduled audit through the pipeline, clock at the world's ``now``."""
    return scheduled_audit(config, now=world.now)


def stored(config: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(findings by id, sessions by id, checkpoints) of a config's store, run fields left out."""
    cfg, _ = load_config(config)
    with open_store(cfg.store) as store:
        findings = {
            f.id: f.model_dump(mode="json", exclude=VOLATILE)
            for f in store.list_findings(limit=10_000)
        }
        sessions = {s.session_id: s.model_dump(mode="json") for s in store.list_sessions()}
        return findings, sessions, store.list_checkpoints()


def cli_audit(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``chipwarden audit`` as a scheduled run; (exit code, stderr)."""
    code = run(["audit", "--config", str(config), "--format", "json", "--no-progress"])
    out = capsys.readouterr()
    json.loads(out.out)  # the findings went out as JSON
    return code, out.err


@pytest.mark.parametrize("seed", seeds(SEED))
def test_with_30_percent_of_calls_failing_transiently_the_gcp_audit_finds_exactly_what_a_clean_run_finds(  # noqa: E501
    seed: int, world: World, tmp_path: Path, report: Report
) -> None:
    fake = world.fake
    clean_config = write_config(world, tmp_path, "clean")
    with capture_logs() as clean_logs:
        clean = audit(clean_config, world)
    clean_grants = len(fake.token_grants)

    plan = FaultPlan(rate=0.3, seed=seed, kinds=KINDS, cover=True)
    fake.plan = plan
    faulted_config = write_config(world, tmp_path, "faulted")
    with capture_logs() as logs:
        faulted = audit(faulted_config, world)
    fake.plan = None
    clean_findings, clean_sessions, clean_checkpoints = stored(clean_config)
    findings, sessions, checkpoints = stored(faulted_config)
    counts = faulted.run.counts
    refreshes = len(fake.token_grants) - clean_grants - 1  # the first grant is no refresh
    report(
        f"faults-gcp-transient-{seed}",
        fault_figures(
            plan,
            provider="gcp",
            scenario="30% transient",
            findings=len(clean_findings),
            sessions=len(clean_sessions),
            identical=findings == clean_findings and sessions == clean_sessions,
            scope_errors=len(faulted.run.scope_errors),
            status=faulted.run.status.value,
            token_refreshes=refreshes,
            read=counts.read,
        ),
    )

    # The reference is worth comparing with: complete, findings in every project.
    assert clean.run.status.value == "complete" and clean.run.scope_errors == ()
    assert {f.session.account for f in clean.findings} == set(world.projects)
    assert len(clean.findings) >= 9
    assert not [e for e in clean_logs if e["event"] == "gcp_call_retry"]

    # Every kind was made on the wire, none of them more than the plan allows in a row.
    assert plan.faults > 0 and set(plan.tally) == set(KINDS), dict(plan.tally)
    assert fake.produced == plan.tally
    assert refreshes == plan.tally["expired"]  # google-auth got a new token for each
    retried = {e["kind"] for e in logs if e["event"] == "gcp_call_retry"}
    assert retried == {"throttle", "server-error", "timeout", "connection", "truncated", "missing"}

    # ... and none of them shows in the results.
    assert faulted.run.status.value == "complete" and faulted.run.scope_errors == ()
    assert not [e for e in logs if e["event"] in ("gcp_machine_type_fallback", "gcp_scope_error")]
    assert sorted(findings) == sorted(clean_findings) == sorted(f.id for f in clean.findings)
    assert findings == clean_findings  # same policies, sessions, targets, intel
    assert sessions == clean_sessions
    assert checkpoints == clean_checkpoints
    assert counts.read == counts.sessions + counts.ignored + counts.quarantined
    assert counts.model_dump() == clean.run.counts.model_dump()  # nothing read twice or lost


def _after_first(predicate: Callable[[str], bool]) -> Callable[[str], bool]:
    """``predicate``, except for its first match (that call goes through)."""
    seen = count()
    return lambda identity: predicate(identity) and next(seen) > 0


def _lab_logging(identity: str) -> bool:
    return identity.startswith("POST /v2/entries:list") and '"projects/gpu-lab"' in identity


def test_a_permanent_gcp_outage_ends_in_scope_errors_exit_4_and_the_next_run_picks_up_the_rest(
    world: World, tmp_path: Path, report: Report, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world.fake
    clean_config = write_config(world, tmp_path, "clean", batch_size=1000)
    clean_code, _ = cli_audit(clean_config, capsys)
    clean_findings, clean_sessions, clean_checkpoints = stored(clean_config)

    # gpu-lab's Logging API breaks for good after answering its first page (one IAP tunnel).
    plan = FaultPlan(
        permanent_after=1, permanent_kind="server-error", matches=_after_first(_lab_logging)
    )
    fake.plan = plan
    config = write_config(world, tmp_path, "scheduled", batch_size=1000)
    first_code, err = cli_audit(config, capsys)
    fake.plan = None
    findings, sessions, checkpoints = stored(config)

    # The next scheduled run, the outage over.
    second_code, _ = cli_audit(config, capsys)
    recovered, recovered_sessions, recovered_checkpoints = stored(config)
    cfg, _ = load_config(config)
    with open_store(cfg.store) as store:
        second, first = store.list_runs()
    missed = set(clean_findings) - set(findings)
    report(
        "faults-gcp-permanent",
        fault_figures(
            plan,
            provider="gcp",
            scenario="permanent",
            exit_code=first_code,
            scope_errors=len(first.scope_errors),
            findings=len(clean_findings),
            findings_first_run=len(findings),
            missed_first_run=len(missed),
            next_exit_code=second_code,
            recovered_identical=recovered == clean_findings
            and recovered_sessions == clean_sessions,
        ),
    )

    assert clean_code == 0
    lab = {k for k, f in clean_findings.items() if f["session"]["account"] == "gpu-lab"}
    assert lab and len(lab) < len(clean_findings)

    assert first_code == 4
    assert first.status.value == "partial"
    c = first.counts
    assert c.read == c.sessions + c.ignored + c.quarantined  # what was read was committed
    (error,) = first.scope_errors  # one cause, naming every stream it left unread
    assert (error.scope, error.code) == ("projects/gpu-lab", "unavailable")
    assert all(stream in error.message for stream in ALL_STREAMS)
    assert error.remediation and "next scheduled run" in error.remediation
    assert "projects/gpu-lab" in err and "hint:" in err
    assert plan.faults == RETRY["attempts"] * len(ALL_STREAMS)  # bounded: every stream gave up

    # The other projects were audited in full; gpu-lab up to its first page.
    assert all(clean_sessions.get(key) == value for key, value in sessions.items())
    assert missed and missed <= lab
    assert set(findings) - lab == set(clean_findings) - lab
    assert {k: v for k, v in checkpoints.items() if ":gpu-lab:" not in k} == {
        k: v for k, v in clean_checkpoints.items() if ":gpu-lab:" not in k
    }
    lab_marks = {k: v for k, v in checkpoints.items() if ":gpu-lab:" in k}
    assert list(lab_marks) == ["gcp:gpu-lab:iap"]  # the page read before the outage, committed
    assert lab_marks["gcp:gpu-lab:iap"] < clean_checkpoints["gcp:gpu-lab:iap"]

    # The next run reads what was missed, and only that.
    assert second_code == 0
    assert second.status.value == "complete" and second.scope_errors == ()
    assert recovered == clean_findings
    assert recovered_sessions == clean_sessions
    assert recovered_checkpoints == clean_checkpoints
    assert second.counts.new_findings == len(missed)
