"""MaxMind-format (.mmdb) databases: open with a config-key-aware error, read one record,
and pull country / subdivision / city / ASN out of the MaxMind, DB-IP and IPinfo shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import maxminddb
import structlog

from agent.errors import ConfigError

__all__ = [
    "GEOLITE_HINT",
    "MmdbDatabase",
    "asn_of",
    "city_of",
    "country_of",
    "open_mmdb",
    "subdivision_of",
]

log = structlog.get_logger(__name__)

GEOLITE_HINT: Final = (
    "download the free GeoLite2 databases (GeoLite2-Country/-City/-ASN .mmdb) from "
    "https://dev.maxmind.com/geoip/geolite2-free-geolocation-data (free account) or use "
    "DB-IP lite / IPinfo lite .mmdb files; or remove the key to use the builtin country data"
)
_CC = re.compile(r"[A-Z]{2}")
_IPINFO_ASN = re.compile(r"(?i)AS([0-9]{1,10})")


class MmdbDatabase:
    """One open .mmdb reader; ``source`` is ``"<database_type> <build date YYYY-MM-DD>"``."""

    def __init__(self, reader: Any, *, key: str, path: Path) -> None:
        self._reader = reader
        self.closed = False
        self.key = key
        self.path = path
        meta = reader.metadata()
        built = datetime.fromtimestamp(int(meta.build_epoch), tz=UTC).date().isoformat()
        self.database_type: str = str(meta.database_type)
        self.ip_version: int = int(meta.ip_version)
        self.source = f"{self.database_type} {built}"

    def get(self, address: str) -> Mapping[str, Any] | None:
        """The record for ``address`` (a normalized IP), ``None`` when not covered."""
        if self.closed:
            raise RuntimeError(f"{self.key} database {self.path} is closed")
        if self.ip_version == 4 and ":" in address:
            return None  # IPv6 address against an IPv4-only database
        try:
            record = self._reader.get(address)
        except (ValueError, maxminddb.InvalidDatabaseError) as exc:
            log.warning("geo_db_lookup_failed", key=self.key, path=str(self.path), error=str(exc))
            return None
        return record if isinstance(record, Mapping) else None

    def close(self) -> None:
        """Release the memory map / file handle (idempotent)."""
        if not self.closed:
            self._reader.close()
            self.closed = True


def open_mmdb(path: Path, *, key: str) -> MmdbDatabase:
    """Open ``path``; a missing or unreadable file raises ConfigError naming ``key`` and path."""
    if not path.is_file():
        raise ConfigError(f"MaxMind database not found: {path}", location=key, hint=GEOLITE_HINT)
    try:
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(
            f"not a readable MaxMind (.mmdb) database: {path} ({exc})",
            location=key,
            hint=GEOLITE_HINT,
        ) from exc
    try:
        database = MmdbDatabase(reader, key=key, path=path)
    except (AttributeError, TypeError, ValueError, OverflowError, OSError) as exc:
        reader.close()
        raise ConfigError(
            f"MaxMind database has unusable metadata: {path} ({exc})",
            location=key,
            hint=GEOLITE_HINT,
        ) from exc
    log.info("geo_db_opened", key=key, path=str(path), source=database.source)
    return database


def _iso_code(value: Any) -> str | None:
    code = value.get("iso_code") if isinstance(value, Mapping) else value
    if isinstance(code, str) and _CC.fullmatch(code.upper()):
        return code.upper()
    return None


def _name(value: Any) -> str | None:
    """English name of a MaxMind/DB-IP ``{"names": {...}}`` node, or a plain string."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        names = value.get("names")
        if isinstance(names, Mapping) and names:
            chosen = names.get("en") or next(iter(names.values()))
            return chosen if isinstance(chosen, str) and chosen else None
    return None


def country_of(record: Mapping[str, Any]) -> str | None:
    """ISO alpha-2: MaxMind/DB-IP ``country.iso_code`` then ``registered_country.iso_code``;
    IPinfo ``country_code`` (or a two-letter ``country``)."""
    for key in ("country", "registered_country", "country_code"):
        code = _iso_code(record.get(key))
        if code is not None:
            return code
    return None


def subdivision_of(record: Mapping[str, Any], country: str | None) -> str | None:
    """ISO 3166-2 ``<CC>-<subdivisions[0].iso_code>`` (e.g. ``UA-43``), if both are known."""
    subdivisions = record.get("subdivisions")
    if not country or not isinstance(subdivisions, list) or not subdivisions:
        return None
    first = subdivisions[0]
    code = first.get("iso_code") if isinstance(first, Mapping) else None
    if not isinstance(code, str) or not code.strip():
        return None
    code = code.strip().upper()
    return code if code.startswith(f"{country}-") else f"{country}-{code}"


def city_of(record: Mapping[str, Any]) -> str | None:
    """City name: MaxMind/DB-IP ``city.names.en``; IPinfo ``city`` string."""
    return _name(record.get("city"))


def asn_of(record: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """``(asn, org)``: GeoLite2-ASN ``autonomous_system_*``; IPinfo ``asn`` "AS4134" +
    ``as_name`` (or ``name`` in IPinfo's ASN-only database)."""
    number = record.get("autonomous_system_number")
    org = record.get("autonomous_system_organization")
    if number is None and "asn" in record:
        raw = record.get("asn")
        match = _IPINFO_ASN.fullmatch(raw.strip()) if isinstance(raw, str) else None
        number = int(match.group(1)) if match else raw
        org = record.get("as_name") or record.get("name")
    asn = number if isinstance(number, int) and not isinstance(number, bool) else None
    if asn is not None and not 0 <= asn <= 0xFFFFFFFF:
        asn = None
    return asn, org if isinstance(org, str) and org else None
