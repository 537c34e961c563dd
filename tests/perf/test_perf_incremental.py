"""Incremental audits of file trees, checkpoint reads by folder, and coalesced commits."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event

from agent.assembly import build_classifier, build_engine, build_plugins
from agent.checkpoints import CheckpointReader
from agent.cli import run
from agent.config import load_config
from agent.contracts import AuditWindow
from agent.enrich import GeoEnricher
from agent.pipeline import run_audit
from agent.store import SqlStore, open_store
from bench import gen_cloudtrail
from providers.aws.files import parse_document

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trail")
    gen_cloudtrail.generate(root, size=1_800_000, files=90, session_share=0.1, seed=21)
    config = (root / "config.yaml").read_text()
    (root / "config.yaml").write_text(
        config.replace("paths: [trail]", "paths: [trail]\n    incremental: true")
    )
    return root


def audit(root: Path, store: str, *extra: str) -> SqlStore:
    code = run(
        [
            "audit",
            "-c",
            str(root / "config.yaml"),
            "--store",
            store,
            "-f",
            "jsonl",
            "-o",
            os.devnull,
            "--no-progress",
            *extra,
        ]
    )
    assert code in (0, 3)
    return open_store(store)


def last_run(store: SqlStore):  # type: ignore[no-untyped-def]
    return store.list_runs(limit=1)[0]


def test_a_second_audit_of_unchanged_files_reads_nothing_and_keeps_the_findings(
    trail: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with audit(trail, url) as db:
        first = last_run(db)
        findings = {f.id for f in db.list_findings(limit=10_000)}
        scopes = [s for s in db.list_checkpoints() if "|file|" in s]
    assert first.counts.read > 1000 and first.counts.findings > 0
    assert len(scopes) == 90
    with audit(trail, url) as db:
        second = last_run(db)
        assert {f.id for f in db.list_findings(limit=10_000)} == findings
    assert (second.counts.read, second.counts.sessions) == (0, 0)
    assert second.status.value == "complete"


def test_a_changed_file_is_read_again_and_only_it(trail: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    audit(trail, url).close()
    victim = sorted((trail / "trail").rglob("*.json.gz"))[3]
    data = victim.read_bytes()
    try:
        victim.write_bytes(data + b"\0")  # gzip padding: same records, new size and mtime
        with audit(trail, url) as db:
            again = last_run(db)
    finally:
        victim.write_bytes(data)
    assert again.counts.read == len(parse_document(data)) > 0


def test_an_explicit_window_reads_every_file_again(trail: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with audit(trail, url) as db:
        total = last_run(db).counts.read
    with audit(trail, url, "--since", "2026-11-01T00:00:00") as db:
        assert last_run(db).counts.read == total


def test_checkpoints_are_read_with_one_query_per_folder(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as db:
        for folder in ("a", "b", "c"):
            for i in range(10):
                db.set_checkpoint(f"src|file|/data/{folder}/{i}.json.gz", f"v{i}")
        db.set_checkpoint("src|file|/data/a_b/0.json.gz", "other folder")
        db.set_checkpoint("aws:cloudtrail:111122223333:us-east-1", "2026-11-24")
        reader = CheckpointReader(db)
        values = [reader(f"src|file|/data/{f}/{i}.json.gz") for f in "abc" for i in range(10)]
        assert values == [f"v{i}" for _ in range(3) for i in range(10)]
        assert reader("src|file|/data/a/missing.json.gz") is None
        assert reader.queries == 3
        assert reader("aws:cloudtrail:111122223333:us-east-1") == "2026-11-24"
        assert reader("src|file|/data/a_b/0.json.gz") == "other folder"


def test_consecutive_batches_share_one_commit_with_all_their_checkpoints(
    trail: Path, tmp_path: Path
) -> None:
    cfg, doc = load_config(trail / "config.yaml")
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as db, GeoEnricher() as enricher:
        commits: list[int] = []
        event.listen(db.engine, "commit", lambda _conn: commits.append(1))
        result = run_audit(
            plugins=build_plugins(cfg, doc=doc, clock=lambda: NOW),
            store=db,
            engine=build_engine(cfg, clock=lambda: NOW),
            enricher=enricher,
            classifier=build_classifier(cfg),
            window=AuditWindow(since=None, until=None),
            clock=lambda: NOW,
        )
        scopes = [s for s in db.list_checkpoints() if "|file|" in s]
    assert len(scopes) == 90
    assert result.run.counts.sessions > 0
    assert len(commits) < 20  # 90 files: 2 batch commits plus the run's own writes
