"""``chipwarden data update --from DIR``: import reputation files fetched by the operator.

Nothing is downloaded at audit time. The operator drops the published files into a folder
(Tor ``exit-addresses`` or bulk list, AWS ``ip-ranges.json``, GCP ``cloud.json``, Azure Service
Tags, or our ``asn,tag,...`` / ``cidr,tag,...`` CSVs); each is recognised by its content,
dated, validated by parsing, copied into the user data folder and listed in its manifest.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import structlog

from agent.enrich.reputation import Reputation
from agent.enrich.reputation_data import (
    DataFile,
    date_from_name,
    detect_kind,
    parse_file,
    read_manifest,
    write_manifest,
)
from agent.errors import RecordError, UsageError

__all__ = ["UpdateReport", "update_reputation_data"]

log = structlog.get_logger(__name__)

_LABELS = {
    "tor-bulk": "Tor bulk exit list",
    "tor-exit-addresses": "Tor exit list",
    "aws-ip-ranges": "AWS ip-ranges.json",
    "gcp-cloud": "GCP cloud.json",
    "azure-service-tags": "Azure Service Tags",
    "asn-tags": "ASN reputation list",
    "prefix-tags": "prefix reputation list",
}


@dataclass
class UpdateReport:
    """What an update imported, skipped (not reputation data) and rejected (with why)."""

    target: Path
    imported: list[DataFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def _content_date(kind: str, path: Path) -> date | None:
    """The date a file states about itself (TorDNSEL ``Downloaded``, AWS/GCP stamps)."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if kind == "tor-exit-addresses":
        for line in text.splitlines()[:5]:
            if line.startswith("Downloaded "):
                return datetime.fromisoformat(line.split(" ", 1)[1].strip()).date()
        return None
    if kind in {"aws-ip-ranges", "gcp-cloud"}:
        data = json.loads(text)
        if kind == "aws-ip-ranges":
            return datetime.strptime(str(data.get("createDate")), "%Y-%m-%d-%H-%M-%S").date()
        return date.fromisoformat(str(data.get("creationTime"))[:10])
    return None


def _date_for(kind: str, path: Path, default: date | None) -> date | None:
    try:
        stated = _content_date(kind, path)
    except (ValueError, TypeError, json.JSONDecodeError):
        stated = None
    return stated or date_from_name(path) or default


def update_reputation_data(
    *, source: Path, target: Path, default_date: date | None, today: Callable[[], date]
) -> UpdateReport:
    """Import every recognisable file under ``source`` into ``target`` (and its manifest).

    A file that cannot be dated or parsed is rejected with its reason; the rest go in. Raises
    ``UsageError`` if ``source`` is not a folder or nothing usable was found.
    """
    if not source.is_dir():
        raise UsageError(f"{source}: not a folder", hint="pass the folder holding the files")
    report = UpdateReport(target=target)
    entries = {e.path.resolve(): e for e in read_manifest(target)}
    stamp = today().isoformat()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            report.skipped.append(f"{path}: not a text file")
            continue
        kind = detect_kind(path, text)
        if kind is None:
            report.skipped.append(f"{path}: not a reputation file")
            continue
        day = _date_for(kind, path, default_date)
        if day is None and kind != "asn-tags":
            report.rejected.append(
                f"{path}: cannot date this {_LABELS[kind]}; put YYYY-MM-DD in its name or pass "
                "--date"
            )
            continue
        day = day or today()
        label = f"{_LABELS[kind]} {day.isoformat()} ({path.name}, imported {stamp})"
        probe = DataFile(path=path, kind=kind, date=day, source=label)
        try:
            parse_file(probe)
        except RecordError as exc:
            report.rejected.append(exc.message)
            continue
        dest = target / kind / f"{day.isoformat()}-{path.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        entry = DataFile(path=dest, kind=kind, date=day, source=label)
        entries[dest.resolve()] = entry
        report.imported.append(entry)
    if report.imported:
        target.mkdir(parents=True, exist_ok=True)
        write_manifest(target, sorted(entries.values(), key=lambda e: (e.kind, e.date)))
        Reputation.load([target]).close()  # the folder as a whole must load
    elif not report.rejected:
        raise UsageError(
            f"{source}: no reputation files found",
            hint="expected Tor exit lists, ip-ranges.json, cloud.json, Service Tags or our CSVs",
        )
    log.info(
        "reputation_data_updated",
        target=str(target),
        imported=len(report.imported),
        skipped=len(report.skipped),
        rejected=len(report.rejected),
    )
    return report
