"""``chipwarden policy diff A B``: policies added, removed and changed between packs,
folders, bundled packs and git revisions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import run
from agent.cli_policy import field_changes
from policies.loader import BUILTIN_PACKS_DIR

PACK = BUILTIN_PACKS_DIR / "export-controls.yaml"


def _diff(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = run(["policy", "diff", *args, "-f", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else []


def _edit(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def packs(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old" / "ec.yaml", tmp_path / "new" / "ec.yaml"
    for p in (old, new):
        p.parent.mkdir()
        shutil.copy(PACK, p)
    return old, new


def test_identical_packs_show_no_change_and_exit_0_even_with_exit_code(
    packs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = packs
    code, changes = _diff(capsys, str(old), str(new), "--exit-code")
    assert (code, changes) == (0, [])


def test_added_removed_and_changed_policies_are_listed_with_the_fields_that_changed(
    packs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = packs
    first = yaml.safe_load(old.read_text())["policies"][0]

    def change(data: dict[str, Any]) -> None:
        dropped = data["policies"].pop()
        data["policies"][0]["severity"] = "high"
        data["policies"].append({**dropped, "id": "ec-new-policy", "title": "A new one"})

    _edit(new, change)
    last_id = yaml.safe_load(old.read_text())["policies"][-1]["id"]

    code, changes = _diff(capsys, str(old), str(new), "--exit-code")

    assert code == 1
    kinds = {(c["kind"], c["policy_id"]) for c in changes}
    assert kinds == {("removed", last_id), ("added", "ec-new-policy"), ("changed", first["id"])}
    changed = next(c for c in changes if c["kind"] == "changed")
    assert changed["changes"] == [f'severity: "{first["severity"]}" -> "high"']
    assert changes[0]["from_revision"] != changes[0]["to_revision"]


def test_a_changed_jurisdiction_list_in_a_condition_names_its_key_path(
    packs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = packs
    text = new.read_text()
    new.write_text(text.replace("lists: [ear-d5, macau-or-d5]", "lists: [ear-d5]", 1))

    _, changes = _diff(capsys, str(old), str(new))

    [change] = changes
    assert change["policy_id"] == "ec-high-d5-or-macau-to-controlled"
    assert any(
        line.endswith('.lists: ["ear-d5", "macau-or-d5"] -> ["ear-d5"]')
        for line in change["changes"]
    ), change["changes"]


def test_a_pack_version_bump_is_reported_as_a_pack_change(
    packs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = packs
    _edit(new, lambda d: d.update(version="2099.1.0"))

    _, changes = _diff(capsys, str(old), str(new))

    assert [(c["policy_id"], c["changes"][0].split(":")[0]) for c in changes] == [
        ("pack:export-controls", "version")
    ]


def test_a_bundled_pack_equals_its_copy_and_folders_compare_file_by_file(
    packs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = packs
    assert _diff(capsys, "builtin:export-controls", str(old)) == (0, [])
    shutil.copy(BUILTIN_PACKS_DIR / "hygiene.yaml", new.parent / "hygiene.yaml")

    _, changes = _diff(capsys, str(old.parent), str(new.parent))

    assert changes and {c["kind"] for c in changes} == {"added"}
    assert {c["pack"] for c in changes} == {"hygiene"}


def test_an_invalid_side_exits_2_naming_file_and_line(
    packs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = packs
    new.write_text(new.read_text().replace("severity: critical", "severity: apocalyptic", 1))

    code = run(["policy", "diff", str(old), str(new)])

    assert code == 2
    assert f"{new}:" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_git_revision_of_a_pack_compares_with_the_working_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    (repo / "packs").mkdir(parents=True)
    shutil.copy(PACK, repo / "packs" / "ec.yaml")

    def git(*args: str) -> None:
        argv = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        subprocess.run(  # noqa: S603 - fixed argv
            argv,
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "pack")
    _edit(repo / "packs" / "ec.yaml", lambda d: d.update(version="2099.1.0"))
    monkeypatch.chdir(repo)

    code, changes = _diff(capsys, "HEAD:packs/ec.yaml", "packs/ec.yaml")
    assert code == 0 and [c["policy_id"] for c in changes] == ["pack:export-controls"]
    assert run(["policy", "diff", "HEAD:packs/missing.yaml", "packs/ec.yaml"]) == 2


def test_field_changes_walks_mappings_and_lists_to_the_leaf_that_differs() -> None:
    old = {"a": {"b": [1, 2]}, "c": 1, "gone": True}
    new = {"a": {"b": [1, 3]}, "c": 1, "added": "x"}
    assert field_changes(old, new) == [
        "a.b[1]: 2 -> 3",
        'added: added "x"',
        "gone: removed (was true)",
    ]
    assert field_changes([1], [1, 2]) == ["<root>: [1] -> [1, 2]"]
    assert field_changes(1, 1.0) == ["<root>: 1 -> 1.0"]
