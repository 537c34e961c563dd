"""``policy test``, ``replay``, ``data update`` and the detection context of ``audit``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agent.cli import run
from agent.store import open_store
from agent.store.schema_detection import PrincipalHistoryRow

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "agent" / "sample"
PACK = ROOT / "policies" / "packs" / "export-controls.yaml"
REPUTATION = ROOT / "tests" / "data" / "reputation"


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bundled sample with its store in the copy; no user data folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHIPWARDEN_DATA_DIR", str(tmp_path / "userdata"))
    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE, folder)
    cfg = folder / "config.yaml"
    cfg.write_text(cfg.read_text() + "store: sqlite:///audit.db\n")
    return folder


def _audit(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    code = run(["audit", "-c", str(cfg), "--format", "json", "--no-progress"])
    return code, json.loads(capsys.readouterr().out)


def test_policy_test_passes_on_the_bundled_packs(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["policy", "test", "builtin"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert " passed, 0 failed; " in out
    total = out.rsplit("; ", 1)[1].split(" ", 1)[0]
    covered, policies = total.split("/")
    assert covered == policies


def _folder_with(tmp_path: Path, cases: str) -> Path:
    folder = tmp_path / "packs"
    folder.mkdir()
    shutil.copy(PACK, folder / PACK.name)
    (folder / "export-controls.cases.yaml").write_text(cases, encoding="utf-8")
    return folder


def test_policy_test_fails_on_a_wrong_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder_with(
        tmp_path,
        "- name: china-claimed-low\n"
        "  covers: ec-high-d5-or-macau-to-controlled\n"
        "  instance: {instance_type: p5.48xlarge, accelerators: [{model: nvidia-h100, count: 8}]}\n"
        "  intel: {country: CN}\n"
        "  expect: {policy: ec-high-d5-or-macau-to-controlled, severity: low}\n",
    )

    code = run(["policy", "test", str(folder), "--no-require-coverage"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL china-claimed-low" in out and "expected severity low, got high" in out


def test_policy_test_fails_when_a_policy_has_no_case_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder_with(
        tmp_path,
        "- name: us-is-fine\n  instance: null\n  intel: {country: US}\n  expect: {policy: null}\n",
    )

    strict = run(["policy", "test", str(folder)])
    err = capsys.readouterr().err
    lenient = run(["policy", "test", str(folder), "--no-require-coverage"])

    assert (strict, lenient) == (1, 0)
    assert "uncovered ec-high-hq-test-owner-in-macau-or-d5" in err


def test_audit_applies_the_headquarters_test_and_remembers_principals(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample / "owners.csv").write_text(
        "provider,account,owner,ultimate_parent,parent_hq_country\n"
        'aws,111122223333,"Acme Cloud SG Pte. Ltd.","Acme Holdings Co., Ltd.",CN\n'
    )
    cfg = sample / "config.yaml"
    cfg.write_text(cfg.read_text() + "ownership:\n  - path: owners.csv\n")

    code, findings = _audit(cfg, capsys)

    assert code == 0
    hq = [f for f in findings if f["policy_id"] == "ec-high-hq-test-owner-in-macau-or-d5"]
    by_ip = {f["session"]["source_ip"]: f for f in hq}
    assert "52.94.76.1" in by_ip  # the US operator: flagged only through ownership
    assert "1.2.4.8" not in by_ip  # a CN source stays with the source-country policy
    us = by_ip["52.94.76.1"]
    assert us["severity"] == "high"
    assert any(
        "ultimate parent Acme Holdings Co., Ltd., headquartered in CN" in r for r in us["reasons"]
    )
    with open_store(f"sqlite:///{sample / 'audit.db'}") as db, db.engine.connect() as conn:
        remembered = conn.scalar(select(func.count()).select_from(PrincipalHistoryRow))
    assert remembered and remembered > 0


def test_replay_prints_what_a_candidate_pack_changes_and_writes_nothing(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = sample / "config.yaml"
    _audit(cfg, capsys)
    with open_store(f"sqlite:///{sample / 'audit.db'}") as db:
        before = [f.model_dump() for f in db.list_findings(limit=1000)]
    candidate = tmp_path / "candidate.yaml"
    text = PACK.read_text()
    marker = (
        "  - id: ec-high-d5-or-macau-to-controlled\n"
        "    title: Access to 3A090 accelerators from Macau or Country Group D:5\n"
        "    severity: high\n"
    )
    assert marker in text
    candidate.write_text(text.replace(marker, marker.replace("severity: high", "severity: medium")))

    code = run(
        [
            "replay",
            "-c",
            str(cfg),
            "--since",
            "3650d",
            "--policy",
            str(candidate),
            "--format",
            "json",
        ]
    )

    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert code == 0
    assert rows and {r["change"] for r in rows} == {"severity"}
    assert {(r["old_severity"], r["new_severity"]) for r in rows} == {("high", "medium")}
    assert "nothing was written" in captured.err
    with open_store(f"sqlite:///{sample / 'audit.db'}") as db:
        assert [f.model_dump() for f in db.list_findings(limit=1000)] == before


def test_data_update_imports_a_folder_into_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "fetched"
    shutil.copytree(REPUTATION, src)

    undated = run(["data", "update", "--from", str(src), "--to", str(tmp_path / "a")])
    undated_err = capsys.readouterr().err
    code = run(
        ["data", "update", "--from", str(src), "--to", str(tmp_path / "b"), "--date", "2025-07-25"]
    )

    out = capsys.readouterr().out
    assert undated == 4 and "cannot date this Azure Service Tags" in undated_err
    assert code == 0
    assert "imported tor-exit-addresses 2026-06-30" in out
    assert "imported azure-service-tags 2025-07-25" in out
    assert (tmp_path / "b" / "sources.yaml").is_file()


def test_data_update_rejects_a_bad_date_option(tmp_path: Path) -> None:
    assert run(["data", "update", "--from", str(tmp_path), "--date", "yesterday"]) == 2
