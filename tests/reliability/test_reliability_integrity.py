"""Data integrity: every finding records the policy bundle revision and the geo databases
used; a changed pack changes the revision, re-stamps re-seen findings and shows in
``chipwarden policy diff``."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from agent.assembly import build_engine
from agent.cli import run
from agent.config import load_config
from agent.store import open_store
from policies.loader import BUILTIN_PACKS_DIR

SAMPLE = Path(__file__).resolve().parents[2] / "agent" / "sample"


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """The bundled sample with its own copy of the export-controls pack."""
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("__init__.py", "*.pyc"))
    shutil.copy(BUILTIN_PACKS_DIR / "export-controls.yaml", root / "pack.yaml")
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["policies"] = ["pack.yaml"]
    config["store"] = f"sqlite:///{tmp_path / 'store.db'}"
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def _audit(config: Path) -> int:
    return run(["audit", "-c", str(config), "--no-progress", "-f", "jsonl", "-o", "/dev/null"])


def test_every_finding_records_the_bundle_revision_and_the_geo_databases_of_its_run(
    sample_copy: Path,
) -> None:
    config = sample_copy / "config.yaml"
    assert _audit(config) == 0
    cfg, _ = load_config(config)
    revision = build_engine(cfg, clock=lambda: datetime.now(UTC)).revision

    with open_store(cfg.store) as store:
        runs = {r.id: r for r in store.list_runs()}
        findings = store.list_findings(limit=10_000)

    assert findings
    for f in findings:
        ran = runs[f.run_id or ""]
        assert f.bundle_revision == ran.bundle_revision == revision
        assert ran.geo_sources, "the run names the geo databases it used"
        if f.ip.country:
            assert f.ip.sources and set(f.ip.sources) <= set(ran.geo_sources)
        else:
            assert f.ip.unknown_reason


def test_a_changed_pack_restamps_findings_and_shows_in_policy_diff(
    sample_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sample_copy / "config.yaml"
    original = sample_copy / "original.yaml"
    shutil.copy(sample_copy / "pack.yaml", original)
    assert _audit(config) == 0
    pack = sample_copy / "pack.yaml"
    pack.write_text(pack.read_text().replace("severity: high", "severity: critical", 1))
    assert _audit(config) == 0
    capsys.readouterr()

    assert run(["policy", "diff", str(original), str(pack), "-f", "json", "--exit-code"]) == 1
    changes = json.loads(capsys.readouterr().out)
    cfg, _ = load_config(config)
    with open_store(cfg.store) as store:
        newest = store.list_runs(1)[0]
        findings = store.list_findings(limit=10_000)

    assert [c["changes"] for c in changes] == [['severity: "high" -> "critical"']]
    assert changes[0]["to_revision"] == newest.bundle_revision != changes[0]["from_revision"]
    assert {f.bundle_revision for f in findings} == {newest.bundle_revision}
