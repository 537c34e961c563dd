"""Safe YAML loading with size limits and a key-path -> line map for error messages.

Shared by the config loader and policy packs so every error can say ``file:line``. Hostile
documents are refused before they cost much: a file over ``MAX_BYTES`` is not read, a
document with more than ``MAX_NODES`` nodes or nested deeper than ``MAX_DEPTH`` is refused
from its parser events (a fraction of the cost of building nodes, stopping at the first
excess), and alias expansion is bounded by the same limits before anything is constructed
(billion-laughs style documents are rejected, not expanded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.errors import UsageError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "LineMap",
    "YamlDocument",
    "load_yaml",
    "loads_yaml",
    "path_label",
]

MAX_BYTES = 8 * 1024 * 1024
"""Largest policy, config, case or exception file read (real ones are a few hundred KB)."""
MAX_NODES = 200_000
"""Most nodes a document may hold once aliases are expanded (a policy pack has ~10,000)."""
MAX_DEPTH = 64
"""Deepest nesting, aliases expanded (packs nest ~10 levels; Python recursion stays safe)."""
# libyaml's loader when PyYAML was built with it (5-10x faster start-up on policy packs).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SIZE_HINT = (
    "policy packs, configs and case files are small: check that this is the intended file, "
    "or split it"
)
_BOMB_HINT = "remove deeply nested anchors/aliases"

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
    """Read and parse ``path``; ``UsageError`` naming the file and line on any problem. At
    most ``max_bytes + 1`` bytes are read, whatever the file claims to be (a FIFO, /dev/zero)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        size = _size_of(path, len(data))
        raise UsageError(
            f"{path}: file is {size}, over the {max_bytes}-byte limit", hint=_SIZE_HINT
        )
    text = data.decode("utf-8", errors="replace")
    return loads_yaml(text, name=str(path), max_bytes=max_bytes)


def _size_of(path: Path, read: int) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return f"{size} bytes" if size > read else f"more than {read - 1} bytes"


def loads_yaml(text: str, *, name: str = "<string>", max_bytes: int = MAX_BYTES) -> YamlDocument:
    """Parse YAML text (one document) with bounded size, node count, depth and alias
    expansion; ``UsageError`` naming ``name`` (and the line) otherwise."""
    if len(text) > max_bytes:
        raise UsageError(
            f"{name}: text is {len(text)} characters, over the {max_bytes}-character limit",
            hint=_SIZE_HINT,
        )
    try:
        _check_events(text, name)
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise _invalid(exc, name) from exc
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return YamlDocument(data=None, lines=LineMap(), name=name)
            lines = LineMap()
            _walk(node, (), lines, [0], name, set())
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise _invalid(exc, name) from exc
        except RecursionError as exc:  # a safety net: MAX_DEPTH keeps recursion shallow
            raise UsageError(f"{name}: document nests too deeply", hint=_BOMB_HINT) from exc
    finally:
        loader.dispose()
    return YamlDocument(data=data, lines=lines, name=name)


def _invalid(exc: yaml.YAMLError, name: str) -> UsageError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        return UsageError(f"{name}{line}: invalid YAML: {exc.problem}")
    return UsageError(f"{name}: invalid YAML: {exc}")  # ReaderError: control characters


_NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_OPEN_EVENTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _where(name: str, event: yaml.Event) -> str:
    mark = event.start_mark
    return f"{name}:{mark.line + 1}" if mark else name


def _check_events(text: str, name: str) -> None:
    """Refuse more than ``MAX_NODES`` nodes or ``MAX_DEPTH`` levels from the parser's events,
    before a node is built (building nodes costs several times more than parsing)."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _NODE_EVENTS):
            nodes += 1
            if nodes > MAX_NODES:
                raise UsageError(
                    f"{_where(name, event)}: document has more than {MAX_NODES} nodes",
                    hint=_SIZE_HINT,
                )
        if isinstance(event, _OPEN_EVENTS):
            depth += 1
            if depth > MAX_DEPTH:
                raise UsageError(
                    f"{_where(name, event)}: document nests deeper than {MAX_DEPTH} levels",
                    hint=_SIZE_HINT,
                )
        elif isinstance(event, _CLOSE_EVENTS):
            depth -= 1


def _walk(
    node: yaml.Node,
    path: PathKey,
    lines: LineMap,
    seen: list[int],
    name: str,
    ancestors: set[int],
) -> None:
    """Record lines, walking aliases as expanded: at most ``MAX_NODES`` nodes and
    ``MAX_DEPTH`` levels, and no node inside itself (``ancestors`` holds the current path)."""
    seen[0] += 1
    if seen[0] > MAX_NODES:
        raise UsageError(
            f"{name}: document expands to more than {MAX_NODES} nodes (alias bomb?)",
            hint=_BOMB_HINT,
        )
    if len(path) > MAX_DEPTH:
        raise UsageError(
            f"{name}:{node.start_mark.line + 1}: document nests deeper than {MAX_DEPTH} levels "
            "once aliases are expanded (alias bomb?)",
            hint=_BOMB_HINT,
        )
    if id(node) in ancestors:
        raise UsageError(
            f"{name}:{node.start_mark.line + 1}: recursive alias (a node contains itself)"
        )
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        return
    ancestors.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            lines.lines.setdefault(child, key_node.start_mark.line + 1)
            _walk(value_node, child, lines, seen, name, ancestors)
    else:
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, seen, name, ancestors)
    ancestors.discard(id(node))
