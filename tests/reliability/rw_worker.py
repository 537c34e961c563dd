"""A second process on the audit's SQLite database: writes its own findings, reviews one,
reads everything back, until a stop file appears. Prints its tallies as one JSON line.

Run as ``python -m tests.reliability.rw_worker URL STOP_FILE``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.logging import configure_logging
from agent.models import (
    AccessMethod,
    Finding,
    FindingStatus,
    InstanceView,
    IpIntel,
    IpKind,
    Session,
    Severity,
    finding_id,
)
from agent.store import open_store

POLICY = "reliability/concurrent-writer"


def _finding(n: int) -> tuple[Session, Finding]:
    now = datetime.now(UTC)
    session = Session(
        key=f"rw-{n}",
        provider="aws",
        source="rw-worker",
        account="999999999999",
        source_ip="175.45.176.1",
        method=AccessMethod.SSH,
        started_at=now,
    )
    finding = Finding(
        id=finding_id(POLICY, session),
        policy_id=POLICY,
        severity=Severity.LOW,
        title="written by the concurrent worker",
        reasons=("concurrency test",),
        session=session,
        ip=IpIntel(ip="175.45.176.1", kind=IpKind.PUBLIC, country="KP"),
        instance=InstanceView(id=None, type=None, in_inventory=False),
        bundle_revision="rw",
        first_seen=now,
        last_seen=now,
    )
    return session, finding


def main(url: str, stop: Path) -> None:
    configure_logging(fmt="json", level="warning")  # stdout carries only the tally
    writes = reads = reviews = 0
    ids: list[str] = []
    with open_store(url) as store:
        while not stop.exists() or writes == 0:
            session, finding = _finding(writes)
            store.commit_batch(
                findings=[finding], sessions=[session], checkpoint=("rw", str(writes)), run_id="rw"
            )
            ids.append(finding.id)
            writes += 1
            reviews += store.set_finding_status(ids[0], status=FindingStatus.ACKNOWLEDGED)
            store.list_findings(limit=200)
            store.count_findings()
            reads += 2
            time.sleep(0.01)
    print(json.dumps({"writes": writes, "reads": reads, "reviews": reviews, "ids": ids}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
