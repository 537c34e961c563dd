"""Exports of stored findings: CSV, JSON Lines, OCSF Detection Finding JSON, HTML report.

``EXPORTERS`` is the registry of formats (name -> media type, file suffix, writer); the CLI
(``findings export``) and the API (``GET /v1/findings/export``) both go through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from agent.errors import UsageError
from agent.export.html_report import render_report
from agent.export.ocsf import to_ocsf
from agent.export.tabular import write_csv, write_jsonl
from agent.models import AuditRun, Finding

__all__ = ["EXPORTERS", "ExportFormat", "export_findings"]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: how to write it and how to serve it."""

    name: str
    media_type: str
    suffix: str
    write: Callable[[Sequence[Finding], TextIO, AuditRun | None, datetime], None]


def _csv(findings: Sequence[Finding], out: TextIO, _run: AuditRun | None, _at: datetime) -> None:
    write_csv(findings, out)


def _jsonl(findings: Sequence[Finding], out: TextIO, _run: AuditRun | None, _at: datetime) -> None:
    write_jsonl(findings, out)


def _ocsf(findings: Sequence[Finding], out: TextIO, _run: AuditRun | None, _at: datetime) -> None:
    """A JSON array of events (Security Lake and most SIEMs also take one per line: jsonl)."""
    json.dump([to_ocsf(f) for f in findings], out, separators=(",", ":"))
    out.write("\n")


def _html(findings: Sequence[Finding], out: TextIO, run: AuditRun | None, at: datetime) -> None:
    out.write(render_report(findings, run=run, generated_at=at))


EXPORTERS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("csv", "text/csv; charset=utf-8", ".csv", _csv),
        ExportFormat("jsonl", "application/x-ndjson", ".jsonl", _jsonl),
        ExportFormat("ocsf", "application/json", ".ocsf.json", _ocsf),
        ExportFormat("html", "text/html; charset=utf-8", ".html", _html),
    )
}


def export_findings(
    findings: Sequence[Finding],
    fmt: str,
    out: TextIO,
    *,
    run: AuditRun | None = None,
    generated_at: datetime,
) -> None:
    """Write ``findings`` to ``out`` in format ``fmt`` (csv, jsonl, ocsf, html)."""
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise UsageError(
            f"unknown export format {fmt!r}", hint="use one of: " + ", ".join(EXPORTERS)
        )
    exporter.write(findings, out, run, generated_at)
