"""The systemd units verify, are sandboxed, and start real chipwarden commands."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import run as cli_run

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
SERVICES = ("chipwarden.service", "chipwarden-watch.service", "chipwarden-audit.service")
UNITS = (*SERVICES, "chipwarden-audit.timer")
INSTALLED_BINARY = "/opt/chipwarden/bin/chipwarden"
ANALYZE = shutil.which("systemd-analyze")

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """Sections -> ordered (key, value) pairs; repeated keys kept, continuations joined."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"{path.name}: setting outside a section"
        key, _, value = line.partition("=")
        current.append((key.strip(), " ".join(value.split())))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: Unit, section: str, key: str) -> str:
    (value,) = values(unit, section, key)
    return value


def _local_binary() -> str:
    found = shutil.which("chipwarden", path=str(Path(sys.executable).parent)) or shutil.which(
        "chipwarden"
    )
    if found is None:
        pytest.skip("no chipwarden console script on PATH to stand in for /opt/chipwarden")
    return found


@pytest.fixture
def local_units(tmp_path: Path) -> Path:
    """Copies with ExecStart pointing at this environment's chipwarden (verify needs it)."""
    binary = _local_binary()
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace(INSTALLED_BINARY, binary)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_every_unit(local_units: Path) -> None:
    proc = subprocess.run(  # noqa: S603
        [str(ANALYZE), "verify", *(f"./{u}" for u in UNITS)],
        cwd=local_units,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("service", SERVICES)
def test_services_rate_ok_in_systemd_analyze_security(service: str, local_units: Path) -> None:
    proc = subprocess.run(  # noqa: S603
        [str(ANALYZE), "security", "--offline=true", f"./{service}"],
        cwd=local_units,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "--offline" in proc.stderr and "unrecognized" in proc.stderr:
        pytest.skip("this systemd-analyze has no offline security scoring (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 2.0, proc.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_services_are_hardened(service: str) -> None:
    unit = parse_unit(SYSTEMD / service)
    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "chipwarden",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, f"{service}: {key}"
    filters = values(unit, "Service", "SystemCallFilter")
    assert "@system-service" in filters and any(f.startswith("~@privileged") for f in filters)


def test_all_services_share_one_user_and_state_directory() -> None:
    units = [parse_unit(SYSTEMD / s) for s in SERVICES]
    assert len({one(u, "Service", "User") for u in units}) == 1
    assert {one(u, "Service", "StateDirectory") for u in units} == {"chipwarden"}
    stores = {
        v
        for u in units
        for v in values(u, "Service", "Environment")
        if v.startswith("CHIPWARDEN_STORE=")
    }
    assert stores == {"CHIPWARDEN_STORE=sqlite:////var/lib/chipwarden/chipwarden.db"}


def test_the_timer_starts_the_audit_and_catches_up_after_downtime() -> None:
    timer = parse_unit(SYSTEMD / "chipwarden-audit.timer")
    assert one(timer, "Timer", "Unit") == "chipwarden-audit.service"
    assert one(timer, "Timer", "Persistent") == "true"
    assert values(timer, "Timer", "OnCalendar")
    audit = parse_unit(SYSTEMD / "chipwarden-audit.service")
    assert one(audit, "Service", "Type") == "oneshot"
    assert one(audit, "Service", "SuccessExitStatus") == "3"  # 4 (partial) must fail the unit


def test_exec_start_runs_real_commands_with_real_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for service in SERVICES:
        argv = shlex.split(one(parse_unit(SYSTEMD / service), "Service", "ExecStart"))
        assert argv[0] == INSTALLED_BINARY, service
        code = cli_run([argv[1], "--help"])
        text = capsys.readouterr().out
        assert code == 0, f"{service}: chipwarden {argv[1]} does not exist"
        for flag in (a for a in argv[2:] if a.startswith("--")):
            assert flag in text, f"{service}: chipwarden {argv[1]} has no {flag}"
