"""GeoEnricher: batch IP intelligence from the embedded RIR country data (iptocc) and optional
MaxMind-format city / ASN databases, plus optional reputation tags (``agent.enrich.reputation``).
Implements ``agent.contracts.Enricher``."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self, cast

import iptocc
import structlog

from agent.config import GeoConfig
from agent.enrich.ipkind import PUBLIC_IPV4_FAST, classify_ip, not_geolocatable_reason
from agent.enrich.mmdb import (
    MmdbDatabase,
    asn_of,
    city_of,
    country_of,
    open_mmdb,
    subdivision_of,
)
from agent.enrich.reputation import BUNDLED_DATA_DIR, Reputation, default_user_data_dir
from agent.models import IpIntel, IpKind

__all__ = ["BUILTIN", "DEFAULT_CACHE_SIZE", "GeoEnricher"]

log = structlog.get_logger(__name__)

BUILTIN: Final = "builtin"
DEFAULT_CACHE_SIZE: Final = 200_000
_NO_REGISTRY_COUNTRY: Final = "no registry country for this address"
_GC_PAUSE_MIN_UNIQUE: Final = 20_000


class _CountrySource(Protocol):
    source: str
    no_country_reason: str

    def countries(self, addresses: list[str]) -> list[str | None]: ...

    def close(self) -> None: ...


class _IptoccCountry:
    """Offline RIR-delegation country data embedded in the ``iptocc`` wheel (batch API)."""

    no_country_reason = _NO_REGISTRY_COUNTRY

    def __init__(self) -> None:
        try:
            release = version("iptocc")
        except PackageNotFoundError:  # pragma: no cover - vendored copy without metadata
            release = "unknown"
        self.source = f"iptocc {release} (RIR registry country)"

    def countries(self, addresses: list[str]) -> list[str | None]:
        return iptocc.country_code(addresses)

    def close(self) -> None:
        return None


class _MmdbCountry:
    """Country from a GeoIP2/GeoLite2 Country or City, DB-IP or IPinfo lite ``.mmdb``."""

    def __init__(self, database: MmdbDatabase) -> None:
        self._db = database
        self.source = database.source
        self.no_country_reason = f"no country for this address in {database.source}"

    def countries(self, addresses: list[str]) -> list[str | None]:
        get = self._db.get
        out: list[str | None] = []
        for address in addresses:
            record = get(address)
            out.append(country_of(record) if record is not None else None)
        return out

    def close(self) -> None:
        self._db.close()


def _as_path(value: str | Path, base_dir: Path | None) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


class GeoEnricher:
    """Country (``builtin`` iptocc or an .mmdb), optional subdivision/city and ASN databases.

    Only PUBLIC addresses are geolocated; every other kind carries an ``unknown_reason``.
    Results are cached by raw string (bounded, oldest evicted first).
    """

    def __init__(
        self,
        *,
        country_db: str | Path = BUILTIN,
        city_db: str | Path | None = None,
        asn_db: str | Path | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        base_dir: Path | None = None,
        reputation: Reputation | None = None,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._cache_size = cache_size
        self._cache: dict[Any, IpIntel] = {}
        self._city: MmdbDatabase | None = None
        self._asn: MmdbDatabase | None = None
        self._country: _CountrySource = _IptoccCountry()
        self._reputation = reputation
        try:
            if str(country_db) != BUILTIN:
                path = _as_path(country_db, base_dir)
                self._country = _MmdbCountry(open_mmdb(path, key="geo.country_db"))
            if city_db is not None:
                self._city = open_mmdb(_as_path(city_db, base_dir), key="geo.city_db")
            if asn_db is not None:
                self._asn = open_mmdb(_as_path(asn_db, base_dir), key="geo.asn_db")
        except BaseException:
            self.close()
            raise
        log.info("geo_enricher_ready", sources=list(self.describe()), cache_size=cache_size)

    @classmethod
    def from_config(
        cls, geo: GeoConfig, *, base_dir: Path, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> Self:
        """Build from the ``geo:`` config section; relative paths resolve against ``base_dir``.

        Reputation tags use the bundled data plus the ``chipwarden data update`` folder unless
        ``geo.reputation.data_dirs`` names the folders.
        """
        rep = geo.reputation
        reputation = None
        if rep.enabled or geo.anonymous_db is not None:
            folders = rep.data_dirs if rep.data_dirs is not None else [
                BUNDLED_DATA_DIR,
                default_user_data_dir(),
            ]
            reputation = Reputation.load(
                folders if rep.enabled else [],
                tor_window_days=rep.tor_window_days,
                anonymous_db=geo.anonymous_db,
            )
        return cls(
            country_db=geo.resolved_country_db(base_dir),
            city_db=geo.city_db,
            asn_db=geo.asn_db,
            cache_size=cache_size,
            base_dir=base_dir,
            reputation=reputation,
        )

    def describe(self) -> tuple[str, ...]:
        """Source strings of every database in use, country first."""
        extra = tuple(db.source for db in (self._city, self._asn) if db is not None)
        return (self._country.source, *extra)

    def describe_reputation(self) -> tuple[str, ...]:
        """The reputation data sets in use (Tor snapshots, ASN lists, ranges), if any."""
        return self._reputation.describe() if self._reputation is not None else ()

    def lookup(
        self, ips: Sequence[str | None], *, at: Sequence[datetime | None] | None = None
    ) -> list[IpIntel]:
        """One IpIntel per input, in input order; each distinct raw value is resolved once.

        ``at[i]`` is the event time of ``ips[i]``: time-dependent reputation tags (Tor exit
        lists) are matched against it; without it the newest list is used.
        """
        intel = self._lookup(ips)
        if self._reputation is None:
            return intel
        return self._reputation.tag(intel, at)

    def _lookup(self, ips: Sequence[str | None]) -> list[IpIntel]:
        cache_get = self._cache.get
        cached = list(map(cache_get, ips))  # the per-run cache answers most batches whole
        if None not in cached:
            return cast("list[IpIntel]", cached)
        table: dict[Any, IpIntel | None] = dict.fromkeys(ips)
        public_raw: list[Any] = []
        public_norm: list[str] = []
        hits = 0
        plain_public = PUBLIC_IPV4_FAST.fullmatch
        with _gc_paused(len(table) >= _GC_PAUSE_MIN_UNIQUE):
            for raw in table:
                hit = cache_get(raw)
                if hit is not None:
                    table[raw] = hit
                    hits += 1
                    continue
                if type(raw) is str and plain_public(raw):
                    public_raw.append(raw)
                    public_norm.append(raw)
                    continue
                kind, normalized = classify_ip(raw)
                if kind is IpKind.PUBLIC and normalized is not None:
                    public_raw.append(raw)
                    public_norm.append(normalized)
                else:
                    table[raw] = _unlocatable(raw, kind, normalized)
            if public_raw:
                self._geolocate(public_raw, public_norm, table)
            if hits < len(table):
                self._remember(table)
        log.debug(
            "geo_lookup_batch",
            requested=len(ips),
            unique=len(table),
            cache_hits=hits,
            geolocated=len(public_raw),
        )
        return list(map(cast("dict[Any, IpIntel]", table).__getitem__, ips))

    def _geolocate(self, raws: list[Any], norms: list[str], out: dict[Any, IpIntel | None]) -> None:
        countries = self._country.countries(norms)
        if self._city is None and self._asn is None:
            sources = (self._country.source,)
            missing = self._country.no_country_reason
            validate = IpIntel.model_validate
            public = IpKind.PUBLIC
            for raw, norm, cc in zip(raws, norms, countries, strict=True):
                out[raw] = validate(
                    {
                        "ip": raw,
                        "kind": public,
                        "normalized": norm,
                        "country": cc,
                        "sources": sources,
                        "unknown_reason": None if cc else missing,
                    }
                )
            return
        for raw, norm, cc in zip(raws, norms, countries, strict=True):
            out[raw] = self._detailed(raw, norm, cc)

    def _detailed(self, raw: str, norm: str, country: str | None) -> IpIntel:
        sources = [self._country.source]
        subdivision = city = asn_org = None
        asn: int | None = None
        city_db, asn_db = self._city, self._asn
        if city_db is not None and (record := city_db.get(norm)) is not None:
            sources.append(city_db.source)
            country = country_of(record) or country
            subdivision = subdivision_of(record, country)
            city = city_of(record)
        if asn_db is not None and (asn_record := asn_db.get(norm)) is not None:
            asn, asn_org = asn_of(asn_record)
            if asn is not None or asn_org is not None:
                sources.append(asn_db.source)
        return IpIntel(
            ip=raw,
            kind=IpKind.PUBLIC,
            normalized=norm,
            country=country,
            subdivision=subdivision,
            city=city,
            asn=asn,
            asn_org=asn_org,
            sources=tuple(sources),
            unknown_reason=None if country else self._country.no_country_reason,
        )

    def _remember(self, table: dict[Any, IpIntel | None]) -> None:
        """Add this batch to the cache; beyond ``cache_size`` the oldest entries go first."""
        if not self._cache_size:
            return
        cache = self._cache
        resolved = cast("dict[Any, IpIntel]", table)
        if len(resolved) >= self._cache_size:  # the batch alone fills the cache: keep its tail
            cache.clear()
            cache.update(islice(resolved.items(), len(resolved) - self._cache_size, None))
            return
        cache.update(resolved)
        excess = len(cache) - self._cache_size
        if excess > 0:
            for key in list(islice(cache, excess)):
                cache.pop(key, None)

    def cache_len(self) -> int:
        """Number of cached raw values (bounded by ``cache_size``)."""
        return len(self._cache)

    def close(self) -> None:
        """Close every open database reader (idempotent); later lookups that need one raise."""
        self._country.close()
        for db in (self._city, self._asn):
            if db is not None:
                db.close()
        if self._reputation is not None:
            self._reputation.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def _gc_paused(enabled: bool) -> Iterator[None]:
    """Pause the cyclic GC while a large batch allocates many acyclic models (2-3x faster);
    it is switched back on (only if it was on) when the block exits, even on error."""
    was_enabled = gc.isenabled()
    if enabled and was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled and was_enabled:
            gc.enable()


def _unlocatable(raw: Any, kind: IpKind, normalized: str | None) -> IpIntel:
    return IpIntel(
        ip=raw if isinstance(raw, str) else ("" if raw is None else str(raw)),
        kind=kind,
        normalized=normalized,
        unknown_reason=not_geolocatable_reason(kind, normalized),
    )
