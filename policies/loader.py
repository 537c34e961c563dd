"""Find, read and validate policy packs; every problem is reported as ``file:line: path: msg``.

Validation collects all problems across all files (schema errors, unknown jurisdiction lists,
duplicate policy or exception ids) instead of stopping at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.errors import UsageError
from agent.yamlio import LineMap, YamlDocument, load_yaml, path_label
from policies.jurisdictions import Jurisdictions
from policies.schema import (
    COMBINATOR_TAGS,
    CONDITION_TYPES,
    ContextCountryIn,
    Pack,
    SourceCountryIn,
    SourceSubdivisionIn,
    iter_conditions,
)

__all__ = [
    "BUILTIN_PACKS_DIR",
    "CASES_SUFFIX",
    "LoadedPack",
    "builtin_pack_names",
    "format_errors",
    "is_cases_file",
    "load_packs",
    "resolve_refs",
]

BUILTIN_PACKS_DIR = Path(__file__).parent / "packs"
CASES_SUFFIX = ".cases.yaml"
_TAGS = frozenset(CONDITION_TYPES) | COMBINATOR_TAGS

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedPack:
    """A validated pack with where it came from and its exact bytes (for the revision)."""

    path: Path
    pack: Pack
    raw: bytes


def builtin_pack_names() -> tuple[str, ...]:
    """Names usable as ``builtin:<name>``."""
    return tuple(sorted(p.stem for p in BUILTIN_PACKS_DIR.glob("*.yaml") if _is_pack_file(p)))


def is_cases_file(path: Path) -> bool:
    """``<pack>.cases.yaml`` (or ``.yml``) files hold policy cases, not policies."""
    return path.name.endswith((CASES_SUFFIX, ".cases.yml"))


def _is_pack_file(path: Path) -> bool:
    return path.suffix in {".yaml", ".yml"} and not is_cases_file(path)


def resolve_refs(refs: list[str], *, base_dir: Path) -> tuple[list[Path], list[str]]:
    """``builtin:<name>``, a YAML file, or a directory of them -> (pack files, problems).

    ``*.cases.yaml`` files are skipped: they hold policy cases, not policies.
    """
    paths: list[Path] = []
    problems: list[str] = []
    for ref in refs:
        if ref.startswith("builtin:"):
            name = ref.removeprefix("builtin:")
            path = BUILTIN_PACKS_DIR / f"{name}.yaml"
            if not path.is_file() or "/" in name:
                known = ", ".join(builtin_pack_names())
                problems.append(f"{ref}: no bundled pack named {name!r} (bundled: {known})")
            else:
                paths.append(path)
            continue
        path = Path(ref).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _is_pack_file(p))
            if not found:
                problems.append(f"{path}: directory holds no policy packs (*.yaml)")
            paths.extend(found)
        elif path.is_file():
            if not is_cases_file(path):  # a pack's companion cases file is not a pack
                paths.append(path)
        else:
            problems.append(f"{path}: no such policy file or directory")
    return paths, problems


def format_errors(exc: ValidationError, *, name: str, lines: LineMap) -> list[str]:
    """Pydantic errors as ``file:line: key.path: message``, with DSL-aware wording."""
    errors = exc.errors()
    locs = [tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _TAGS)) for e in errors]
    out: list[str] = []
    for err, loc in zip(errors, locs, strict=True):
        kind = err["type"]
        if kind == "too_short" and any(o != loc and o[: len(loc)] == loc for o in locs):
            continue  # a list emptied only because its items failed: the items say why
        msg = err["msg"]
        line_loc: PathKey = loc
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "union_tag_invalid":
            tag = (err.get("ctx") or {}).get("tag")
            msg = (
                f"unknown condition type {tag!r}; expected one of: "
                f"{', '.join(CONDITION_TYPES)}, or all/any/not"
            )
            line_loc = (*loc, "type")
        elif kind == "union_tag_not_found":
            msg = "a condition needs a 'type' key or one of all/any/not"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "too_short":
            msg = f"needs at least {(err.get('ctx') or {}).get('min_length', 1)} item(s)"
        line = lines.line_for(line_loc)
        where = f"{name}:{line}" if line else name
        out.append(f"{where}: {path_label(loc) or '<root>'}: {msg}")
    return out


def _conditions_of(pack: Pack) -> list[tuple[PathKey, BaseModel]]:
    found: list[tuple[PathKey, BaseModel]] = []
    for i, pol in enumerate(pack.policies):
        base: PathKey = ("policies", i)
        found += iter_conditions(pol.match, (*base, "match"))
        for k, cap in enumerate(pol.caps):
            found += iter_conditions(cap.when, (*base, "caps", k, "when"))
        if pol.indeterminate_when is not None:
            found += iter_conditions(pol.indeterminate_when, (*base, "indeterminate_when"))
        for k, exc in enumerate(pol.exceptions):
            found += iter_conditions(exc.match, (*base, "exceptions", k, "match"))
    return found


def _semantic_problems(
    pack: Pack, doc: YamlDocument, jurisdictions: Jurisdictions, seen: dict[str, str]
) -> list[str]:
    problems: list[str] = []
    known = set(jurisdictions.names())
    for path, cond in _conditions_of(pack):
        if isinstance(cond, SourceCountryIn | SourceSubdivisionIn | ContextCountryIn):
            for j, name in enumerate(cond.lists):
                if name not in known:
                    where = doc.where((*path, "lists", j))
                    problems.append(
                        f"{where}: {path_label((*path, 'lists', j))}: unknown jurisdiction list "
                        f"{name!r}; known: {', '.join(jurisdictions.names())}"
                    )
    for i, pol in enumerate(pack.policies):
        where = doc.where(("policies", i, "id"))
        if pol.id in seen:
            problems.append(
                f"{where}: policies[{i}].id: duplicate policy id {pol.id!r} "
                f"(first defined at {seen[pol.id]})"
            )
        else:
            seen[pol.id] = where
        exc_ids: set[str] = set()
        for k, exc in enumerate(pol.exceptions):
            if exc.id in exc_ids:
                at = doc.where(("policies", i, "exceptions", k, "id"))
                problems.append(
                    f"{at}: policies[{i}].exceptions[{k}].id: duplicate exception id {exc.id!r}"
                )
            exc_ids.add(exc.id)
    return problems


def load_packs(
    paths: list[Path], *, jurisdictions: Jurisdictions
) -> tuple[list[LoadedPack], list[str]]:
    """Read and validate every file; returns the packs that validated and all problems."""
    packs: list[LoadedPack] = []
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_packs: dict[str, Path] = {}
    for path in paths:
        try:
            doc = load_yaml(path)
            raw = path.read_bytes()
        except (UsageError, OSError) as exc:
            problems.append(exc.message if isinstance(exc, UsageError) else f"{path}: {exc}")
            continue
        data: Any = doc.data
        if not isinstance(data, dict):
            problems.append(f"{path}:1: <root>: a policy pack must be a mapping")
            continue
        try:
            pack = Pack.model_validate(data)
        except ValidationError as exc:
            problems += format_errors(exc, name=str(path), lines=doc.lines)
            continue
        if pack.pack in seen_packs:
            problems.append(
                f"{doc.where(('pack',))}: pack: duplicate pack name {pack.pack!r} "
                f"(also in {seen_packs[pack.pack]})"
            )
        seen_packs[pack.pack] = path
        found = _semantic_problems(pack, doc, jurisdictions, seen_ids)
        problems += found
        if not found:
            packs.append(LoadedPack(path=path, pack=pack, raw=raw))
    return packs, problems
