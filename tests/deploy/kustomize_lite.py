"""A tiny Kustomize renderer for the subset deploy/kubernetes uses, so tests need no binary.

Supported: ``resources`` (files and kustomization folders), ``components`` (kind Component),
``patches`` with a ``path`` or inline ``patch``: strategic-merge patches that only merge maps
(lists are replaced, and a patch that would merge a list of objects is refused: that needs
Kustomize's merge keys), and JSON 6902 patches (add / replace / remove) with a ``target``
selected by group / version / kind / name / namespace (anchored regexes). Anything else in a
kustomization raises ``Unsupported``. test_deploy_kubernetes.py compares the output with
``kubectl kustomize`` whenever that binary is installed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Unsupported", "render", "resource_id"]

_KINDS = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
_KEYS = {"apiVersion", "kind", "resources", "components", "patches"}
_TARGET_KEYS = {"group", "version", "kind", "name", "namespace"}

Resource = dict[str, Any]


class Unsupported(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def resource_id(res: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what Kustomize keys resources by."""
    meta = res.get("metadata") or {}
    return (res["apiVersion"], res["kind"], meta.get("namespace", ""), meta["name"])


def _load_docs(path: Path) -> list[Resource]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _kustomization(folder: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (folder / name).is_file():
            data = yaml.safe_load((folder / name).read_text(encoding="utf-8")) or {}
            break
    else:
        raise FileNotFoundError(f"{folder}: no kustomization.yaml")
    kind = data.get("kind", "Kustomization")
    if kind not in _KINDS or data.get("apiVersion", _KINDS[kind]) != _KINDS[kind]:
        raise Unsupported(f"{folder}: kind {kind} / apiVersion {data.get('apiVersion')}")
    unknown = set(data) - _KEYS
    if unknown:
        raise Unsupported(f"{folder}: kustomization fields {sorted(unknown)}")
    return data


def _add(out: list[Resource], new: Iterable[Resource], where: Path) -> None:
    seen = {resource_id(r) for r in out}
    for res in new:
        rid = resource_id(res)
        if rid in seen:
            raise ValueError(f"{where}: resource {rid} is added twice")
        seen.add(rid)
        out.append(res)


def _entry(folder: Path, entry: str) -> Path:
    if Path(entry).is_absolute():
        raise Unsupported(f"{folder}: absolute path {entry} (Kustomize refuses them)")
    return (folder / entry).resolve()


def _build(folder: Path, *, expect: str) -> list[Resource]:
    data = _kustomization(folder)
    kind = data.get("kind", "Kustomization")
    if kind != expect:
        raise ValueError(f"{folder}: expected a {expect}, found a {kind}")
    out: list[Resource] = []
    for entry in data.get("resources") or ():
        target = _entry(folder, entry)
        docs = _build(target, expect="Kustomization") if target.is_dir() else _load_docs(target)
        _add(out, docs, folder)
    for entry in data.get("components") or ():
        out = _apply_component(_entry(folder, entry), out)
    for patch in data.get("patches") or ():
        _apply_patch(folder, patch, out)
    return out


def _apply_component(folder: Path, current: list[Resource]) -> list[Resource]:
    data = _kustomization(folder)
    if data.get("kind") != "Component":
        raise ValueError(f"{folder}: listed under components but is not a Component")
    out = list(current)
    for entry in data.get("resources") or ():
        target = _entry(folder, entry)
        docs = _build(target, expect="Kustomization") if target.is_dir() else _load_docs(target)
        _add(out, docs, folder)
    for entry in data.get("components") or ():
        out = _apply_component(_entry(folder, entry), out)
    for patch in data.get("patches") or ():
        _apply_patch(folder, patch, out)
    return out


# -- patches --------------------------------------------------------------------------------


def _selected(res: Resource, target: Mapping[str, str]) -> bool:
    unknown = set(target) - _TARGET_KEYS
    if unknown:
        raise Unsupported(f"target selector fields {sorted(unknown)}")
    group, _, version = res["apiVersion"].rpartition("/")
    fields = {
        "group": group,
        "version": version,
        "kind": res["kind"],
        "name": res["metadata"]["name"],
        "namespace": res["metadata"].get("namespace", ""),
    }
    return all(re.fullmatch(str(rx), fields[key]) for key, rx in target.items())


def _apply_patch(folder: Path, entry: Mapping[str, Any], out: list[Resource]) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown or ("path" in entry) == ("patch" in entry):
        raise Unsupported(f"{folder}: patch entry {dict(entry)}")
    text = (folder / entry["path"]).read_text() if "path" in entry else entry["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    target = entry.get("target")
    if len(docs) == 1 and isinstance(docs[0], list):
        if target is None:
            raise Unsupported(f"{folder}: a JSON 6902 patch needs a target")
        for i, res in enumerate(out):
            if _selected(res, target):
                out[i] = json6902(res, docs[0])
        return
    for patch in docs:
        matched = False
        for i, res in enumerate(out):
            hit = _selected(res, target) if target else _same_object(res, patch)
            if hit:
                out[i] = strategic_merge(res, _without_identity(patch) if target else patch)
                matched = True
        if not matched and not target:
            raise ValueError(f"{folder}: patch for {resource_id(patch)} matches no resource")


def _same_object(res: Resource, patch: Resource) -> bool:
    meta = patch.get("metadata") or {}
    return (
        res["kind"] == patch.get("kind")
        and res["metadata"]["name"] == meta.get("name")
        and ("namespace" not in meta or res["metadata"].get("namespace") == meta["namespace"])
    )


def _without_identity(patch: Resource) -> Resource:
    patch = copy.deepcopy(patch)
    meta = patch.get("metadata") or {}
    meta.pop("name", None)
    meta.pop("namespace", None)
    return patch


def strategic_merge(base: Any, patch: Any, path: str = "") -> Any:
    """Maps merge recursively (``null`` deletes a key); anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if key.startswith("$"):
                raise Unsupported(f"{path}/{key}: strategic-merge directives")
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, f"{path}/{key}")
            else:
                out[key] = copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and any(isinstance(x, dict) for x in base)
    ):
        raise Unsupported(f"{path}: merging a list of objects needs Kustomize's merge keys")
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json6902(res: Resource, ops: list[Mapping[str, Any]]) -> Resource:
    """Apply JSON 6902 ``add`` / ``replace`` / ``remove`` operations to a copy of ``res``."""
    doc = copy.deepcopy(res)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        kind = op["op"]
        if kind == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                node[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            index: Any = int(last) if isinstance(node, list) else last
            if not isinstance(node, list) and last not in node:
                raise ValueError(f"replace {op['path']}: no such member")
            node[index] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise Unsupported(f"JSON 6902 op {kind!r}")
    return doc


def render(folder: Path) -> list[Resource]:
    """The resources ``kustomize build folder`` would emit (order not preserved)."""
    return _build(folder.resolve(), expect="Kustomization")
