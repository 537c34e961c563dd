"""IP reputation tags: Tor exits (dated snapshots matched against the event time), hosting/VPN
and China-headquartered cloud/carrier networks (ASN lists, MaxMind Anonymous-IP), and other
clouds' published ranges. Each tag's source and date go into ``IpIntel.sources`` as
``"<tag> <- <why>"`` so a reviewer can check it. No network access: data comes from the bundled
``agent/enrich/data`` folder and folders written by ``chipwarden data update``.
"""

from __future__ import annotations

import ipaddress
import os
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import structlog

from agent.enrich.mmdb import MmdbDatabase, open_mmdb
from agent.enrich.reputation_data import (
    AsnTag,
    DataFile,
    PrefixSet,
    TorSnapshot,
    parse_file,
    read_manifest,
)
from agent.models import IpIntel, IpKind

__all__ = [
    "ANONYMOUS_IP_FLAGS",
    "BUNDLED_DATA_DIR",
    "DEFAULT_TOR_WINDOW_DAYS",
    "Reputation",
    "default_user_data_dir",
    "tag_matches",
]

log = structlog.get_logger(__name__)

BUNDLED_DATA_DIR: Final = Path(__file__).resolve().parent / "data"
DEFAULT_TOR_WINDOW_DAYS: Final = 7
ANONYMOUS_IP_FLAGS: Final[Mapping[str, str]] = {
    "is_tor_exit_node": "tor-exit",
    "is_anonymous_vpn": "vpn",
    "is_public_proxy": "proxy",
    "is_residential_proxy": "residential-proxy",
    "is_hosting_provider": "hosting",
}
"""MaxMind GeoIP Anonymous IP record keys (present only when true) -> our tag (domain.md 5.3)."""
_REPLACED_WHOLESALE: Final = frozenset({"aws-ip-ranges", "gcp-cloud", "azure-service-tags"})


def default_user_data_dir() -> Path:
    """Where ``chipwarden data update`` writes: ``$CHIPWARDEN_DATA_DIR`` or XDG data home."""
    explicit = os.environ.get("CHIPWARDEN_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser() / "reputation"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "chipwarden" / "reputation"


def tag_matches(wanted: str, tag: str) -> bool:
    """``wanted`` names ``tag`` itself or its family: ``cn-cloud`` matches ``cn-cloud:alibaba``,
    ``tor`` matches ``tor-exit``, ``cloud`` matches ``cloud:aws``."""
    return tag == wanted or (tag.startswith(wanted) and tag[len(wanted)] in ":-")


class _Ranges:
    """Merged address ranges of one tag, looked up by bisection (IPv4 and IPv6 apart)."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        nets: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            nets[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._tables: dict[int, tuple[list[int], list[int]]] = {}
        for version, spans in nets.items():
            merged: list[list[int]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self._tables[version] = ([s for s, _ in merged], [e for _, e in merged])
        self.size = sum(len(spans) for spans in nets.values())

    def __contains__(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        starts, ends = self._tables[addr.version]
        value = int(addr)
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= ends[i]


@dataclass(frozen=True)
class _PrefixTag:
    tag: str
    ranges: _Ranges
    source: str


class Reputation:
    """Reputation tagger over loaded data; build with :meth:`load`."""

    def __init__(
        self,
        *,
        asn_tags: Sequence[AsnTag] = (),
        tor: Sequence[TorSnapshot] = (),
        prefixes: Sequence[PrefixSet] = (),
        tor_window_days: int = DEFAULT_TOR_WINDOW_DAYS,
        anonymous: MmdbDatabase | None = None,
    ) -> None:
        if tor_window_days < 0:
            raise ValueError(f"tor_window_days must be >= 0, got {tor_window_days}")
        self._window = tor_window_days
        self._anonymous = anonymous
        self._asn: dict[int, list[AsnTag]] = {}
        for row in asn_tags:
            known = self._asn.setdefault(row.asn, [])
            if all(r.tag != row.tag for r in known):
                known.append(row)
        self._snapshots = sorted(tor, key=lambda s: s.date)
        self._tor: dict[str, list[tuple[date, int]]] = {}
        for index, snap in enumerate(self._snapshots):
            for ip, day in snap.seen.items():
                self._tor.setdefault(ip, []).append((day, index))
        self._prefix_tags = [
            _PrefixTag(tag, _Ranges(cidrs), f"{pset.source} ({pset.date.isoformat()})")
            for pset in prefixes
            for tag, cidrs in pset.prefixes.items()
        ]

    @classmethod
    def load(
        cls,
        folders: Sequence[Path],
        *,
        tor_window_days: int = DEFAULT_TOR_WINDOW_DAYS,
        anonymous_db: Path | None = None,
    ) -> Reputation:
        """Read every manifest in ``folders`` (missing folders are skipped). Cloud range files
        of one kind replace each other (the newest wins); other kinds add up."""
        entries: list[DataFile] = []
        for folder in folders:
            entries.extend(read_manifest(folder))
        newest: dict[str, DataFile] = {}
        for e in entries:
            if e.kind in _REPLACED_WHOLESALE and (
                e.kind not in newest or e.date >= newest[e.kind].date
            ):
                newest[e.kind] = e
        asn_tags: list[AsnTag] = []
        tor: list[TorSnapshot] = []
        prefixes: list[PrefixSet] = []
        for e in entries:
            if e.kind in _REPLACED_WHOLESALE and newest[e.kind] is not e:
                continue
            parsed = parse_file(e)
            if isinstance(parsed, TorSnapshot):
                tor.append(parsed)
            elif isinstance(parsed, PrefixSet):
                prefixes.append(parsed)
            else:
                asn_tags.extend(parsed)
        anonymous = open_mmdb(anonymous_db, key="geo.anonymous_db") if anonymous_db else None
        rep = cls(
            asn_tags=asn_tags,
            tor=tor,
            prefixes=prefixes,
            tor_window_days=tor_window_days,
            anonymous=anonymous,
        )
        log.info("reputation_loaded", sources=list(rep.describe()), files=len(entries))
        return rep

    def describe(self) -> tuple[str, ...]:
        """One line per data set in use (for ``AuditRun.geo_sources``)."""
        out = []
        if self._snapshots:
            days = ", ".join(s.date.isoformat() for s in self._snapshots[-3:])
            out.append(
                f"Tor exit lists: {len(self._snapshots)} snapshot(s), newest {days} "
                f"(matched within {self._window} days of the session)"
            )
        if self._asn:
            out.append(f"ASN reputation list: {len(self._asn)} ASNs")
        out.extend(f"{p.tag} ranges: {p.source}" for p in self._prefix_tags)
        if self._anonymous is not None:
            out.append(self._anonymous.source)
        return tuple(out)

    def tag(
        self, intels: Sequence[IpIntel], at: Sequence[datetime | None] | None = None
    ) -> list[IpIntel]:
        """``intels`` with reputation tags added; ``at[i]`` is the event time of ``intels[i]``
        (``None``: Tor is judged by the newest snapshot)."""
        if at is not None and len(at) != len(intels):
            raise ValueError(f"{len(at)} event times for {len(intels)} addresses")
        out = []
        for i, intel in enumerate(intels):
            if intel.kind is not IpKind.PUBLIC or not intel.normalized:
                out.append(intel)
                continue
            found = self._tags_for(intel, at[i] if at is not None else None)
            out.append(_with_tags(intel, found) if found else intel)
        return out

    def _tags_for(self, intel: IpIntel, when: datetime | None) -> list[tuple[str, str]]:
        ip = intel.normalized or ""
        found: list[tuple[str, str]] = []
        tor = self._tor_hit(ip, when)
        if tor:
            found.append(("tor-exit", tor))
        if intel.asn is not None:
            for row in self._asn.get(intel.asn, ()):
                org = f" ({row.org})" if row.org else ""
                found.append((row.tag, f"AS{row.asn}{org} in {row.source} [{row.confidence}]"))
        if self._prefix_tags:
            addr = ipaddress.ip_address(ip)
            found += [(p.tag, f"in {p.source}") for p in self._prefix_tags if addr in p.ranges]
        if self._anonymous is not None:
            record = self._anonymous.get(ip)
            if record:
                found += _anonymous_tags(record, self._anonymous.source)
        return found

    def _tor_hit(self, ip: str, when: datetime | None) -> str | None:
        sightings = self._tor.get(ip)
        if not sightings:
            return None
        if when is None:
            newest = len(self._snapshots) - 1
            for day, index in sightings:
                if index == newest:
                    snap = self._snapshots[index]
                    return f"listed {day.isoformat()} in {snap.source} (newest list; no event time)"
            return None
        target = when.date()
        day, index = min(sightings, key=lambda s: abs((s[0] - target).days))
        gap = abs((day - target).days)
        if gap > self._window:
            return None
        return (
            f"listed {day.isoformat()} in {self._snapshots[index].source}, "
            f"{gap} day(s) from the session (window {self._window} days)"
        )

    def close(self) -> None:
        """Close the Anonymous-IP database, if one is open (idempotent)."""
        if self._anonymous is not None:
            self._anonymous.close()


def _anonymous_tags(record: Mapping[str, Any], source: str) -> list[tuple[str, str]]:
    out = []
    for key, tag in ANONYMOUS_IP_FLAGS.items():
        if record.get(key) is True:
            out.append((tag, f"{source} {key}"))
    return out


def _with_tags(intel: IpIntel, found: list[tuple[str, str]]) -> IpIntel:
    tags = list(intel.tags)
    sources = list(intel.sources)
    for tag, why in found:
        if tag not in tags:
            tags.append(tag)
        line = f"{tag} <- {why}"
        if line not in sources:
            sources.append(line)
    return intel.model_copy(update={"tags": tuple(tags), "sources": tuple(sources)})
