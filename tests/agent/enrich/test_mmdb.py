"""Record-shape readers: MaxMind GeoIP2/GeoLite2, DB-IP and IPinfo .mmdb records."""

from __future__ import annotations

from typing import Any

import pytest

from agent.enrich.mmdb import asn_of, city_of, country_of, subdivision_of

# Shapes as documented by each vendor (values are synthetic).
GEOLITE2_CITY: dict[str, Any] = {
    "city": {"geoname_id": 693805, "names": {"en": "Simferopol", "ru": "Симферополь"}},
    "continent": {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe"}},
    "country": {"geoname_id": 690791, "iso_code": "UA", "names": {"en": "Ukraine"}},
    "location": {"accuracy_radius": 50, "latitude": 44.95, "longitude": 34.11},
    "registered_country": {"geoname_id": 2017370, "iso_code": "RU", "names": {"en": "Russia"}},
    "subdivisions": [{"geoname_id": 703883, "iso_code": "43", "names": {"en": "Crimea"}}],
}
GEOLITE2_COUNTRY_REGISTERED_ONLY: dict[str, Any] = {
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "registered_country": {"iso_code": "de", "names": {"en": "Germany"}},
}
DBIP_CITY_LITE: dict[str, Any] = {
    "city": {"names": {"en": "Frankfurt am Main"}},
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "country": {"iso_code": "DE", "names": {"en": "Germany"}, "is_in_european_union": True},
    "subdivisions": [{"names": {"en": "Hesse"}}],
}
IPINFO_LITE: dict[str, Any] = {
    "asn": "AS4134",
    "as_name": "CHINANET-BACKBONE",
    "as_domain": "chinatelecom.cn",
    "country_code": "CN",
    "country": "China",
    "continent_code": "AS",
    "continent": "Asia",
}
GEOLITE2_ASN: dict[str, Any] = {
    "autonomous_system_number": 45102,
    "autonomous_system_organization": "Alibaba US Technology Co., Ltd.",
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (GEOLITE2_CITY, "UA"),
        (GEOLITE2_COUNTRY_REGISTERED_ONLY, "DE"),
        (DBIP_CITY_LITE, "DE"),
        (IPINFO_LITE, "CN"),
        ({"country": "China"}, None),
        ({"country": {"iso_code": "Ukraine"}}, None),
        ({"country": {"iso_code": 7}}, None),
        ({}, None),
    ],
)
def test_country_of_reads_each_vendor_shape(record: dict[str, Any], expected: str | None) -> None:
    assert country_of(record) == expected


def test_physical_country_is_preferred_over_registered_country() -> None:
    assert country_of(GEOLITE2_CITY) == "UA"
    assert GEOLITE2_CITY["registered_country"]["iso_code"] == "RU"


@pytest.mark.parametrize(
    ("record", "country", "expected"),
    [
        (GEOLITE2_CITY, "UA", "UA-43"),
        ({"subdivisions": [{"iso_code": "UA-43"}]}, "UA", "UA-43"),
        ({"subdivisions": [{"iso_code": "ca"}, {"iso_code": "LA"}]}, "US", "US-CA"),
        (DBIP_CITY_LITE, "DE", None),  # DB-IP lite has subdivision names but no ISO code
        (GEOLITE2_CITY, None, None),
        ({"subdivisions": []}, "US", None),
        ({"subdivisions": "CA"}, "US", None),
    ],
)
def test_subdivision_is_iso_3166_2(
    record: dict[str, Any], country: str | None, expected: str | None
) -> None:
    assert subdivision_of(record, country) == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (GEOLITE2_CITY, "Simferopol"),
        (DBIP_CITY_LITE, "Frankfurt am Main"),
        ({"city": "Mountain View"}, "Mountain View"),
        ({"city": {"names": {"de": "München"}}}, "München"),
        ({"city": {"names": {}}}, None),
        (IPINFO_LITE, None),
    ],
)
def test_city_name_prefers_english(record: dict[str, Any], expected: str | None) -> None:
    assert city_of(record) == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (GEOLITE2_ASN, (45102, "Alibaba US Technology Co., Ltd.")),
        (IPINFO_LITE, (4134, "CHINANET-BACKBONE")),
        ({"asn": "as9808", "name": "China Mobile"}, (9808, "China Mobile")),
        ({"asn": "", "as_name": ""}, (None, None)),
        ({"asn": "ASX"}, (None, None)),
        ({"autonomous_system_number": True}, (None, None)),
        ({"autonomous_system_number": -1}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_asn_of_reads_geolite2_and_ipinfo_shapes(
    record: dict[str, Any], expected: tuple[int | None, str | None]
) -> None:
    assert asn_of(record) == expected
