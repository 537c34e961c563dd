"""Safe YAML loading with size limits and a key-path -> line map for error messages.

Shared by the config loader and policy packs so every error can say ``file:line``. Alias
expansion is bounded (billion-laughs style documents are rejected, not expanded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.errors import UsageError

__all__ = ["LineMap", "YamlDocument", "load_yaml", "loads_yaml", "path_label"]

MAX_BYTES = 8 * 1024 * 1024
# libyaml's loader when PyYAML was built with it (5-10x faster start-up on policy packs).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 200_000

PathKey = tuple[str | int, ...]


@dataclass
class LineMap:
    """Maps key paths such as ``("sources", 1, "paths")`` to 1-based line numbers."""

    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_for(self, path: PathKey) -> int | None:
        """Line of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


@dataclass
class YamlDocument:
    """Parsed data plus where each key sits in the file."""

    data: Any
    lines: LineMap
    name: str

    def where(self, path: PathKey) -> str:
        line = self.lines.line_for(path)
        return f"{self.name}:{line}" if line else self.name


def path_label(path: PathKey) -> str:
    """``("sources", 1, "paths")`` -> ``sources[1].paths``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path, *, max_bytes: int = MAX_BYTES) -> YamlDocument:
    """Read and parse ``path``; ``UsageError`` naming the file and line on any problem."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc
    if size > max_bytes:
        raise UsageError(f"{path}: file is {size} bytes, over the {max_bytes}-byte limit")
    return loads_yaml(path.read_text(encoding="utf-8", errors="replace"), name=str(path))


def loads_yaml(text: str, *, name: str = "<string>") -> YamlDocument:
    """Parse YAML text (one document) with bounded alias expansion."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # ReaderError: control characters
        raise UsageError(f"{name}: invalid YAML: {exc}") from exc
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(data=None, lines=LineMap(), name=name)
            lines = LineMap()
            _walk(node, (), lines, [0], name, frozenset())
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = f":{mark.line + 1}" if mark else ""
            raise UsageError(f"{name}{line}: invalid YAML: {exc.problem}") from exc
        except yaml.YAMLError as exc:
            raise UsageError(f"{name}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return YamlDocument(data=data, lines=lines, name=name)


def _walk(
    node: yaml.Node,
    path: PathKey,
    lines: LineMap,
    seen: list[int],
    name: str,
    ancestors: frozenset[int],
) -> None:
    seen[0] += 1
    if seen[0] > MAX_NODES:
        raise UsageError(
            f"{name}: document expands to more than {MAX_NODES} nodes (alias bomb?)",
            hint="remove deeply nested anchors/aliases",
        )
    if id(node) in ancestors:
        raise UsageError(
            f"{name}:{node.start_mark.line + 1}: recursive alias (a node contains itself)"
        )
    ancestors = ancestors | {id(node)}
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            lines.lines.setdefault(child, key_node.start_mark.line + 1)
            _walk(value_node, child, lines, seen, name, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, seen, name, ancestors)
