"""Reputation tags: Tor exits by event time, ASN lists, cloud ranges, MaxMind Anonymous-IP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from agent.config import GeoConfig
from agent.enrich import GeoEnricher
from agent.enrich.reputation import BUNDLED_DATA_DIR, Reputation, tag_matches
from agent.enrich.reputation_data import (
    AsnTag,
    DataFile,
    parse_file,
    parse_tor_bulk,
    parse_tor_exit_addresses,
)
from agent.errors import RecordError
from agent.models import IpIntel, IpKind

DATA = Path(__file__).resolve().parents[2] / "data" / "reputation"
# From the bundled snapshots (agent/enrich/data): a 2017 CollecTor exit and a 2024 bulk-list exit.
EXIT_2017 = "162.247.72.201"
EXIT_2024 = "101.99.92.179"


def public(ip: str, **extra: Any) -> IpIntel:
    return IpIntel(ip=ip, kind=IpKind.PUBLIC, normalized=ip, country="US", **extra)


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def bundled() -> Reputation:
    return Reputation.load([BUNDLED_DATA_DIR], tor_window_days=7)


def test_a_tor_exit_is_tagged_only_within_the_window_around_the_session(
    bundled: Reputation,
) -> None:
    near, far = bundled.tag([public(EXIT_2017)] * 2, [at("2017-07-20"), at("2017-08-20")])

    assert near.tags == ("tor-exit",)
    assert far.tags == ()


def test_the_tag_source_names_the_list_its_date_and_the_gap(bundled: Reputation) -> None:
    [tagged] = bundled.tag([public(EXIT_2017)], [at("2017-07-19")])

    line = next(s for s in tagged.sources if s.startswith("tor-exit <- "))
    assert "listed 2017-07-17" in line
    assert "Tor exit list 2017-07-17" in line
    assert "2 day(s) from the session (window 7 days)" in line


def test_without_an_event_time_only_the_newest_snapshot_counts(bundled: Reputation) -> None:
    old, new = bundled.tag([public(EXIT_2017), public(EXIT_2024)], None)

    assert old.tags == ()
    assert new.tags == ("tor-exit",)
    assert "newest list; no event time" in new.sources[-1]


def test_exit_addresses_keep_each_address_own_observation_day() -> None:
    snap = parse_tor_exit_addresses(
        (DATA / "exit-addresses-sample.txt").read_text(), path=DATA / "x", source="sample"
    )
    rep = Reputation(tor=[snap], tor_window_days=3)

    early, late = rep.tag([public("204.8.96.10")] * 2, [at("2026-06-22"), at("2026-06-30")])

    assert snap.date == date(2026, 6, 30)
    assert snap.seen["2a0b:f4c2::4"] == date(2026, 6, 30)
    assert (early.tags, late.tags) == (("tor-exit",), ())


def test_asn_lists_tag_china_headquartered_clouds_and_hosting(bundled: Reputation) -> None:
    alibaba, hetzner, unlisted, no_asn = bundled.tag(
        [
            public("47.88.1.1", asn=45102),
            public("5.9.1.1", asn=24940),
            public("8.8.8.8", asn=15169),
            public("9.9.9.9"),
        ],
        None,
    )

    assert alibaba.tags == ("cn-cloud:alibaba", "hosting")
    assert any("AS45102" in s and "domain.md 5.1" in s for s in alibaba.sources)
    assert hetzner.tags == ("hosting",)
    assert unlisted.tags == no_asn.tags == ()


def test_cloud_ranges_tag_addresses_inside_their_prefixes_v4_and_v6(tmp_path: Path) -> None:
    sets = [
        parse_file(DataFile(DATA / name, kind, date(2025, 7, 25), f"{kind} sample"))
        for name, kind in (
            ("aws-ip-ranges-sample.json", "aws-ip-ranges"),
            ("gcp-cloud-sample.json", "gcp-cloud"),
            ("azure-service-tags-sample.json", "azure-service-tags"),
        )
    ]
    rep = Reputation(prefixes=sets)  # type: ignore[arg-type]

    tagged = rep.tag(
        [
            public("18.206.107.30"),
            public("2a05:d07a:a0ff::1"),
            public("34.1.223.255"),
            public("4.157.255.1"),
            public("20.38.98.1"),  # Storage.eastus: not an AzureCloud tag
            public("18.206.107.32"),
        ]
    )

    assert [t.tags for t in tagged] == [
        ("cloud:aws",),
        ("cloud:aws",),
        ("cloud:gcp",),
        ("cloud:azure",),
        (),
        (),
    ]
    assert "2025-07-24" in tagged[0].sources[-1]  # the AWS file's own createDate


def test_addresses_that_are_not_public_are_left_alone(bundled: Reputation) -> None:
    private = IpIntel(ip="10.0.0.1", kind=IpKind.PRIVATE, normalized="10.0.0.1")

    assert bundled.tag([private], [at("2024-02-27")]) == [private]


def test_anonymous_ip_database_flags_become_tags(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Anonymous-IP")
    writer.insert_network(
        IPSet(["198.18.7.0/24"]), {"is_anonymous": True, "is_anonymous_vpn": True}
    )
    writer.insert_network(IPSet(["45.76.0.0/16"]), {"is_hosting_provider": True})
    writer.to_db_file(str(tmp_path / "anon.mmdb"))
    rep = Reputation.load([], anonymous_db=tmp_path / "anon.mmdb")

    vpn, hosting, clean = rep.tag([public("198.18.7.9"), public("45.76.1.1"), public("8.8.8.8")])

    assert vpn.tags == ("vpn",)
    assert "is_anonymous_vpn" in vpn.sources[-1]
    assert hosting.tags == ("hosting",)
    assert clean.tags == ()
    rep.close()


def test_geo_enricher_passes_event_times_to_the_reputation_tags() -> None:
    geo = GeoConfig(reputation={"data_dirs": [BUNDLED_DATA_DIR]})
    with GeoEnricher.from_config(geo, base_dir=Path.cwd()) as enricher:
        in_window, outside = enricher.lookup(
            [EXIT_2024, EXIT_2024], at=[at("2024-02-25"), at("2025-02-25")]
        )
        assert enricher.describe_reputation()[0].startswith("Tor exit lists: 2 snapshot(s)")

    assert in_window.tags == ("tor-exit",)
    assert outside.tags == ()
    assert in_window.country == outside.country  # geolocation itself is unchanged


def test_reputation_can_be_switched_off() -> None:
    geo = GeoConfig(reputation={"enabled": False})
    with GeoEnricher.from_config(geo, base_dir=Path.cwd()) as enricher:
        [intel] = enricher.lookup([EXIT_2024])

    assert intel.tags == ()


@pytest.mark.parametrize(
    ("wanted", "tag", "expected"),
    [
        ("cn-cloud", "cn-cloud:alibaba", True),
        ("tor", "tor-exit", True),
        ("cloud", "cloud:aws", True),
        ("cloud", "cn-cloud:alibaba", False),
        ("tor-exit", "tor", False),
        ("host", "hosting", False),
        ("hosting", "hosting", True),
    ],
)
def test_tag_families(wanted: str, tag: str, expected: bool) -> None:
    assert tag_matches(wanted, tag) is expected


def test_a_bad_bulk_list_line_is_reported_with_file_and_line() -> None:
    with pytest.raises(RecordError) as caught:
        parse_tor_bulk(
            "1.2.3.4\nnot-an-ip\n", path=Path("bulk.txt"), day=date(2024, 1, 1), source="x"
        )

    assert caught.value.message == "bulk.txt:2: not an IP address: 'not-an-ip'"


def test_an_exit_address_outside_a_relay_block_is_rejected() -> None:
    with pytest.raises(RecordError, match=r"x\.txt:2: ExitAddress needs"):
        parse_tor_exit_addresses(
            "@type tordnsel 1.0\nExitAddress 1.2.3.4\n", path=Path("x.txt"), source="x"
        )


def test_duplicate_asn_rows_for_one_tag_are_kept_once() -> None:
    row = AsnTag(asn=1, tag="hosting", org="", source="a", confidence="S")
    rep = Reputation(asn_tags=[row, row])

    [intel] = rep.tag([public("8.8.8.8", asn=1)])

    assert intel.tags == ("hosting",)
    assert len([s for s in intel.sources if s.startswith("hosting <- ")]) == 1
