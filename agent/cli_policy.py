"""``chipwarden policy diff A B``: the policies a pack change adds, removes or changes.

A and B are each a pack file, a folder of packs, ``builtin:<name>`` or a git blob
``REV:PATH`` (``HEAD~1:policies/packs/export-controls.yaml``, read with ``git show`` from the
current directory). Both sides are validated by the configured policy engine first (exit 2
with ``file:line`` problems) and each side's bundle revision (content hash) is shown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from agent import registry
from agent.errors import UsageError
from agent.output import OutputFormat, render_records
from agent.yamlio import load_yaml

__all__ = ["PackSide", "PolicyChange", "diff_sides", "load_side", "register_commands"]

ChangeKind = Literal["added", "removed", "changed"]
_PACK_KEYS = ("version", "match_mode", "description")
_VALUE_WIDTH = 120


@dataclass(frozen=True)
class PackSide:
    """One side of a diff: its bundle revision, packs (name -> header) and policies by id."""

    label: str
    revision: str
    packs: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyChange:
    """A policy (or a pack header, ``policy_id`` ``pack:<name>``) that differs between sides."""

    kind: ChangeKind
    policy_id: str
    pack: str
    changes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "policy_id": self.policy_id,
            "pack": self.pack,
            "changes": list(self.changes),
        }


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


def _label(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def field_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """``key.path: old -> new`` for every leaf that differs (mappings and lists recurse)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted({*old, *new}, key=str):
            where = _label(path, key)
            if key not in new:
                out.append(f"{where}: removed (was {_short(old[key])})")
            elif key not in old:
                out.append(f"{where}: added {_short(new[key])}")
            else:
                out.extend(field_changes(old[key], new[key], where))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            c
            for i, (o, n) in enumerate(zip(old, new, strict=True))
            for c in field_changes(o, n, _label(path, i))
        ]
    if old == new and type(old) is type(new):
        return []
    return [f"{path or '<root>'}: {_short(old)} -> {_short(new)}"]


def diff_sides(a: PackSide, b: PackSide) -> list[PolicyChange]:
    """Pack header changes first, then removed, added and changed policies (by id)."""
    out: list[PolicyChange] = []
    for name in sorted({*a.packs, *b.packs}):
        old, new = a.packs.get(name), b.packs.get(name)
        if old is not None and new is not None and old != new:
            out.append(
                PolicyChange("changed", f"pack:{name}", name, tuple(field_changes(old, new)))
            )
    for pid in sorted(set(a.policies) - set(b.policies)):
        out.append(PolicyChange("removed", pid, a.policies[pid]["pack"]))
    for pid in sorted(set(b.policies) - set(a.policies)):
        out.append(PolicyChange("added", pid, b.policies[pid]["pack"]))
    for pid in sorted(set(a.policies) & set(b.policies)):
        changes = field_changes(a.policies[pid], b.policies[pid])
        if changes:
            out.append(PolicyChange("changed", pid, b.policies[pid]["pack"], tuple(changes)))
    return out


# -- resolving a side ------------------------------------------------------------------


def _is_pack_file(path: Path) -> bool:
    return path.suffix in {".yaml", ".yml"} and not path.name.endswith(
        (".cases.yaml", ".cases.yml")
    )


def _git(args: Sequence[str], *, cwd: Path) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH, like any developer tool
            cwd=cwd,
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run git: {exc}", hint="install git or pass pack files") from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(
            f"git {' '.join(args)}: {reason[0] if reason else 'failed'}",
            hint="REV:PATH needs a git revision and a path relative to the current directory",
        )
    return done.stdout


def _from_git(ref: str, *, cwd: Path, into: Path) -> list[Path]:
    rev, _, rel = ref.partition(":")
    listed = _git(["ls-tree", "-r", "--name-only", rev, "--", rel], cwd=cwd).decode()
    names = [n for n in listed.splitlines() if n and _is_pack_file(Path(n))]
    if not names:
        raise UsageError(f"{ref}: no policy pack (*.yaml) at that revision and path")
    out = []
    for i, name in enumerate(sorted(names)):
        target = into / f"{i:03d}" / Path(name).name
        target.parent.mkdir(parents=True)
        target.write_bytes(_git(["show", f"{rev}:./{name}"], cwd=cwd))
        out.append(target)
    return out


def _builtin(engine_cls: type, name: str) -> list[Path]:
    # Make-do until engines describe their policies in full: the YAML engine keeps its bundled
    # packs in a ``packs`` folder next to its module (agent/ never imports policies/ by name).
    package = engine_cls.__module__.rpartition(".")[0]
    path = Path(str(resources.files(package) / "packs" / f"{name}.yaml"))
    return [path] if "/" not in name and path.is_file() else []


def _files(ref: str, *, engine_cls: type, base_dir: Path, into: Path) -> list[Path]:
    if ref.startswith("builtin:"):
        found = _builtin(engine_cls, ref.removeprefix("builtin:"))
        if not found:
            raise UsageError(f"{ref}: no bundled pack of that name")
        return found
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and _is_pack_file(p))
    if path.is_file():
        return [path]
    if ":" in ref:
        return _from_git(ref, cwd=Path.cwd(), into=into)
    raise UsageError(f"{ref}: no such policy file or directory")


def _policies_of(paths: Sequence[Path]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    packs: dict[str, dict[str, Any]] = {}
    policies: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = load_yaml(path).data
        if not isinstance(data, dict):
            continue
        name = str(data.get("pack", path.stem))
        packs[name] = {k: data[k] for k in _PACK_KEYS if k in data}
        for pol in data.get("policies") or ():
            if isinstance(pol, dict) and "id" in pol:
                policies[str(pol["id"])] = {"pack": name, **pol}
    return packs, policies


def load_side(ref: str, *, engine_name: str, base_dir: Path, workdir: Path) -> PackSide:
    """Validate ``ref`` with the named policy engine and read its policies."""
    engine_cls = registry.policy_engines.load(engine_name)
    paths = _files(ref, engine_cls=engine_cls, base_dir=base_dir, into=workdir)
    if not paths:
        raise UsageError(f"{ref}: holds no policy packs (*.yaml)")
    problems = engine_cls.validate_files(list(paths))
    if problems:
        raise UsageError(f"{ref} is not a valid policy bundle:\n" + "\n".join(problems))
    engine = engine_cls.from_refs(
        [str(p) for p in paths], base_dir=base_dir, clock=lambda: datetime.now(UTC)
    )
    packs, policies = _policies_of(paths)
    for row in engine.describe():  # what the engine loaded wins over what the YAML says
        policies.setdefault(str(row["id"]), {"pack": row["pack"]}).update(
            {k: row[k] for k in ("severity", "title") if k in row}
        )
    return PackSide(label=ref, revision=str(engine.revision), packs=packs, policies=policies)


# -- command --------------------------------------------------------------------------


def _table(a: PackSide, b: PackSide, changes: Sequence[PolicyChange]) -> Table:
    table = Table(
        title=f"policy diff {escape(a.label)} ({a.revision}) -> {escape(b.label)} ({b.revision})",
        header_style="bold",
    )
    for col in ("Change", "Policy", "Pack", "What changed"):
        table.add_column(col, overflow="fold")
    style = {"added": "green", "removed": "red", "changed": "yellow"}
    for c in changes:
        table.add_row(
            f"[{style[c.kind]}]{c.kind}[/]",
            escape(c.policy_id),
            escape(c.pack),
            escape("\n".join(c.changes)) or "-",
        )
    return table


def _records(a: PackSide, b: PackSide, changes: Sequence[PolicyChange]) -> Iterator[dict[str, Any]]:
    for c in changes:
        yield {
            "from": a.label,
            "from_revision": a.revision,
            "to": b.label,
            "to_revision": b.revision,
            **c.to_dict(),
        }


def register_commands(policy_app: typer.Typer) -> None:
    """Add ``diff`` to the ``chipwarden policy`` command group."""

    @policy_app.command("diff")
    def policy_diff(
        old: Annotated[str, typer.Argument(help="Pack file, folder, builtin:<name> or REV:PATH.")],
        new: Annotated[str, typer.Argument(help="Pack file, folder, builtin:<name> or REV:PATH.")],
        engine: Annotated[
            str, typer.Option("--engine", help="Policy engine that validates both sides.")
        ] = "yaml",
        fmt: Annotated[
            OutputFormat | None,
            typer.Option("--format", "-f", help="table (default on a terminal), json, jsonl."),
        ] = None,
        exit_code: Annotated[
            bool, typer.Option("--exit-code", help="Exit 1 when the sides differ (like git diff).")
        ] = False,
    ) -> None:
        """Show policies added, removed or changed between two packs or revisions."""
        base = Path.cwd()
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cw-diff-")))
            a = load_side(old, engine_name=engine, base_dir=base, workdir=work / "a")
            b = load_side(new, engine_name=engine, base_dir=base, workdir=work / "b")
        changes = diff_sides(a, b)
        out_fmt = fmt or (OutputFormat.TABLE if sys.stdout.isatty() else OutputFormat.JSONL)
        render_records(
            list(_records(a, b, changes)), out_fmt, sys.stdout, table=_table(a, b, changes)
        )
        counts = {
            k: sum(1 for c in changes if c.kind == k) for k in ("added", "removed", "changed")
        }
        sys.stderr.write(
            f"{a.revision} -> {b.revision}: {counts['added']} added, {counts['removed']} removed, "
            f"{counts['changed']} changed\n"
        )
        raise typer.Exit(1 if exit_code and changes else 0)
