"""Policy YAML under hostile input: any text, mutated packs, alias bombs and huge files are
rejected with file:line problems, never crash the loader."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import PolicyError, UsageError
from agent.yamlio import MAX_BYTES, load_yaml, loads_yaml
from policies.engine import YamlPolicyEngine
from policies.loader import BUILTIN_PACKS_DIR
from tests.fuzz.hostile import FUZZ, TALLY, check, mutated

PACK_TEXT = (BUILTIN_PACKS_DIR / "export-controls.yaml").read_text(encoding="utf-8")
PACK = yaml.safe_load(PACK_TEXT)


def alias_bomb(levels: int = 9, fanout: int = 9) -> str:
    """The billion-laughs document: each level aliases the previous one ``fanout`` times."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        refs = ", ".join(f"*a{i - 1}" for _ in range(fanout))
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


@st.composite
def pack_texts(draw: st.DrawFn) -> str:
    lines = PACK_TEXT.splitlines()
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "indent", "garble", "alias"]))
        if op == "drop":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        elif op == "garble":
            lines[i] = draw(st.text(max_size=30))
        else:
            lines[i] = lines[i] + " *missing_anchor"
    return "\n".join(lines)


yaml_texts = st.one_of(
    st.text(max_size=200),
    pack_texts(),
    st.integers(1, 4).map(lambda n: alias_bomb(n, 9)),
    st.sampled_from(
        [
            "&a [*a]",
            "!!python/object/apply:os.system ['true']",
            "? [a]\n: 1",
            "a: !!binary AAAA",
            "%YAML 9.9\n---\na: 1",
            "a:\n\t- tab",
            "---\n---\n",
        ]
    ),
)


@FUZZ
@given(yaml_texts)
def test_any_text_parses_or_is_a_usage_error_naming_where(text: str) -> None:
    check("yaml.loads", lambda: loads_yaml(text, name="pack.yaml"))
    try:
        loads_yaml(text, name="pack.yaml")
    except UsageError as exc:
        assert exc.message.startswith("pack.yaml")
    except Exception:  # noqa: S110 - a known bug, counted by check() above
        pass


@FUZZ
@given(st.one_of(pack_texts(), mutated(PACK).map(lambda p: yaml.safe_dump(p, sort_keys=False))))
def test_a_mutated_pack_validates_to_problems_with_file_and_line_never_a_crash(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pack.yaml"
        path.write_text(text, encoding="utf-8")
        problems = check("policy.validate", lambda: YamlPolicyEngine.validate_files([path]))
        for problem in problems or ():
            assert problem.startswith(str(path)), problem
        check(
            "policy.load",
            lambda: YamlPolicyEngine.from_refs(
                [str(path)],
                base_dir=Path(tmp),
                clock=lambda: None,  # type: ignore[arg-type,return-value]
            ),
            allowed=(PolicyError,),
        )


def test_a_billion_laughs_pack_is_rejected_as_an_alias_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(), encoding="utf-8")
    TALLY[("policy.validate", "rejected")] += 1

    problems = YamlPolicyEngine.validate_files([path])

    assert len(problems) == 1 and "alias bomb" in problems[0]
    assert problems[0].startswith(str(path))


def test_a_pack_over_the_size_limit_is_rejected_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:  # sparse: no need to write MAX_BYTES of data
        fh.write(b"pack: huge\n")
        fh.truncate(MAX_BYTES + 1)
    TALLY[("policy.validate", "rejected")] += 1

    with pytest.raises(UsageError, match="over the"):
        load_yaml(path)
    problems = YamlPolicyEngine.validate_files([path])
    assert len(problems) == 1 and "limit" in problems[0]
