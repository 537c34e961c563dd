"""Source-address classification never raises, and only calls valid addresses addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import GeoConfig
from agent.enrich import GeoEnricher
from agent.enrich.ipkind import classify_ip
from agent.models import IpKind
from tests.fuzz.hostile import FUZZ, NASTY_STRINGS, TALLY, check

octet = st.integers(0, 999).map(str)
addresses = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"{a}%{'eth0'}"),
    st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
    st.ip_addresses(v=4).map(lambda a: f"{a}:{22}"),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]:443"),
    st.lists(octet, min_size=3, max_size=5).map(".".join),
    st.text(max_size=70),
    st.text(alphabet="0123456789abcdefABCDEF:.%[]", max_size=50),
)


@FUZZ
@given(addresses)
def test_any_source_value_is_classified_without_raising(value: str) -> None:
    kind, normalized = check("ip.classify", lambda: classify_ip(value)) or (None, None)
    assert kind is not None, "classify_ip must never raise"
    if kind in (IpKind.INVALID, IpKind.MISSING):
        assert normalized is None
    elif kind is not IpKind.SERVICE:
        assert normalized is not None
        parsed = ipaddress.ip_address(normalized)
        assert not (isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped)


@st.composite
def invalid_dotted_quads(draw: st.DrawFn) -> str:
    parts = [draw(st.integers(0, 255)) for _ in range(4)]
    parts[draw(st.integers(0, 3))] = draw(st.integers(256, 999))
    return ".".join(map(str, parts))


@FUZZ
@given(invalid_dotted_quads())
def test_a_dotted_quad_with_an_octet_over_255_is_invalid(value: str) -> None:
    TALLY[("ip.invalid-quad", "accepted")] += 1
    assert classify_ip(value) == (IpKind.INVALID, None)


@FUZZ
@given(st.ip_addresses(v=4))
def test_an_ipv4_mapped_ipv6_address_is_judged_as_its_ipv4_address(v4: Any) -> None:
    TALLY[("ip.mapped", "accepted")] += 1
    assert classify_ip(f"::ffff:{v4}") == classify_ip(str(v4))


@pytest.fixture(scope="module")
def enricher() -> Iterator[GeoEnricher]:
    with GeoEnricher.from_config(GeoConfig(), base_dir=Path.cwd()) as opened:
        yield opened


@FUZZ
@given(values=st.lists(st.one_of(st.none(), addresses), max_size=20))
def test_the_enricher_answers_every_value_with_one_intel_and_a_reason_when_unknown(
    enricher: GeoEnricher, values: list[str | None]
) -> None:
    intel = check("ip.enrich", lambda: enricher.lookup(values))
    assert intel is not None and len(intel) == len(values)
    for value, ip in zip(values, intel, strict=True):
        assert ip.country or ip.unknown_reason, value
