"""Policy, config and case YAML under hostile sizes: refused early, by name, with a hint.

A file over the size cap is not read past the cap; a document with too many nodes or too deep
a nesting is refused from its parser events before any node is built; alias expansion is
bounded (nodes and depth) before anything is constructed. Never a crash (RecursionError).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from agent import yamlio
from agent.errors import UsageError
from agent.yamlio import MAX_DEPTH, load_yaml, loads_yaml


@pytest.fixture
def no_node_building(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the loader starts building nodes or Python objects."""

    def forbidden(*_args: object) -> None:
        raise AssertionError("the document was composed or constructed before it was refused")

    monkeypatch.setattr(yamlio._Loader, "get_single_node", forbidden)
    monkeypatch.setattr(yamlio._Loader, "construct_document", forbidden)


# -- size ---------------------------------------------------------------------------------


def test_a_file_over_the_size_cap_is_refused_naming_the_file_the_cap_and_a_hint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text("policies: []\n" + "# padding\n" * 300)

    with pytest.raises(UsageError) as caught:
        load_yaml(path, max_bytes=1024)

    assert str(path) in caught.value.message
    assert "over the 1024-byte limit" in caught.value.message
    assert caught.value.hint and "intended file" in caught.value.hint
    assert load_yaml(path, max_bytes=path.stat().st_size).data == {"policies": []}


def test_the_default_cap_is_8_mib() -> None:
    assert yamlio.MAX_BYTES == 8 * 1024 * 1024


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_path_without_a_size_is_read_only_up_to_the_cap() -> None:
    # /dev/zero stats as 0 bytes and never ends: reading it whole would never return.
    with pytest.raises(UsageError) as caught:
        load_yaml(Path("/dev/zero"), max_bytes=4096)
    assert "more than 4096 bytes" in caught.value.message


def test_text_over_the_cap_is_refused_before_parsing(no_node_building: None) -> None:
    with pytest.raises(UsageError) as caught:
        loads_yaml("a: b\n" * 1000, name="labels.yaml", max_bytes=1000)
    assert caught.value.message.startswith("labels.yaml: ")
    assert "1000-character limit" in caught.value.message


# -- node count and depth, from parser events ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "- a\n" * 500_000,  # 2 MB block sequence
        "[" + "a," * 1_000_000 + "a]",  # 2 MB flow sequence on one line
        "".join(f"k{i}: v\n" for i in range(300_000)),  # 2.6 MB mapping
    ],
    ids=["block-list", "flow-list", "mapping"],
)
def test_a_2_mb_document_of_tiny_nodes_is_refused_before_any_node_is_built(
    text: str, no_node_building: None
) -> None:
    with pytest.raises(UsageError) as caught:
        loads_yaml(text, name="huge.yaml")
    assert caught.value.message.startswith("huge.yaml:")
    assert f"more than {yamlio.MAX_NODES} nodes" in caught.value.message
    assert caught.value.hint


def test_a_document_at_the_node_limit_loads_and_one_more_node_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yamlio, "MAX_NODES", 1000)
    assert len(loads_yaml("- a\n" * 999).data) == 999  # 999 items + the list = 1000 nodes
    with pytest.raises(UsageError, match="more than 1000 nodes"):
        loads_yaml("- a\n" * 1000)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 998])  # 998: RecursionError before
def test_deep_nesting_is_refused_with_its_line_never_a_recursion_error(
    depth: int, no_node_building: None
) -> None:
    text = "x: 1\ny: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(UsageError) as caught:
        loads_yaml(text, name="deep.yaml")
    assert caught.value.message.startswith("deep.yaml:2: ")
    assert f"deeper than {MAX_DEPTH} levels" in caught.value.message


def test_nesting_at_the_depth_limit_loads() -> None:
    doc = loads_yaml("[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH)
    data = doc.data
    for _ in range(MAX_DEPTH):
        data = data[0]
    assert data == 1


# -- alias expansion, bounded before construction -----------------------------------------


def test_a_billion_laughs_document_is_refused_before_anything_is_constructed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*_args: object) -> None:
        raise AssertionError("constructed")

    monkeypatch.setattr(yamlio._Loader, "construct_document", forbidden)
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    levels += [
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    with pytest.raises(UsageError) as caught:
        loads_yaml("\n".join(levels) + "\n", name="laughs.yaml")
    assert "expands to more than" in caught.value.message and "alias bomb" in caught.value.message


def test_aliases_that_nest_deeper_than_the_limit_once_expanded_are_refused() -> None:
    # Each anchor is 10 levels deep in the text; chained through aliases they reach 100.
    lines = [f"l0: &l0 {'[' * 10}1{']' * 10}"]
    lines += [f"l{i}: &l{i} {'[' * 10}*l{i - 1}{']' * 10}" for i in range(1, 10)]
    text = "\n".join(lines) + "\n"
    assert max(line.count("[") for line in lines) < MAX_DEPTH

    with pytest.raises(UsageError) as caught:
        loads_yaml(text, name="chain.yaml")

    assert "once aliases are expanded" in caught.value.message
    assert yaml.safe_load(text)["l9"]  # PyYAML itself builds it: the limit is ours


def test_a_recursive_alias_is_still_refused() -> None:
    with pytest.raises(UsageError, match="recursive alias"):
        loads_yaml("a: &a [1, *a]\n")
