"""Pack DSL validation: every problem names file:line and the key path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.errors import PolicyError
from policies.engine import YamlPolicyEngine
from policies.loader import BUILTIN_PACKS_DIR, builtin_pack_names
from policies.schema import CONDITION_TYPES, Pack, SourceCountryIn, pack_json_schema

WritePack = Callable[..., Path]

VALID = """\
pack: demo
version: "1.0.0"
description: demo pack
match_mode: first
policies:
  - id: demo-1
    title: D:5 source to controlled chips
    severity: high
    citations: ["88 FR 73458"]
    match:
      all:
        - {type: source-country-in, lists: [ear-d5]}
        - {type: target-export-class-in, values: [3A090.a]}
    caps:
      - when: {type: outcome-in, values: [denied]}
        max: medium
        reason: attempt only
    exceptions:
      - id: exc-1
        owner: team@example.com
        reason: lab
        expires: 2030-01-01
        match: {type: account-in, values: ["123456789012"]}
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def problems_for(write_pack: WritePack, text: str) -> tuple[Path, list[str]]:
    path = write_pack(text)
    return path, YamlPolicyEngine.validate_files([path])


def test_a_valid_pack_has_no_problems(write_pack: WritePack) -> None:
    _, problems = problems_for(write_pack, VALID)
    assert problems == []


def test_bundled_packs_and_their_case_files_validate_cleanly() -> None:
    names = builtin_pack_names()
    assert "export-controls" in names
    paths = sorted(BUILTIN_PACKS_DIR.glob("*.yaml"))
    assert any(p.name.endswith(".cases.yaml") for p in paths)
    assert YamlPolicyEngine.validate_files(paths) == []


def test_case_files_are_validated_as_cases_not_packs(write_pack: WritePack) -> None:
    path = write_pack(
        "- name: c\n  instance: null\n  intel: {country: CN}\n  expect: {policy: null, x: 1}\n",
        filename="demo.cases.yaml",
    )
    assert YamlPolicyEngine.validate_files([path]) == [f"{path}:4: [0].expect.x: unknown key"]


def test_unknown_condition_type_names_file_line_and_path(write_pack: WritePack) -> None:
    text = VALID.replace("type: source-country-in", "type: source-countri-in")
    path, problems = problems_for(write_pack, text)
    assert len(problems) == 1
    line = line_of(text, "source-countri-in")
    assert problems[0].startswith(f"{path}:{line}: policies[0].match.all[0]: ")
    assert "unknown condition type 'source-countri-in'" in problems[0]
    assert "source-country-in" in problems[0]  # lists what is accepted


def test_unknown_severity_names_file_line_and_path(write_pack: WritePack) -> None:
    text = VALID.replace("severity: high", "severity: urgent")
    path, problems = problems_for(write_pack, text)
    line = line_of(text, "severity: urgent")
    assert problems == [
        f"{path}:{line}: policies[0].severity: "
        "Input should be 'info', 'low', 'medium', 'high' or 'critical'"
    ]


def test_unknown_cap_severity_is_reported_too(write_pack: WritePack) -> None:
    text = VALID.replace("max: medium", "max: moderate")
    path, problems = problems_for(write_pack, text)
    assert problems[0].startswith(
        f"{path}:{line_of(text, 'max: moderate')}: policies[0].caps[0].max"
    )


def test_unknown_jurisdiction_list_names_file_line_and_path(write_pack: WritePack) -> None:
    text = VALID.replace("lists: [ear-d5]", "lists: [ear-d9]")
    path, problems = problems_for(write_pack, text)
    line = line_of(text, "ear-d9")
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{line}: policies[0].match.all[0].lists[0]: ")
    assert "unknown jurisdiction list 'ear-d9'" in problems[0]


def test_unknown_key_names_file_line_and_path(write_pack: WritePack) -> None:
    text = VALID.replace("    title: D:5", "    titel: typo\n    title: D:5")
    path, problems = problems_for(write_pack, text)
    assert problems == [f"{path}:{line_of(text, 'titel')}: policies[0].titel: unknown key"]


def test_unknown_key_inside_a_condition_is_reported_at_its_line(write_pack: WritePack) -> None:
    text = VALID.replace(
        "{type: target-export-class-in, values: [3A090.a]}",
        "{type: target-export-class-in, values: [3A090.a], strict: true}",
    )
    path, problems = problems_for(write_pack, text)
    line = line_of(text, "strict: true")
    assert problems == [f"{path}:{line}: policies[0].match.all[1].strict: unknown key"]


def test_exception_without_expiry_is_rejected(write_pack: WritePack) -> None:
    text = VALID.replace("        expires: 2030-01-01\n", "")
    path, problems = problems_for(write_pack, text)
    line = line_of(text, "- id: exc-1")
    assert problems == [
        f"{path}:{line}: policies[0].exceptions[0].expires: required key is missing"
    ]


def test_duplicate_policy_ids_are_rejected_across_files(write_pack: WritePack) -> None:
    first = write_pack(VALID)
    second_text = VALID.replace("pack: demo", "pack: demo-two")
    second = write_pack(second_text)
    problems = YamlPolicyEngine.validate_files([first, second])
    assert len(problems) == 1
    assert problems[0].startswith(f"{second}:{line_of(second_text, 'id: demo-1')}: policies[0].id")
    assert f"duplicate policy id 'demo-1' (first defined at {first}:" in problems[0]


def test_condition_without_type_or_combinator_is_explained(write_pack: WritePack) -> None:
    text = VALID.replace("{type: target-export-class-in, values: [3A090.a]}", "{values: [x]}")
    path, problems = problems_for(write_pack, text)
    assert problems == [
        f"{path}:{line_of(text, '{values: [x]}')}: policies[0].match.all[1]: "
        "a condition needs a 'type' key or one of all/any/not"
    ]


def test_every_problem_in_a_file_is_reported_at_once(write_pack: WritePack) -> None:
    text = VALID.replace("severity: high", "severity: urgent").replace(
        "    title: D:5", "    x: 1\n    title: D:5"
    )
    _, problems = problems_for(write_pack, text)
    assert len(problems) == 2


def test_invalid_yaml_is_reported_with_its_line(write_pack: WritePack) -> None:
    path, problems = problems_for(write_pack, "pack: [unclosed\nversion: 1\n")
    assert len(problems) == 1 and problems[0].startswith(f"{path}:")
    assert "invalid YAML" in problems[0]


def test_a_pack_that_is_not_a_mapping_is_rejected(write_pack: WritePack) -> None:
    path, problems = problems_for(write_pack, "- just\n- a list\n")
    assert problems == [f"{path}:1: <root>: a policy pack must be a mapping"]


def test_from_refs_raises_policy_error_with_every_problem(
    write_pack: WritePack, tmp_path: Path
) -> None:
    path = write_pack(VALID.replace("severity: high", "severity: urgent"))
    with pytest.raises(PolicyError) as info:
        YamlPolicyEngine.from_refs(
            [str(path), "builtin:nope", "missing.yaml"],
            base_dir=tmp_path,
            clock=lambda: datetime.now(UTC),
        )
    problems = info.value.problems
    assert len(problems) == 3
    assert any("no bundled pack named 'nope'" in p and "export-controls" in p for p in problems)
    assert any(p.startswith(f"{tmp_path / 'missing.yaml'}: no such") for p in problems)
    assert info.value.hint


def test_a_directory_ref_loads_every_pack_but_not_case_files(
    write_pack: WritePack, tmp_path: Path
) -> None:
    write_pack(VALID, filename="a.yaml")
    write_pack(
        VALID.replace("demo-1", "demo-2").replace("pack: demo", "pack: demo-b"), filename="b.yaml"
    )
    (tmp_path / "a.cases.yaml").write_text("- not: a pack\n", encoding="utf-8")
    engine = YamlPolicyEngine.from_refs(["."], base_dir=tmp_path, clock=lambda: datetime.now(UTC))
    assert [row["id"] for row in engine.describe()] == ["demo-1", "demo-2"]
    explicit = YamlPolicyEngine.from_refs(
        ["a.yaml", "a.cases.yaml"], base_dir=tmp_path, clock=lambda: datetime.now(UTC)
    )
    assert [row["id"] for row in explicit.describe()] == ["demo-1"]


def test_condition_models_reject_unknown_keys_and_need_some_criterion() -> None:
    with pytest.raises(ValidationError):
        SourceCountryIn.model_validate({"type": "source-country-in", "lists": ["x"], "foo": 1})
    with pytest.raises(ValidationError, match="give 'lists' or 'countries'"):
        SourceCountryIn.model_validate({"type": "source-country-in"})


def test_cidr_conditions_reject_malformed_blocks(write_pack: WritePack) -> None:
    text = VALID.replace(
        '{type: account-in, values: ["123456789012"]}',
        "{type: source-ip-in-cidr, cidrs: [10.0.0.0/33]}",
    )
    _, problems = problems_for(write_pack, text)
    assert len(problems) == 1 and "'10.0.0.0/33' is not a CIDR block" in problems[0]


def test_pack_json_schema_describes_every_condition_type() -> None:
    schema = pack_json_schema()
    text = str(schema)
    assert schema["title"] == "Pack"
    for kind in CONDITION_TYPES:
        assert kind in text
    assert (
        Pack.model_validate(
            {
                "pack": "x",
                "version": "1",
                "policies": [{"id": "a", "title": "t", "severity": "low", "match": {"all": []}}],
            }
        ).match_mode
        == "first"
    )
