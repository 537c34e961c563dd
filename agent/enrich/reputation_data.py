"""Reputation data files: parsers (pure, text -> records) and the dated manifest.

Formats: the Tor bulk exit list (one IP a line) and TorDNSEL ``exit-addresses``
(``ExitNode``/``Published``/``LastStatus``/``ExitAddress``), AWS ``ip-ranges.json``, GCP
``cloud.json``, Azure Service Tags, and two CSVs of our own (``asn,tag,org,source,confidence``
and ``cidr,tag,source``). Every problem raises ``RecordError`` naming the file and line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from agent.errors import RecordError, UsageError
from agent.yamlio import load_yaml

__all__ = [
    "KINDS",
    "MANIFEST",
    "AsnTag",
    "DataFile",
    "Kind",
    "PrefixSet",
    "TorSnapshot",
    "detect_kind",
    "parse_asn_tags",
    "parse_file",
    "read_manifest",
    "write_manifest",
]

Kind = Literal[
    "asn-tags",
    "prefix-tags",
    "tor-bulk",
    "tor-exit-addresses",
    "aws-ip-ranges",
    "gcp-cloud",
    "azure-service-tags",
]
KINDS: Final[tuple[str, ...]] = (
    "asn-tags",
    "prefix-tags",
    "tor-bulk",
    "tor-exit-addresses",
    "aws-ip-ranges",
    "gcp-cloud",
    "azure-service-tags",
)
MANIFEST: Final = "sources.yaml"
CLOUD_TAGS: Final = {"aws-ip-ranges": "cloud:aws", "gcp-cloud": "cloud:gcp"}
_TAG = re.compile(r"^[a-z0-9][a-z0-9:._-]{0,63}$")
_DATE_IN_NAME = re.compile(r"(20[0-9]{2})-?([01][0-9])-?([0-3][0-9])")


@dataclass(frozen=True)
class DataFile:
    """One manifest entry: a file of ``kind`` observed on ``date`` from ``source``."""

    path: Path
    kind: str
    date: dt.date
    source: str
    licence: str = ""


@dataclass(frozen=True)
class AsnTag:
    """``asn`` carries ``tag`` (e.g. ``cn-cloud:alibaba``) according to ``source``."""

    asn: int
    tag: str
    org: str
    source: str
    confidence: str


@dataclass(frozen=True)
class TorSnapshot:
    """Exit addresses with the day each was seen (bulk lists: the list's date)."""

    date: dt.date
    source: str
    seen: dict[str, dt.date]


@dataclass(frozen=True)
class PrefixSet:
    """CIDR blocks per tag (cloud ranges, custom lists) with the list's source and date."""

    date: dt.date
    source: str
    prefixes: dict[str, list[str]]


def _fail(path: Path, line: int | None, message: str) -> RecordError:
    where = f"{path}:{line}" if line else str(path)
    return RecordError(
        f"{where}: {message}",
        hint="check the file format in docs/detection.md ('Reputation data')",
    )


def _ip(text: str, path: Path, line: int) -> str:
    try:
        return ipaddress.ip_address(text.strip()).compressed
    except ValueError as exc:
        raise _fail(path, line, f"not an IP address: {text.strip()!r}") from exc


def _cidr(text: str, path: Path, where: str) -> str:
    try:
        return ipaddress.ip_network(text.strip(), strict=False).compressed
    except ValueError as exc:
        raise _fail(path, None, f"{where}: not a CIDR block: {text!r}") from exc


def parse_tor_bulk(text: str, *, path: Path, day: date, source: str) -> TorSnapshot:
    """The bulk exit list: one address a line, ``#`` comments and blank lines ignored."""
    seen: dict[str, date] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            seen[_ip(line, path, n)] = day
    if not seen:
        raise _fail(path, None, "no exit addresses in the bulk list")
    return TorSnapshot(date=day, source=source, seen=seen)


def _stamp(parts: list[str], path: Path, line: int) -> datetime:
    try:
        return datetime.fromisoformat(" ".join(parts[:2])).replace(tzinfo=UTC)
    except (ValueError, IndexError) as exc:
        raise _fail(path, line, f"bad timestamp {' '.join(parts)!r}") from exc


def parse_tor_exit_addresses(text: str, *, path: Path, source: str) -> TorSnapshot:
    """TorDNSEL ``exit-addresses``; each address keeps the day of its latest observation."""
    seen: dict[str, date] = {}
    downloaded: date | None = None
    relay = False
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split()
        if not parts or parts[0].startswith("@"):
            continue
        key = parts[0]
        if key == "Downloaded":
            downloaded = _stamp(parts[1:], path, n).date()
        elif key == "ExitNode":
            relay = True
        elif key == "ExitAddress":
            if not relay or len(parts) < 4:
                raise _fail(path, n, "ExitAddress needs '<ip> <date> <time>' after an ExitNode")
            ip = _ip(parts[1], path, n)
            day = _stamp(parts[2:4], path, n).date()
            seen[ip] = max(day, seen.get(ip, day))
        elif key not in {"Published", "LastStatus"}:
            raise _fail(path, n, f"unknown TorDNSEL keyword {key!r}")
    if not seen:
        raise _fail(path, None, "no ExitAddress lines")
    day = downloaded or max(seen.values())
    return TorSnapshot(date=day, source=source, seen=seen)


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, exc.lineno, f"not JSON: {exc.msg}") from exc


def _stamp_date(value: Any, fmt: str, path: Path, field: str) -> date:
    try:
        return datetime.strptime(str(value), fmt).date()
    except ValueError as exc:
        raise _fail(path, None, f"{field}: unexpected date {value!r}") from exc


def parse_aws_ranges(text: str, *, path: Path, source: str) -> PrefixSet:
    """AWS ``ip-ranges.json``: every ``ip_prefix``/``ipv6_prefix`` becomes ``cloud:aws``."""
    data = _json(text, path)
    if not isinstance(data, dict) or "prefixes" not in data:
        raise _fail(path, None, "not an AWS ip-ranges.json (no 'prefixes')")
    day = _stamp_date(data.get("createDate", ""), "%Y-%m-%d-%H-%M-%S", path, "createDate")
    cidrs = [
        _cidr(p.get("ip_prefix", ""), path, f"prefixes[{i}]")
        for i, p in enumerate(data["prefixes"])
    ]
    cidrs += [
        _cidr(p.get("ipv6_prefix", ""), path, f"ipv6_prefixes[{i}]")
        for i, p in enumerate(data.get("ipv6_prefixes", []))
    ]
    return PrefixSet(date=day, source=source, prefixes={"cloud:aws": cidrs})


def parse_gcp_cloud(text: str, *, path: Path, source: str) -> PrefixSet:
    """GCP ``cloud.json``: ``ipv4Prefix``/``ipv6Prefix`` of each entry become ``cloud:gcp``."""
    data = _json(text, path)
    if not isinstance(data, dict) or "creationTime" not in data:
        raise _fail(path, None, "not a GCP cloud.json (no 'creationTime')")
    day = _stamp_date(str(data["creationTime"])[:10], "%Y-%m-%d", path, "creationTime")
    cidrs = []
    for i, p in enumerate(data.get("prefixes", [])):
        value = p.get("ipv4Prefix") or p.get("ipv6Prefix")
        cidrs.append(_cidr(value or "", path, f"prefixes[{i}]"))
    return PrefixSet(date=day, source=source, prefixes={"cloud:gcp": cidrs})


def parse_azure_tags(text: str, *, path: Path, day: date, source: str) -> PrefixSet:
    """Azure Service Tags: the ``AzureCloud*`` tags' ``addressPrefixes`` become ``cloud:azure``."""
    data = _json(text, path)
    if not isinstance(data, dict) or not isinstance(data.get("values"), list):
        raise _fail(path, None, "not an Azure Service Tags file (no 'values')")
    cidrs: list[str] = []
    for i, tag in enumerate(data["values"]):
        if not str(tag.get("name", "")).startswith("AzureCloud"):
            continue
        for prefix in tag.get("properties", {}).get("addressPrefixes", []):
            cidrs.append(_cidr(prefix, path, f"values[{i}]"))
    if not cidrs:
        raise _fail(path, None, "no AzureCloud address prefixes")
    return PrefixSet(date=day, source=source, prefixes={"cloud:azure": cidrs})


def _csv_rows(text: str, path: Path, header: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    names = tuple(reader.fieldnames or ())
    if names[: len(header)] != header:
        raise _fail(path, 1, f"header must start with {','.join(header)} (got {','.join(names)})")
    return [(n, row) for n, row in enumerate(reader, 2)]


def _tag(value: str, path: Path, line: int) -> str:
    tag = (value or "").strip()
    if not _TAG.match(tag):
        raise _fail(path, line, f"bad tag {tag!r} (lowercase, digits, ':', '.', '_', '-')")
    return tag


def parse_asn_tags(text: str, *, path: Path) -> list[AsnTag]:
    """``asn,tag,org,source,confidence`` rows (``AS`` prefix allowed on the number)."""
    out = []
    for n, row in _csv_rows(text, path, ("asn", "tag")):
        raw = (row.get("asn") or "").strip().upper().removeprefix("AS")
        if not raw.isdigit():
            raise _fail(path, n, f"asn: not a number: {row.get('asn')!r}")
        out.append(
            AsnTag(
                asn=int(raw),
                tag=_tag(row.get("tag") or "", path, n),
                org=(row.get("org") or "").strip(),
                source=(row.get("source") or "").strip() or str(path.name),
                confidence=(row.get("confidence") or "").strip() or "S",
            )
        )
    return out


def parse_prefix_tags(text: str, *, path: Path, day: date, source: str) -> PrefixSet:
    """``cidr,tag[,source]`` rows, e.g. published ranges of a China-HQ cloud."""
    prefixes: dict[str, list[str]] = {}
    for n, row in _csv_rows(text, path, ("cidr", "tag")):
        tag = _tag(row.get("tag") or "", path, n)
        prefixes.setdefault(tag, []).append(_cidr(row.get("cidr") or "", path, f"line {n}"))
    return PrefixSet(date=day, source=source, prefixes=prefixes)


def detect_kind(path: Path, text: str) -> str | None:
    """Guess a file's kind from its content (``None`` = not a reputation file)."""
    head = text.lstrip()[:4096]
    first = head.splitlines()[0].strip().lower() if head else ""
    if head.startswith("@type tordnsel") or head.startswith("ExitNode"):
        return "tor-exit-addresses"
    if head.startswith("{"):
        if '"syncToken"' in head and '"createDate"' in head:
            return "aws-ip-ranges"
        if '"creationTime"' in head:
            return "gcp-cloud"
        if '"changeNumber"' in head and '"values"' in head:
            return "azure-service-tags"
        return None
    if first.startswith("asn,tag"):
        return "asn-tags"
    if first.startswith("cidr,tag"):
        return "prefix-tags"
    lines = [ln.strip() for ln in head.splitlines() if ln.strip() and not ln.startswith("#")]
    try:
        for line in lines[:20]:
            ipaddress.ip_address(line)
    except ValueError:
        return None
    return "tor-bulk" if lines else None


def date_from_name(path: Path) -> date | None:
    """``YYYY-MM-DD`` (or ``YYYYMMDD``) in a file name, if any."""
    match = _DATE_IN_NAME.search(path.name)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def parse_file(entry: DataFile) -> list[AsnTag] | TorSnapshot | PrefixSet:
    """Parse one manifest entry's file by its kind."""
    try:
        text = entry.path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(entry.path, None, f"cannot read: {exc}") from exc
    path, source, kind = entry.path, entry.source, entry.kind
    if kind == "asn-tags":
        return parse_asn_tags(text, path=path)
    if kind == "prefix-tags":
        return parse_prefix_tags(text, path=path, day=entry.date, source=source)
    if kind == "tor-bulk":
        return parse_tor_bulk(text, path=path, day=entry.date, source=source)
    if kind == "tor-exit-addresses":
        return parse_tor_exit_addresses(text, path=path, source=source)
    if kind == "aws-ip-ranges":
        return parse_aws_ranges(text, path=path, source=source)
    if kind == "gcp-cloud":
        return parse_gcp_cloud(text, path=path, source=source)
    if kind == "azure-service-tags":
        return parse_azure_tags(text, path=path, day=entry.date, source=source)
    raise _fail(path, None, f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


def read_manifest(folder: Path) -> list[DataFile]:
    """Entries of ``folder/sources.yaml`` (empty when the folder has none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return []
    try:  # size, node and alias limits of every YAML file chipwarden reads
        data = load_yaml(path).data or {}
    except UsageError as exc:
        raise _fail(path, None, f"unreadable manifest: {exc.message}") from exc
    entries = []
    for i, item in enumerate(data.get("files") or []):
        try:
            day = item["date"]
            day = day if isinstance(day, date) else date.fromisoformat(str(day))
            if item["kind"] not in KINDS:
                raise ValueError(f"unknown kind {item['kind']!r}")
            entries.append(
                DataFile(
                    path=folder / str(item["file"]),
                    kind=str(item["kind"]),
                    date=day,
                    source=str(item["source"]),
                    licence=str(item.get("licence", "")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _fail(path, None, f"files[{i}]: {exc}") from exc
    return entries


def write_manifest(folder: Path, entries: list[DataFile]) -> Path:
    """Write ``folder/sources.yaml`` listing ``entries`` (paths relative to ``folder``)."""
    rows = [
        {
            "file": e.path.relative_to(folder).as_posix(),
            "kind": e.kind,
            "date": e.date.isoformat(),
            "source": e.source,
            **({"licence": e.licence} if e.licence else {}),
        }
        for e in entries
    ]
    path = folder / MANIFEST
    header = "# Written by `chipwarden data update`; one entry per dated reputation file.\n"
    path.write_text(header + yaml.safe_dump({"files": rows}, sort_keys=False), encoding="utf-8")
    return path
