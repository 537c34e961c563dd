"""Compare the permissions recorded provider traffic needs with the shipped policy files.

``deploy/iam/actions_map.yaml`` maps each recorded call to permissions and to the policy file
that must grant them; ``check`` returns what to add, what to remove and what has no row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "READERS",
    "ActionsMap",
    "Report",
    "check",
    "granted",
    "load_map",
    "load_records",
    "path_regex",
]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}")


def path_regex(template: str) -> re.Pattern[str]:
    """``/a/{x}/b/{rest...}`` -> a case-insensitive full-match regex ({x}: one segment)."""
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(".+" if m.group(2) else "[^/:]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


@dataclass(frozen=True)
class Row:
    """One reviewed mapping row."""

    provider: str
    label: str
    policy: str | None
    permissions: tuple[str, ...]
    call: str | None = None
    method: str | None = None
    path: re.Pattern[str] | None = None
    query: frozenset[str] = frozenset()
    by_marker: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    otherwise: tuple[str, ...] | None = None

    def matches(self, rec: Mapping[str, Any]) -> bool:
        """Does this row describe the recorded call ``rec``?"""
        if rec.get("api") == "aws":
            return self.call == f"{rec['service']}:{rec['operation']}"
        if self.path is None or self.method != rec.get("method"):
            return False
        return bool(self.path.fullmatch(rec["path"])) and self.query <= set(rec.get("query", ()))

    def needs(self, rec: Mapping[str, Any]) -> tuple[str, ...] | None:
        """Permissions ``rec`` needs under this row (None: body matched no marker)."""
        if not self.by_marker:
            return self.permissions
        found = [p for m in rec.get("markers", ()) for p in self.by_marker.get(m, ())]
        if not found:
            return None if self.otherwise is None else (*self.permissions, *self.otherwise)
        return (*self.permissions, *found)


@dataclass(frozen=True)
class ActionsMap:
    """The parsed actions_map.yaml."""

    policies: Mapping[str, Mapping[str, str]]
    rows: Mapping[str, tuple[Row, ...]]
    markers: tuple[str, ...]
    without_traffic: Mapping[tuple[str, str], str]

    def row_for(self, rec: Mapping[str, Any]) -> Row | None:
        """The first matching row of the record's section (see ``section``)."""
        return next((r for r in self.rows.get(section(rec), ()) if r.matches(rec)), None)


def _row(provider: str, raw: Mapping[str, Any]) -> Row:
    perms = tuple(raw.get("permissions") or ())
    if not perms and not raw.get("when_body_contains") and not raw.get("note"):
        raise ValueError(f"{provider} row {raw}: permissions [] needs a note saying why")
    if "call" in raw:
        return Row(provider, raw["call"], raw.get("policy"), perms, call=raw["call"])
    return Row(
        provider,
        f"{raw['method']} {raw['path']}",
        raw.get("policy"),
        perms,
        method=raw["method"],
        path=path_regex(raw["path"]),
        query=frozenset(raw.get("query") or ()),
        by_marker={k: tuple(v) for k, v in (raw.get("when_body_contains") or {}).items()},
        otherwise=tuple(raw["otherwise"]) if "otherwise" in raw else None,
    )


def load_map(path: Path) -> ActionsMap:
    """Parse ``actions_map.yaml`` (rows keep their order: first match wins)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    sections = {k: v for k, v in data.items() if isinstance(v, list) and k in _PROVIDERS}
    extra = {}
    for item in data.get("grants_without_traffic") or ():
        if not str(item.get("reason") or "").strip():
            raise ValueError(f"grants_without_traffic entry {item} has no reason")
        extra[(item["policy"], item["permission"])] = item["reason"]
    return ActionsMap(
        policies=data["policies"],
        rows={p: tuple(_row(p, r) for r in rows) for p, rows in sections.items()},
        markers=tuple(data.get("body_markers") or ()),
        without_traffic=extra,
    )


_PROVIDERS = ("aws", "gcp", "azure", "kubernetes")


def section(rec: Mapping[str, Any]) -> str:
    """The map section of a record: ``aws`` for every botocore call (any module), else the
    provider package that made the HTTP call."""
    return "aws" if rec.get("api") == "aws" else str(rec["provider"])


def load_records(path: Path) -> list[dict[str, Any]]:
    """The recorder's JSON lines (several processes may have appended to one file)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def describe(rec: Mapping[str, Any]) -> str:
    """A one-line name for a recorded call."""
    if rec.get("api") == "aws":
        return f"aws {rec['service']}:{rec['operation']}"
    query = f"?{'&'.join(rec['query'])}" if rec.get("query") else ""
    marks = f" [body: {', '.join(rec['markers'])}]" if rec.get("markers") else ""
    return f"{rec['provider']} {rec['method']} {rec['path']}{query}{marks}"


# -- what the policy files grant ------------------------------------------------------------


def _aws_iam(path: Path) -> set[str]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for stmt in doc["Statement"]:
        if stmt.get("Effect") == "Allow":
            actions = stmt.get("Action", [])
            out.update([actions] if isinstance(actions, str) else actions)
    return out


def _gcp_role(path: Path) -> set[str]:
    return set(yaml.safe_load(path.read_text(encoding="utf-8"))["includedPermissions"])


def _azure_role(path: Path) -> set[str]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return set(doc.get("Actions", [])) | set(doc.get("DataActions", []))


def _k8s_rbac(path: Path) -> set[str]:
    out: set[str] = set()
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if not doc or doc.get("kind") not in ("ClusterRole", "Role"):
            continue
        for rule in doc.get("rules", []):
            for group in rule.get("apiGroups", [""]):
                for res in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        out.add(f"{group + '/' if group else ''}{res}:{verb}")
    return out


READERS: dict[str, Callable[[Path], set[str]]] = {
    "aws-iam": _aws_iam,
    "gcp-role": _gcp_role,
    "azure-role": _azure_role,
    "k8s-rbac": _k8s_rbac,
}


def granted(amap: ActionsMap, deploy_dir: Path) -> dict[str, set[str]]:
    """Policy id -> the permissions its file grants."""
    return {
        pid: READERS[spec["format"]](deploy_dir / spec["file"])
        for pid, spec in amap.policies.items()
    }


# -- the comparison -------------------------------------------------------------------------


@dataclass
class Report:
    """What to change so the policy files equal what the code needs."""

    unmapped: list[str] = field(default_factory=list)
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    required: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Nothing to add, remove or map."""
        return not (self.unmapped or self.add or self.remove or self.stale)

    def render(self) -> str:
        """The diff, one instruction per line."""
        parts = [*self.unmapped, *self.add, *self.remove, *self.stale]
        return "\n".join(parts) if parts else "policies match the recorded traffic"


def check(
    records: Iterable[Mapping[str, Any]],
    amap: ActionsMap,
    grants: Mapping[str, set[str]],
    *,
    providers: Iterable[str] | None = None,
) -> Report:
    """Compare recorded calls (of the map sections ``providers``; default: every record,
    so calls from a provider package with no section are reported as unmapped)."""
    wanted = set(providers) if providers is not None else None
    report = Report()
    required: dict[str, dict[str, set[str]]] = {}
    for rec in records:
        if wanted is not None and section(rec) not in wanted:
            continue
        row = amap.row_for(rec)
        perms = row.needs(rec) if row else None
        if row is None or perms is None:
            report.unmapped.append(
                f"map {describe(rec)} (from {rec['module']}): add a row to "
                "deploy/iam/actions_map.yaml"
            )
            continue
        if row.policy is None:
            continue
        for perm in perms:
            required.setdefault(row.policy, {}).setdefault(perm, set()).add(row.label)
    report.required = required
    policies = {p for p in amap.policies if wanted is None or _policy_provider(p) in wanted}
    for pid in sorted(policies):
        need = required.get(pid, {})
        have = grants.get(pid, set())
        target = f"deploy/{amap.policies[pid]['file']}"
        for perm in sorted(set(need) - have):
            report.add.append(f"add {perm} to {target} (needed by {', '.join(sorted(need[perm]))})")
        for perm in sorted(have - set(need)):
            reason = amap.without_traffic.get((pid, perm))
            if reason is None:
                report.remove.append(f"remove {perm} from {target} (no recorded call needs it)")
            else:
                report.notes.append(f"{perm} in {target} granted without traffic: {reason}")
        for (p, perm), _reason in sorted(amap.without_traffic.items()):
            if p == pid and perm in need:
                report.stale.append(
                    f"drop {pid} {perm} from grants_without_traffic in "
                    "deploy/iam/actions_map.yaml (the provider tests exercise it now)"
                )
    return report


def _policy_provider(policy_id: str) -> str:
    return policy_id.split("-", 1)[0]
