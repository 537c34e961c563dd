"""Render findings, inventory and IP lookups as table, JSON, JSON Lines or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.models import Finding, GpuInstance, IpIntel, Severity

__all__ = [
    "OutputFormat",
    "finding_to_dict",
    "instance_to_dict",
    "intel_to_dict",
    "render_findings",
    "render_records",
]

_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


class OutputFormat(StrEnum):
    """``--format`` choices."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


def intel_to_dict(ip: IpIntel) -> dict[str, Any]:
    """The ``ip`` block of a finding (also ``chipwarden ip lookup --format json``)."""
    return {
        "address": ip.ip,
        "kind": ip.kind.value,
        "country": ip.country,
        "subdivision": ip.subdivision,
        "city": ip.city,
        "asn": ip.asn,
        "asn_org": ip.asn_org,
        "tags": list(ip.tags),
        "source": list(ip.sources),
        "unknown_reason": ip.unknown_reason,
    }


def finding_to_dict(f: Finding) -> dict[str, Any]:
    """The documented JSON shape of one finding (README 'Output')."""
    s = f.session
    return {
        "id": f.id,
        "policy_id": f.policy_id,
        "severity": f.severity.value,
        "title": f.title,
        "reasons": list(f.reasons),
        "status": f.status.value,
        "indeterminate": f.indeterminate,
        "session": {
            "id": s.session_id,
            "provider": s.provider,
            "account": s.account,
            "region": s.region,
            "instance_id": s.instance_id,
            "principal": s.principal,
            "source_ip": s.source_ip,
            "method": s.method.value,
            "outcome": s.outcome.value,
            "started_at": s.started_at.isoformat(),
            "ended_at": s.ended_at.isoformat() if s.ended_at else None,
            "evidence": [str(e) for e in s.evidence],
            "source": s.source,
        },
        "ip": intel_to_dict(f.ip),
        "instance": {
            "id": f.instance.id,
            "type": f.instance.type,
            "in_inventory": f.instance.in_inventory,
            "accelerators": [dict(a) for a in f.instance.accelerators],
        },
        "jurisdictions": list(f.jurisdictions),
        "citations": list(f.citations),
        "bundle_revision": f.bundle_revision,
        "pack_version": f.pack_version,
        "first_seen": f.first_seen.isoformat(),
        "last_seen": f.last_seen.isoformat(),
    }


def instance_to_dict(inst: GpuInstance, classes: dict[str, Any]) -> dict[str, Any]:
    """One inventory row with accelerator export classes."""
    return {
        "provider": inst.provider,
        "account": inst.account,
        "region": inst.region,
        "instance_id": inst.instance_id,
        "instance_type": inst.instance_type,
        "state": inst.state,
        "accelerators": [
            {
                "model": a.model,
                "count": a.count,
                "export_class": classes[a.model].export_class if a.model in classes else "unknown",
            }
            for a in inst.accelerators
        ],
        "private_ips": list(inst.private_ips),
        "public_ips": list(inst.public_ips),
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted columns; scalar lists joined with '; ', others as JSON."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return {prefix: "; ".join(str(v) for v in value)}
        return {prefix: json.dumps(value, sort_keys=True)}
    return {prefix: value}


def render_records(
    records: Sequence[dict[str, Any]],
    fmt: OutputFormat,
    out: TextIO,
    *,
    table: Table | None = None,
) -> None:
    """Write dict records as JSON / JSONL / CSV, or print the given rich table."""
    if fmt is OutputFormat.JSON:
        json.dump(list(records), out, indent=2, default=str)
        out.write("\n")
    elif fmt is OutputFormat.JSONL:
        for rec in records:
            out.write(json.dumps(rec, default=str, separators=(",", ":")) + "\n")
    elif fmt is OutputFormat.CSV:
        rows = [_flatten(r) for r in records]
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        console = Console(file=out, width=None if out.isatty() else 200)
        if table is not None:
            console.print(table)


def findings_table(findings: Iterable[Finding], *, title: str) -> Table:
    """Rich table of flagged sessions, most severe first."""
    table = Table(title=title, show_lines=False, header_style="bold",
                  caption="reasons, evidence and citations: --format json")
    for col in (
        "Severity",
        "Policy",
        "When (UTC)",
        "Source IP",
        "Where",
        "Principal",
        "Method",
        "Target",
        "Accelerators",
    ):
        table.add_column(col, overflow="fold")
    for f in sorted(findings, key=lambda x: (-x.severity.rank, x.session.started_at)):
        where = f.ip.subdivision or f.ip.country or f"({f.ip.kind.value})"
        accs = ", ".join(
            f"{a['count']:g}x {a['model']} [{a['export_class']}]" for a in f.instance.accelerators
        ) or ("not in inventory" if not f.instance.in_inventory else "none")
        table.add_row(
            f"[{_SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]",
            escape(f.policy_id),
            f.session.started_at.strftime("%Y-%m-%d %H:%M"),
            escape(f.session.source_ip or "-"),
            escape(where),
            escape(_short_principal(f.session.principal)),
            f"{f.session.method.value}"
            + ("" if f.session.outcome.value == "success" else f" ({f.session.outcome.value})"),
            escape(f"{f.instance.id or '-'} {f.instance.type or ''}".strip()),
            escape(accs),
        )
    return table


def _short_principal(principal: str | None) -> str:
    """``arn:aws:sts::1:assumed-role/role/user`` -> ``role/user``; others unchanged."""
    if not principal:
        return "-"
    if principal.startswith("arn:") and "/" in principal:
        return principal.split(":", 5)[-1].split("/", 1)[-1]
    return principal


def render_findings(
    findings: Sequence[Finding], fmt: OutputFormat, out: TextIO, *, title: str
) -> None:
    """Findings in the chosen format."""
    table = findings_table(findings, title=title) if fmt is OutputFormat.TABLE else None
    render_records([finding_to_dict(f) for f in findings], fmt, out, table=table)


def to_text(records: Sequence[dict[str, Any]], fmt: OutputFormat) -> str:
    """Convenience for tests: render to a string."""
    buf = io.StringIO()
    render_records(records, fmt, buf)
    return buf.getvalue()
