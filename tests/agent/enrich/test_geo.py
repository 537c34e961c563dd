"""GeoEnricher: builtin registry country, optional city/ASN .mmdb databases, batching, caching."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import iptocc
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from agent.config import GeoConfig
from agent.contracts import Enricher
from agent.enrich import GeoEnricher
from agent.errors import ConfigError
from agent.models import IpIntel, IpKind

BUILD = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
BUILTIN_SOURCE = f"iptocc {version('iptocc')} (RIR registry country)"

# Synthetic records on real public networks. 77.88.8.0/24 is registered to RU in the RIR data;
# the city database places it in Crimea, as commercial databases do for some such ranges.
CRIMEA_NET, CRIMEA_IP = "77.88.8.0/24", "77.88.8.8"
BERLIN_NET, BERLIN_IP = "2a00:1450:4001::/48", "2a00:1450:4001::1"
CN_NET, CN_IP = "1.2.4.0/24", "1.2.4.8"


class _DatedWriter(MMDBWriter):
    """MMDBWriter with a fixed build date so the source string is known in advance."""

    def _build_meta(self) -> dict[str, Any]:
        meta = super()._build_meta()
        meta["build_epoch"] = int(BUILD.timestamp())
        return meta


def _write(path: Path, database_type: str, records: dict[str, dict[str, Any]]) -> Path:
    writer = _DatedWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mmdb")
    city = _write(
        folder / "GeoLite2-City.mmdb",
        "GeoLite2-City",
        {
            CRIMEA_NET: {
                "city": {"names": {"en": "Simferopol"}},
                "country": {"iso_code": "UA", "names": {"en": "Ukraine"}},
                "registered_country": {"iso_code": "RU", "names": {"en": "Russia"}},
                "subdivisions": [{"iso_code": "43", "names": {"en": "Crimea"}}],
            },
            BERLIN_NET: {
                "city": {"names": {"en": "Berlin", "de": "Berlin"}},
                "country": {"iso_code": "DE", "names": {"en": "Germany"}},
                "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
            },
        },
    )
    asn = _write(
        folder / "GeoLite2-ASN.mmdb",
        "GeoLite2-ASN",
        {
            CRIMEA_NET: {
                "autonomous_system_number": 13238,
                "autonomous_system_organization": "YANDEX LLC",
            },
            CN_NET: {
                "autonomous_system_number": 4134,
                "autonomous_system_organization": "CHINANET-BACKBONE",
            },
        },
    )
    ipinfo = _write(
        folder / "ipinfo_lite.mmdb",
        "ipinfo_lite",
        {
            CN_NET: {
                "asn": "AS4134",
                "as_name": "CHINANET-BACKBONE",
                "as_domain": "chinatelecom.cn",
                "country_code": "CN",
                "country": "China",
                "continent_code": "AS",
                "continent": "Asia",
            },
        },
    )
    return {"city": city, "asn": asn, "ipinfo": ipinfo}


@pytest.fixture
def builtin() -> Iterator[GeoEnricher]:
    with GeoEnricher() as enricher:
        yield enricher


# --- builtin country ----------------------------------------------------------------------


def test_geo_enricher_satisfies_the_enricher_port(builtin: GeoEnricher) -> None:
    port: Enricher = builtin
    assert port.describe() == (BUILTIN_SOURCE,)


@pytest.mark.parametrize(
    ("ip", "country"), [("8.8.8.8", "US"), ("1.2.4.8", "CN"), ("77.88.8.8", "RU")]
)
def test_well_known_registry_allocations_get_their_country(
    builtin: GeoEnricher, ip: str, country: str
) -> None:
    assert iptocc.country_code(ip) == country  # precondition: the embedded data agrees
    [intel] = builtin.lookup([ip])
    assert (intel.kind, intel.country, intel.unknown_reason) == (IpKind.PUBLIC, country, None)
    assert intel.sources == (BUILTIN_SOURCE,)


def test_builtin_country_passes_through_what_iptocc_returns(builtin: GeoEnricher) -> None:
    ips = [
        "8.8.8.8",
        "1.1.1.1",
        "9.9.9.9",
        "77.88.8.8",
        "1.2.4.8",
        "2001:4860:4860::8888",
        "2a02:6b8::feed:0ff",
        "41.0.0.1",
        "200.160.0.8",
        "133.0.0.1",
    ]
    expected = iptocc.country_code(ips)
    assert [intel.country for intel in builtin.lookup(ips)] == expected


def test_public_ip_without_registry_country_says_so(builtin: GeoEnricher) -> None:
    ip = "2002:808:808::1"  # 6to4 stays IPv6; the registry data has no country for 2002::/16
    assert iptocc.country_code(ip) is None
    [intel] = builtin.lookup([ip])
    assert intel.kind is IpKind.PUBLIC
    assert intel.country is None
    assert intel.unknown_reason == "no registry country for this address"


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        ("10.0.0.5", IpKind.PRIVATE, "private address (RFC 1918): not geolocatable"),
        ("ssm.amazonaws.com", IpKind.SERVICE, "AWS service principal, not an IP"),
        ("AWS Internal", IpKind.SERVICE, "AWS service principal, not an IP"),
        ("06.237.252.245", IpKind.INVALID, "not a valid IP address"),
        (None, IpKind.MISSING, "no source IP in the record"),
        ("127.0.0.1", IpKind.LOOPBACK, "loopback address: not geolocatable"),
        (
            "203.0.113.7",
            IpKind.DOCUMENTATION,
            "documentation address (RFC 5737 / RFC 3849): not routable",
        ),
    ],
)
def test_non_public_values_are_never_geolocated_and_carry_a_reason(
    builtin: GeoEnricher, raw: str | None, kind: IpKind, reason: str
) -> None:
    [intel] = builtin.lookup([raw])
    assert intel.kind is kind
    assert (intel.country, intel.subdivision, intel.asn, intel.sources) == (None, None, None, ())
    assert intel.unknown_reason == reason
    assert not intel.geolocatable


def test_results_follow_input_order_and_keep_the_raw_value(builtin: GeoEnricher) -> None:
    ips = ["1.2.4.8", None, "8.8.8.8:443", "ssm.amazonaws.com", "::ffff:77.88.8.8", "10.1.1.1"]
    results = builtin.lookup(ips)
    assert [r.ip for r in results] == [
        "1.2.4.8",
        "",
        "8.8.8.8:443",
        "ssm.amazonaws.com",
        "::ffff:77.88.8.8",
        "10.1.1.1",
    ]
    assert [r.normalized for r in results] == [
        "1.2.4.8",
        None,
        "8.8.8.8",
        "ssm.amazonaws.com",
        "77.88.8.8",
        "10.1.1.1",
    ]
    assert [r.country for r in results] == ["CN", None, "US", None, "RU", None]


def test_duplicates_in_a_batch_resolve_once_to_the_same_result() -> None:
    with GeoEnricher(cache_size=0) as enricher:
        results = enricher.lookup(["8.8.8.8", "1.2.4.8", "8.8.8.8", None, None, "8.8.8.8"])
        assert results[0] is results[2] is results[5]
        assert results[3] is results[4]
        assert enricher.cache_len() == 0


def test_empty_batch_gives_empty_list(builtin: GeoEnricher) -> None:
    assert builtin.lookup([]) == []


def test_results_are_cached_across_batches(builtin: GeoEnricher) -> None:
    first = builtin.lookup(["8.8.8.8", "10.0.0.1"])
    second = builtin.lookup(["10.0.0.1", "8.8.8.8"])
    assert second[0] is first[1] and second[1] is first[0]


def test_cache_is_bounded_and_evicts_oldest_first() -> None:
    with GeoEnricher(cache_size=3) as enricher:
        first = enricher.lookup(["8.8.8.8", "1.1.1.1", "9.9.9.9", "1.2.4.8", "77.88.8.8"])
        assert enricher.cache_len() == 3
        again = enricher.lookup(["8.8.8.8", "77.88.8.8"])
        assert again[0] is not first[0] and again[0] == first[0]  # evicted, recomputed
        assert again[1] is first[4]  # still cached


def test_cache_keeps_the_most_recent_batches_within_its_bound() -> None:
    with GeoEnricher(cache_size=3) as enricher:
        a, b = enricher.lookup(["8.8.8.8", "1.1.1.1"])
        enricher.lookup(["9.9.9.9", "1.2.4.8"])
        assert enricher.cache_len() == 3
        again_a, again_b = enricher.lookup(["8.8.8.8", "1.1.1.1"])
        assert again_a is not a and again_a == a  # oldest: evicted, recomputed
        assert again_b is b


def test_negative_cache_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        GeoEnricher(cache_size=-1)


def test_large_batch_matches_iptocc_and_restores_garbage_collection() -> None:
    import gc

    ips = [f"{1 + i % 200}.{i % 251}.{(i * 7) % 256}.{(i * 13) % 256}" for i in range(30_000)]
    ips += ips[:10_000]
    assert gc.isenabled()
    with GeoEnricher(cache_size=0) as enricher:
        results = enricher.lookup(ips)
    assert gc.isenabled()
    assert len(results) == len(ips)
    public = [r.normalized for r in results if r.kind is IpKind.PUBLIC]
    assert [r.country for r in results if r.kind is IpKind.PUBLIC] == iptocc.country_code(
        [p for p in public if p is not None]
    )


# --- optional MaxMind-format databases ----------------------------------------------------


def test_city_database_adds_subdivision_and_city_and_its_country_wins(
    dbs: dict[str, Path],
) -> None:
    assert iptocc.country_code(CRIMEA_IP) == "RU"
    with GeoEnricher(city_db=dbs["city"]) as enricher:
        crimea, berlin = enricher.lookup([CRIMEA_IP, BERLIN_IP])
        assert (crimea.country, crimea.subdivision, crimea.city) == ("UA", "UA-43", "Simferopol")
        assert crimea.sources == (BUILTIN_SOURCE, "GeoLite2-City 2024-05-14")
        assert (berlin.country, berlin.subdivision, berlin.city) == ("DE", "DE-BE", "Berlin")
        assert enricher.describe() == (BUILTIN_SOURCE, "GeoLite2-City 2024-05-14")


def test_address_missing_from_city_database_keeps_builtin_country_only(
    dbs: dict[str, Path],
) -> None:
    with GeoEnricher(city_db=dbs["city"]) as enricher:
        [intel] = enricher.lookup(["8.8.8.8"])
    assert (intel.country, intel.subdivision, intel.city) == ("US", None, None)
    assert intel.sources == (BUILTIN_SOURCE,)


def test_asn_database_adds_number_and_organisation(dbs: dict[str, Path]) -> None:
    with GeoEnricher(asn_db=dbs["asn"]) as enricher:
        cn, crimea, other = enricher.lookup([CN_IP, CRIMEA_IP, "8.8.8.8"])
        assert (cn.country, cn.asn, cn.asn_org) == ("CN", 4134, "CHINANET-BACKBONE")
        assert cn.sources == (BUILTIN_SOURCE, "GeoLite2-ASN 2024-05-14")
        assert (crimea.asn, crimea.asn_org) == (13238, "YANDEX LLC")
        assert (other.asn, other.asn_org, other.sources) == (None, None, (BUILTIN_SOURCE,))


def test_ipinfo_lite_serves_as_country_and_asn_database(dbs: dict[str, Path]) -> None:
    with GeoEnricher(country_db=dbs["ipinfo"], asn_db=dbs["ipinfo"]) as enricher:
        cn, unknown = enricher.lookup([CN_IP, "8.8.8.8"])
        assert enricher.describe() == ("ipinfo_lite 2024-05-14", "ipinfo_lite 2024-05-14")
    assert (cn.country, cn.asn, cn.asn_org) == ("CN", 4134, "CHINANET-BACKBONE")
    assert unknown.country is None
    assert unknown.unknown_reason == "no country for this address in ipinfo_lite 2024-05-14"


def test_city_and_asn_together_fill_every_field(dbs: dict[str, Path]) -> None:
    with GeoEnricher(city_db=dbs["city"], asn_db=dbs["asn"]) as enricher:
        [intel] = enricher.lookup([f"[::ffff:{CRIMEA_IP}]:22"])
    assert intel == IpIntel(
        ip=f"[::ffff:{CRIMEA_IP}]:22",
        kind=IpKind.PUBLIC,
        normalized=CRIMEA_IP,
        country="UA",
        subdivision="UA-43",
        city="Simferopol",
        asn=13238,
        asn_org="YANDEX LLC",
        sources=(BUILTIN_SOURCE, "GeoLite2-City 2024-05-14", "GeoLite2-ASN 2024-05-14"),
    )


def test_ipv4_only_database_answers_nothing_for_ipv6(tmp_path: Path) -> None:
    writer = _DatedWriter(ip_version=4, database_type="GeoLite2-City")
    writer.insert_network(IPSet(["8.8.8.0/24"]), {"country": {"iso_code": "US"}})
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    with GeoEnricher(city_db=tmp_path / "v4.mmdb") as enricher:
        [intel] = enricher.lookup(["2001:4860:4860::8888"])
    assert intel.country == iptocc.country_code("2001:4860:4860::8888")
    assert intel.sources == (BUILTIN_SOURCE,)


def test_from_config_resolves_relative_paths_against_the_config_folder(
    dbs: dict[str, Path],
) -> None:
    folder = dbs["city"].parent
    geo = GeoConfig.model_validate(
        {"city_db": "GeoLite2-City.mmdb", "asn_db": "GeoLite2-ASN.mmdb"},
        context={"base_dir": folder},
    )
    with GeoEnricher.from_config(geo, base_dir=folder) as enricher:
        assert enricher.describe() == (
            BUILTIN_SOURCE,
            "GeoLite2-City 2024-05-14",
            "GeoLite2-ASN 2024-05-14",
        )


def test_from_config_resolves_a_relative_country_db_against_base_dir(
    dbs: dict[str, Path],
) -> None:
    geo = GeoConfig(country_db="ipinfo_lite.mmdb")
    with GeoEnricher.from_config(geo, base_dir=dbs["ipinfo"].parent) as enricher:
        assert enricher.describe() == ("ipinfo_lite 2024-05-14",)
        assert enricher.lookup([CN_IP])[0].country == "CN"


def test_closed_enricher_refuses_database_lookups(dbs: dict[str, Path]) -> None:
    with GeoEnricher(city_db=dbs["city"]) as enricher:
        pass
    enricher.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        enricher.lookup([CRIMEA_IP])


# --- configuration errors -----------------------------------------------------------------


def test_missing_city_db_is_a_config_error_naming_key_path_and_where_to_get_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "GeoLite2-City.mmdb"
    with pytest.raises(ConfigError) as caught:
        GeoEnricher(city_db=missing)
    assert caught.value.location == "geo.city_db"
    assert str(missing) in str(caught.value)
    assert caught.value.hint is not None and "GeoLite2" in caught.value.hint


@pytest.mark.parametrize("content", [b"", b"not a maxmind database" * 100])
def test_corrupt_asn_db_is_a_config_error_naming_the_key(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "GeoLite2-ASN.mmdb"
    bad.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        GeoEnricher(asn_db=bad)
    assert caught.value.location == "geo.asn_db"
    assert str(bad) in str(caught.value)


def test_missing_country_db_from_config_names_geo_country_db(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        GeoEnricher.from_config(GeoConfig(country_db="GeoLite2-Country.mmdb"), base_dir=tmp_path)
    assert caught.value.location == "geo.country_db"
    assert str(tmp_path / "GeoLite2-Country.mmdb") in str(caught.value)


def test_the_database_that_fails_to_open_is_the_one_named(
    dbs: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"geo\.asn_db"):
        GeoEnricher(city_db=dbs["city"], asn_db=tmp_path / "absent.mmdb")
