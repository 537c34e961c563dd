"""agent.watch with the other kinds of source: whole files listed once each (CloudTrail
deliveries) and cloud sources polled with their checkpoints; failures stay partial."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from agent.assembly import Plugins, build_classifier, build_engine
from agent.config import AppConfig
from agent.contracts import CollectContext, SessionBatch
from agent.enrich import GeoEnricher
from agent.models import AccessMethod, AuditRun, RunStatus, Session, Severity
from agent.watch import WatchOptions, watch_loop
from tests.agent.watch.watchbed import ACCOUNT, CN_IP, INSTANCE, WatchBed, accepted, append, now

SAMPLE = Path(__file__).resolve().parents[3] / "agent" / "sample" / "cloudtrail"
PLAIN = "444455556666_CloudTrail_eu-west-1_20261125T0915Z_sample.json"
GZIPPED = "111122223333_CloudTrail_us-east-1_20261124T1915Z_sample.json.gz"
GUARD_SECONDS = 60


def trail_bed(bed: WatchBed) -> Path:
    trails = bed.root / "trails"
    trails.mkdir()
    bed.extra_sources.append({"type": "cloudtrail-files", "paths": ["trails/*.json*"]})
    return trails


def test_each_delivered_cloudtrail_file_is_read_once(bed: WatchBed) -> None:
    trails = trail_bed(bed)
    shutil.copy(SAMPLE / PLAIN, trails / PLAIN)
    first = bed.run()
    assert first.counts.read == 3
    shutil.copy(SAMPLE / GZIPPED, trails / GZIPPED)
    second = bed.run()
    assert second.counts.read == 12  # only the new delivery
    assert bed.run().counts.read == 0  # nothing new: nothing read, across restarts too
    scopes = {f"watch:cloudtrail-files[1]:{trails / n}" for n in (PLAIN, GZIPPED)}
    with bed.store() as db:
        assert scopes <= set(db.list_checkpoints())


def test_a_rewritten_delivery_is_read_again(bed: WatchBed) -> None:
    trails = trail_bed(bed)
    shutil.copy(SAMPLE / PLAIN, trails / PLAIN)
    bed.run()
    (trails / PLAIN).write_text((SAMPLE / PLAIN).read_text() + "\n")
    assert bed.run().counts.read == 3


def test_a_corrupt_delivery_is_a_scope_error_and_followed_files_still_work(bed: WatchBed) -> None:
    trails = trail_bed(bed)
    (trails / "broken.json.gz").write_bytes(b"\x1f\x8b not really gzip")
    append(bed.log, accepted("ann", CN_IP, pid=7))
    run = bed.run()
    assert run.status is RunStatus.PARTIAL
    assert [e.code for e in run.scope_errors] == ["corrupt_gzip"]
    assert [s.principal for s in bed.sessions()] == ["ann"]


class PolledSource:
    """A cloud-like source: each poll returns one session after its checkpoint."""

    name = "fake-cloud"
    scope = "fake-cloud:acct"

    def __init__(self, *, polls_wanted: int = 3, fail: bool = False) -> None:
        self.seen: list[str | None] = []
        self.fail = fail
        self.enough = threading.Event()
        self.polls_wanted = polls_wanted

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        checkpoint = ctx.checkpoint(self.scope)
        self.seen.append(checkpoint)
        if len(self.seen) >= self.polls_wanted:
            self.enough.set()
        if self.fail:
            raise RuntimeError("the cloud API is down")
        n = int(checkpoint or 0) + 1
        session = Session(
            key=f"event-{n}",
            provider="aws",
            source=self.name,
            account=ACCOUNT,
            instance_id=INSTANCE,
            source_ip=CN_IP,
            method=AccessMethod.SSM_SESSION,
            started_at=datetime(2026, 11, 28, 10, n, tzinfo=UTC),
        )
        yield SessionBatch(
            unit="acct", sessions=(session,), checkpoint_scope=self.scope, checkpoint=str(n)
        )


def run_polled(bed: WatchBed, source: PolledSource) -> AuditRun:
    config = AppConfig(store=bed.store_url, base_dir=bed.root)
    stop = threading.Event()
    ticks = itertools.count(0.0, 1000.0)  # every interval has passed at every look
    result: list[AuditRun] = []
    with GeoEnricher.from_config(config.geo, base_dir=bed.root) as enricher, bed.store() as db:
        worker = threading.Thread(
            target=lambda: result.append(
                watch_loop(
                    plugins=Plugins(inventories=[], sources=[source]),
                    store=db,
                    engine=build_engine(config, clock=now),
                    enricher=enricher,
                    classifier=build_classifier(config),
                    clock=now,
                    stop=stop,
                    options=WatchOptions(follow_interval=0.01, poll_interval=5.0),
                    monotonic=lambda: next(ticks),
                )
            )
        )
        worker.start()
        try:
            assert source.enough.wait(GUARD_SECONDS)
        finally:
            stop.set()
            worker.join(GUARD_SECONDS)
    (run,) = result
    return run


def test_cloud_sources_are_polled_from_their_own_checkpoints(bed: WatchBed) -> None:
    source = PolledSource()
    run = run_polled(bed, source)
    assert source.seen[:3] == [None, "1", "2"]
    keys = sorted(s.key for s in bed.sessions())
    assert keys == sorted(f"event-{n}" for n in range(1, len(source.seen) + 1))
    assert run.status is RunStatus.COMPLETE


def test_a_failing_cloud_source_is_one_scope_error_however_often_it_fails(bed: WatchBed) -> None:
    source = PolledSource(fail=True)
    run = run_polled(bed, source)
    assert len(source.seen) >= 3
    assert [(e.source, e.code) for e in run.scope_errors] == [("fake-cloud", "internal_error")]
    assert run.status is RunStatus.PARTIAL


K8S_AUDIT = Path(__file__).resolve().parents[2] / "data" / "k8s" / "audit" / "gpu-lab"
NODE = "ip-10-0-1-23.ec2.internal"


def _exec_from(ip: str, audit_id: str) -> str:
    """The fixture's exec into ml-team/trainer-0, from ``ip``, as one completed request."""
    line = next(
        raw for raw in (K8S_AUDIT / "audit.log").read_text().splitlines() if "trainer-0/exec" in raw
    )
    event = json.loads(line)
    event.update({"auditID": audit_id, "sourceIPs": [ip], "stage": "ResponseComplete"})
    return json.dumps(event)


def test_exec_into_a_gpu_pod_from_a_restricted_country_in_a_new_audit_file_is_high(
    bed: WatchBed,
) -> None:
    folder = bed.root / "k8s"
    folder.mkdir()
    bed.extra_sources.append(
        {
            "type": "kubernetes-audit",
            "cluster": "gpu-lab",
            "paths": ["k8s/*.log"],
            "nodes": {"ml-team/trainer-0": NODE},
        }
    )
    bed.extra_inventory.append(f"kubernetes,gpu-lab,,{NODE},,,,,nvidia-h100,8\n")
    append(folder / "audit.log", _exec_from("203.0.113.10", "a-1"))
    bed.run()
    append(folder / "audit-2.log", _exec_from(CN_IP, "a-2"))  # a file the glob gains later
    run = bed.run()
    assert run.counts.read == 1
    (finding,) = [f for f in bed.findings() if f.session.source_ip == CN_IP]
    assert finding.severity is Severity.HIGH
    assert finding.session.instance_id == NODE
    assert finding.session.method is AccessMethod.KUBERNETES_EXEC
