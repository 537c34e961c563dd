"""End-to-end CLI behaviour on the bundled sample data and on small configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import run

SAMPLE = Path(__file__).resolve().parents[2] / "agent" / "sample"


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _audit_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:
    code = run(["audit", "--format", "json", "--no-progress", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _by_ip(findings: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in findings:
        out.setdefault(f["session"]["source_ip"], []).append(f)
    return out


def test_sample_audit_flags_the_documented_sessions(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, findings = _audit_json(capsys, "--sample")
    assert code == 0
    severities = {ip: sorted(f["severity"] for f in fs) for ip, fs in _by_ip(findings).items()}
    assert severities["2.188.21.1"] == ["critical"]  # IR -> A100 (E:1 / OFAC)
    assert severities["175.45.176.1"] == ["critical", "medium"]  # KP: tunnel; failed ssh capped
    assert severities["202.175.3.3"] == ["high"]  # Macau -> L40S
    assert "high" in severities["1.2.4.8"]  # CN -> H100
    assert severities["14.160.0.1"] == ["medium"]  # VN (D:1 only) -> L4 (3A090.a via PD)
    assert severities["223.5.5.5"] == ["low"]  # CN -> T4, not controlled
    assert severities["31.9.0.1"] == ["medium"]  # SY denied attempt: capped
    assert severities["186.1.0.1"] == ["medium"]  # NI failed attempt: capped
    # US, DE and private sources produce nothing; the non-GPU t3.micro produces nothing.
    for quiet in ("52.94.76.1", "193.99.144.80", "10.1.0.5"):
        assert quiet not in severities
    targets = {f["session"]["instance_id"] for f in _by_ip(findings)["1.2.4.8"]}
    assert "i-0a1b2c3d4e5f60006" not in targets
    hk = _by_ip(findings)["202.45.84.58"][0]
    assert hk["indeterminate"] is True and hk["instance"]["in_inventory"] is False


def test_sample_finding_carries_the_documented_shape(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, findings = _audit_json(capsys, "--sample")
    ir = _by_ip(findings)["2.188.21.1"][0]
    assert set(ir) >= {"id", "policy_id", "severity", "title", "reasons", "status", "session",
                       "ip", "instance", "jurisdictions"}
    assert ir["status"] == "open" and ir["reasons"]
    assert ir["session"]["method"] == "ec2-instance-connect"
    assert ir["session"]["evidence"] and ir["session"]["started_at"].startswith("2026-11-24")
    assert ir["ip"]["country"] == "IR" and any("iptocc" in s for s in ir["ip"]["source"])
    assert ir["instance"]["type"] == "p4d.24xlarge"
    assert ir["instance"]["accelerators"] == [
        {"model": "nvidia-a100", "count": 8, "export_class": "3A090.a"}
    ]
    assert ir["jurisdictions"]


def test_rerunning_the_same_audit_creates_no_duplicates(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first = _audit_json(capsys, "--sample")
    _, second = _audit_json(capsys, "--sample")
    assert sorted(f["id"] for f in first) == sorted(f["id"] for f in second)
    code = run(["findings", "list", "--format", "json"])
    stored = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(f["id"] for f in stored) == sorted(f["id"] for f in first)
    firsts = {f["id"]: f["first_seen"] for f in first}
    for f in stored:
        assert f["first_seen"] == firsts[f["id"]]
        assert f["last_seen"] >= f["first_seen"]


def test_fail_on_high_exits_3_and_csv_has_one_row_per_finding(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = in_tmp / "findings.csv"
    code = run(["audit", "--sample", "--fail-on", "high", "--format", "csv", "-o", str(out)])
    assert code == 3
    lines = out.read_text().strip().splitlines()
    assert lines[0].startswith("id,policy_id,severity")
    _, findings = _audit_json(capsys, "--sample")
    assert len(lines) - 1 == len(findings)


def test_a_glob_matching_nothing_makes_the_run_partial_exit_4(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = in_tmp / "cw.yaml"
    cfg.write_text("sources:\n  - type: cloudtrail-files\n    paths: ['nothing/*.json']\n")
    code = run(["audit", "--config", str(cfg), "--format", "json", "--fail-on", "info"])
    captured = capsys.readouterr()
    assert code == 4
    assert "nothing/*.json" in captured.err


def test_config_error_exits_2_with_file_and_key(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = in_tmp / "cw.yaml"
    cfg.write_text("geo:\n  county_db: builtin\n")
    code = run(["audit", "--config", str(cfg)])
    assert code == 2
    assert f"{cfg}:2: geo.county_db: unknown key" in capsys.readouterr().err


def test_policy_validate_reports_file_and_line(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = in_tmp / "bad.yaml"
    bad.write_text(
        "pack: mine\nversion: '1'\npolicies:\n"
        "  - id: p1\n    title: t\n    severity: severe\n"
        "    match: {type: source-country-in, countries: [CN]}\n"
    )
    assert run(["policy", "validate", str(bad)]) == 2
    assert f"{bad}:6" in capsys.readouterr().err
    assert run(["policy", "validate"]) == 0
    assert "OK:" in capsys.readouterr().out


def test_inventory_lists_gpu_instances_with_export_class(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["inventory", "--sample", "--format", "json"]) == 0
    rows = {r["instance_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert "i-0a1b2c3d4e5f60006" not in rows  # t3.micro: no GPU
    h100 = rows["i-0a1b2c3d4e5f60001"]["accelerators"][0]
    assert h100 == {"model": "nvidia-h100", "count": 8, "export_class": "3A090.a"}
    t4 = rows["i-0a1b2c3d4e5f60005"]["accelerators"][0]
    assert t4["export_class"] == "not-controlled"


def test_ip_lookup_shows_lists_and_classifies_non_ips(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ip", "lookup", "202.45.84.58", "10.0.0.1", "ssm.amazonaws.com",
                "--format", "json"]) == 0
    hk, private, service = json.loads(capsys.readouterr().out)
    assert hk["country"] == "HK" and "EAR Country Group D:5" in " ".join(hk["lists"])
    assert private["kind"] == "private" and private["country"] is None
    assert service["kind"] == "service" and service["lists"] == []


def test_console_script_runs_the_sample_end_to_end(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("chipwarden")
    proc = subprocess.run(
        [str(exe), "audit", "--sample", "--format", "jsonl"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows and all(r["severity"] in {"critical", "high", "medium", "low", "info"} for r in rows)
    assert (tmp_path / "chipwarden.db").exists()
    assert "sessions from 2 sources" in proc.stderr


def test_unknown_option_value_is_a_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "--sample", "--format", "yaml"]) == 2
    assert "yaml" in capsys.readouterr().err
