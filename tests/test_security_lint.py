"""Security lint of the shipped code: ruff's S rules (bandit's checks) find nothing in agent/,
providers/, policies/, scripts/ and bench/, and every suppression says why.

Skipped only when ruff is not installed (it is in the ``test`` extra, so CI runs it)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("agent", "providers", "policies", "scripts", "bench")
# A suppression names its codes, then says why (at least one word after them).
NOQA_S = re.compile(r"#\s*noqa:\s*(?P<codes>[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*)(?P<rest>.*)$")


def _ruff() -> str:
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return str(find_ruff_bin())


def test_ruff_security_rules_find_nothing_in_shipped_code() -> None:
    proc = subprocess.run(  # noqa: S603 - the ruff binary of this environment, fixed arguments
        [_ruff(), "check", "--select", "S", "--output-format", "json", "--no-cache", *SHIPPED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    findings = json.loads(proc.stdout or "[]")
    shown = [
        f"{Path(f['filename']).relative_to(ROOT)}:{f['location']['row']}: "
        f"{f['code']} {f['message']}"
        for f in findings
    ]
    assert shown == [], "fix these or add `# noqa: S... - reason`:\n" + "\n".join(shown)


def test_every_security_suppression_in_shipped_code_gives_a_reason() -> None:
    bare = []
    for folder in SHIPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                match = NOQA_S.search(line)
                if match is None or not any(
                    code.strip().startswith("S") for code in match["codes"].split(",")
                ):
                    continue
                if not re.search(r"[A-Za-z]{2,}", match["rest"]):
                    bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert bare == [], "say why each security rule does not apply:\n" + "\n".join(bare)


def _locked() -> dict[str, tuple[str, list[str]]]:
    """``name -> (version, [sha256 hashes])`` from requirements/lock.txt."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8").splitlines():
        pin = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if pin:
            name = canonicalize_name(pin[1])
            out[name] = (pin[2], [])
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            out[name][1].append(digest)
    return out


def test_the_lock_pins_every_dependency_of_every_extra_within_its_range_with_hashes() -> None:
    """Offline staleness check of requirements/lock.txt against pyproject.toml (pip-audit and
    the container install exactly that lock)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    (everything,) = [Requirement(r) for r in extras["all"]]  # chipwarden[postgres,...]
    for extra in sorted(everything.extras):
        wanted += [Requirement(r) for r in extras[extra]]
    locked = _locked()

    problems = []
    for req in wanted:
        name = canonicalize_name(req.name)
        if name == "chipwarden":
            continue
        if name not in locked:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{req} but the lock pins {locked[name][0]}")
    assert problems == [], "regenerate requirements/lock.txt (its header says how):\n" + "\n".join(
        problems
    )
    assert all(hashes for _, hashes in locked.values())
