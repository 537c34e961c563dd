"""Four ``chipwarden audit --shard I/4`` processes at once against one PostgreSQL store find
exactly what one process finds, each finding once; a shard killed mid-run resumes from its
checkpoints. Real processes, a real PostgreSQL, local CloudTrail files."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from agent.cli import run
from agent.store import SqlStore, open_store
from bench import gen_cloudtrail
from providers.aws.files import parse_document

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get("CHIPWARDEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARDS = 4
KILL_AFTER = 80  # batches handed out before the kill: the first 64 are committed together


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("org-trail")
    gen_cloudtrail.generate(root, size=4_800_000, files=400, session_share=0.08, seed=8)
    (root / "config.yaml").write_text(
        "inventory: [{path: inventory.csv}]\n"
        "sources:\n  - {type: cloudtrail-files, paths: [trail], incremental: true}\n"
    )
    (root / "killing.yaml").write_text(
        "inventory: [{path: inventory.csv}]\n"
        "sources:\n"
        f"  - {{type: 'scale_plugins:KillingTrail', paths: [trail], kill_after: {KILL_AFTER}}}\n"
    )
    return root


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CHIPWARDEN_SKIP_PG") == "1":
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        pytest.fail(f"PostgreSQL unreachable at {PG_URL}: {exc}", pytrace=False)
    yield conn
    conn.close()


@pytest.fixture
def schema_url(pg: psycopg.Connection) -> Iterator[str]:
    name = f"cw_scale_{uuid.uuid4().hex[:10]}"
    yield f"{PG_URL}?schema={name}"
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def start(config: Path, store: str, *extra: str) -> subprocess.Popen[str]:
    code = "import sys; from agent.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    args = [
        "audit",
        "-c",
        str(config),
        "--store",
        store,
        "-f",
        "jsonl",
        "-o",
        os.devnull,
        "--no-progress",
        *extra,
    ]
    return subprocess.Popen(  # noqa: S603 - our interpreter, our module
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str]) -> int:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 3, -9), err[-2000:]  # -9: our own SIGKILL
    return proc.returncode


def snapshot(store: SqlStore) -> dict[str, tuple[str, str, str | None]]:
    return {
        f.id: (f.policy_id, f.session.session_id, f.ip.country)
        for f in store.list_findings(limit=100_000)
    }


@pytest.fixture(scope="module")
def reference(trail: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What one process finds (in this process, SQLite)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ref') / 'single.db'}"
    code = run(
        [
            "audit",
            "-c",
            str(trail / "config.yaml"),
            "--store",
            url,
            "-f",
            "jsonl",
            "-o",
            os.devnull,
            "--no-progress",
        ]
    )
    assert code in (0, 3)
    with open_store(url) as db:
        found = snapshot(db)
        read = db.list_runs(limit=1)[0].counts.read
    assert len(found) > 20
    return {"findings": found, "read": read}


def test_four_concurrent_shards_with_one_killed_and_restarted_find_what_one_process_finds(
    trail: Path, schema_url: str, reference: dict
) -> None:
    open_store(schema_url).close()  # migrate once; the shards then race only on data
    # Shard 0 dies (SIGKILL) after 80 files: its first coalesced commit (64 files) is kept.
    assert finish(start(trail / "killing.yaml", schema_url, "--shard", f"0/{SHARDS}")) == -9
    with open_store(schema_url) as db:
        done = [s.split("|file|", 1)[1] for s in db.list_checkpoints() if "|file|" in s]
        kept = snapshot(db)
    assert len(done) == 64
    assert kept and set(kept) < set(reference["findings"])
    already = sum(len(parse_document(Path(p).read_bytes())) for p in done)

    procs = [
        start(trail / "config.yaml", schema_url, "--shard", f"{i}/{SHARDS}") for i in range(SHARDS)
    ]
    assert all(finish(p) in (0, 3) for p in procs)
    with open_store(schema_url) as db:
        found = snapshot(db)
        runs = [r for r in db.list_runs(limit=10) if r.finished_at is not None]
    assert found == reference["findings"]
    assert sorted(r.id.rsplit("-", 1)[1] for r in runs) == [f"{i}of4" for i in range(SHARDS)]
    # Every record is read once overall: the restarted shard skipped what it had committed.
    assert sum(r.counts.read for r in runs) == reference["read"] - already
    assert all(r.counts.read > 0 for r in runs)
    # No finding was produced twice: each came from one shard (or the killed run's commit).
    assert sum(r.counts.findings for r in runs) == len(found) - len(kept)
