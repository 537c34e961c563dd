"""CSV (fixed, documented columns) and JSON Lines (the README's finding shape) exports."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from agent.models import Finding
from agent.output import finding_to_dict

__all__ = ["CSV_COLUMNS", "csv_row", "export_dict", "write_csv", "write_jsonl"]

CSV_COLUMNS = (
    "id",
    "severity",
    "status",
    "policy_id",
    "title",
    "started_at",
    "provider",
    "account",
    "region",
    "instance_id",
    "instance_type",
    "accelerators",
    "principal",
    "method",
    "outcome",
    "source_ip",
    "country",
    "subdivision",
    "asn",
    "jurisdictions",
    "indeterminate",
    "reasons",
    "first_seen",
    "last_seen",
    "assignee",
    "resolution",
    "exception_id",
    "bundle_revision",
)
"""The CSV header, in order (a contract for spreadsheets and SIEM field maps)."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """Text for one cell; a leading formula character is quoted (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(f: Finding) -> dict[str, str]:
    """One finding as a CSV row keyed by ``CSV_COLUMNS``."""
    s = f.session
    accs = "; ".join(
        f"{a['count']:g}x {a['model']} [{a['export_class']}]"
        for a in f.instance.accelerators
    )
    values: dict[str, Any] = {
        "id": f.id,
        "severity": f.severity.value,
        "status": f.status.value,
        "policy_id": f.policy_id,
        "title": f.title,
        "started_at": s.started_at.isoformat(),
        "provider": s.provider,
        "account": s.account,
        "region": s.region,
        "instance_id": f.instance.id or s.instance_id,
        "instance_type": f.instance.type,
        "accelerators": accs,
        "principal": s.principal,
        "method": s.method.value,
        "outcome": s.outcome.value,
        "source_ip": s.source_ip,
        "country": f.ip.country,
        "subdivision": f.ip.subdivision,
        "asn": f.ip.asn,
        "jurisdictions": "; ".join(f.jurisdictions),
        "indeterminate": str(f.indeterminate).lower(),
        "reasons": " | ".join(f.reasons),
        "first_seen": f.first_seen.isoformat(),
        "last_seen": f.last_seen.isoformat(),
        "assignee": f.extra.get("assignee"),
        "resolution": f.extra.get("resolution"),
        "exception_id": f.extra.get("exception_id"),
        "bundle_revision": f.bundle_revision,
    }
    return {k: _cell(values[k]) for k in CSV_COLUMNS}


def write_csv(findings: Iterable[Finding], out: TextIO) -> int:
    """Header plus one row per finding; returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for f in findings:
        writer.writerow(csv_row(f))
        n += 1
    return n


def export_dict(f: Finding) -> dict[str, Any]:
    """The README finding shape plus the review fields (``extra``)."""
    data = finding_to_dict(f)
    data["review"] = dict(f.extra)
    return data


def write_jsonl(findings: Iterable[Finding], out: TextIO) -> int:
    """One JSON object per line; returns the number of lines."""
    n = 0
    for f in findings:
        out.write(json.dumps(export_dict(f), separators=(",", ":"), default=str) + "\n")
        n += 1
    return n
