"""classify_ip: every raw source-address shape maps to a kind and a normalized address."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.enrich.ipkind import (
    PUBLIC_IPV4_FAST,
    classify_ip,
    is_aws_service_name,
    not_geolocatable_reason,
)
from agent.models import IpKind

K = IpKind

CASES: list[tuple[str | None, IpKind, str | None]] = [
    # missing
    (None, K.MISSING, None),
    ("", K.MISSING, None),
    ("   ", K.MISSING, None),
    # AWS service names and other hostnames (CloudTrail sourceIPAddress stand-ins)
    ("ssm.amazonaws.com", K.SERVICE, "ssm.amazonaws.com"),
    ("autoscaling.amazonaws.com", K.SERVICE, "autoscaling.amazonaws.com"),
    ("console.amazonaws.com", K.SERVICE, "console.amazonaws.com"),
    ("AWS Internal", K.SERVICE, "AWS Internal"),
    ("bastion.example.org", K.SERVICE, "bastion.example.org"),
    # invalid
    ("123.456.789.012", K.INVALID, None),
    ("06.237.252.245", K.INVALID, None),
    ("garbage", K.INVALID, None),
    ("not an ip", K.INVALID, None),
    ("1.2.3.4\x00", K.INVALID, None),
    ("\x00", K.INVALID, None),
    ("1" * 101, K.INVALID, None),
    ("1.2.3", K.INVALID, None),
    ("0x1.2.3.4", K.INVALID, None),
    ("1.2.3.4%eth0", K.INVALID, None),
    ("fe80::1%", K.INVALID, None),
    ("[2001:db8::1", K.INVALID, None),
    ("[2001:db8::1]x", K.INVALID, None),
    ("1.2.3.4:99999", K.INVALID, None),
    ("1.2.3.4:port", K.INVALID, None),
    ("\u0661.\u0662.\u0663.\u0664", K.INVALID, None),  # Arabic-Indic digits
    # zone ids stripped, IPv4-mapped unwrapped, 6to4 / NAT64 kept as IPv6
    ("fe80::1%eth0", K.LINK_LOCAL, "fe80::1"),
    ("2001:4860:4860::8888%2", K.PUBLIC, "2001:4860:4860::8888"),
    ("::ffff:1.2.3.4", K.PUBLIC, "1.2.3.4"),
    ("::ffff:10.0.0.7", K.PRIVATE, "10.0.0.7"),
    ("2002:0808:0808::1", K.PUBLIC, "2002:808:808::1"),
    ("64:ff9b::808:808", K.PUBLIC, "64:ff9b::808:808"),
    # private (RFC 1918, RFC 4193, RFC 6598 CGNAT)
    ("10.1.2.3", K.PRIVATE, "10.1.2.3"),
    ("172.16.0.1", K.PRIVATE, "172.16.0.1"),
    ("172.31.255.254", K.PRIVATE, "172.31.255.254"),
    ("192.168.1.10", K.PRIVATE, "192.168.1.10"),
    ("100.64.0.1", K.PRIVATE, "100.64.0.1"),
    ("100.127.255.255", K.PRIVATE, "100.127.255.255"),
    ("fc00::1", K.PRIVATE, "fc00::1"),
    ("fd12:3456:789a::1", K.PRIVATE, "fd12:3456:789a::1"),
    # loopback, link-local, multicast
    ("127.0.0.1", K.LOOPBACK, "127.0.0.1"),
    ("::1", K.LOOPBACK, "::1"),
    ("169.254.169.254", K.LINK_LOCAL, "169.254.169.254"),
    ("fe80::abcd", K.LINK_LOCAL, "fe80::abcd"),
    ("224.0.0.251", K.MULTICAST, "224.0.0.251"),
    ("ff02::1", K.MULTICAST, "ff02::1"),
    # documentation
    ("192.0.2.1", K.DOCUMENTATION, "192.0.2.1"),
    ("198.51.100.7", K.DOCUMENTATION, "198.51.100.7"),
    ("203.0.113.9", K.DOCUMENTATION, "203.0.113.9"),
    ("2001:db8::1", K.DOCUMENTATION, "2001:db8::1"),
    ("2001:DB8:0:0::42", K.DOCUMENTATION, "2001:db8::42"),
    # reserved / unspecified
    ("0.0.0.0", K.RESERVED, "0.0.0.0"),  # noqa: S104 - an address under test, not a bind
    ("0.1.2.3", K.RESERVED, "0.1.2.3"),
    ("240.0.0.1", K.RESERVED, "240.0.0.1"),
    ("255.255.255.255", K.RESERVED, "255.255.255.255"),
    ("::", K.RESERVED, "::"),
    # public, neighbours of special blocks included
    ("8.8.8.8", K.PUBLIC, "8.8.8.8"),
    ("100.63.255.255", K.PUBLIC, "100.63.255.255"),
    ("100.128.0.0", K.PUBLIC, "100.128.0.0"),
    ("172.15.255.255", K.PUBLIC, "172.15.255.255"),
    ("172.32.0.0", K.PUBLIC, "172.32.0.0"),
    ("169.253.1.1", K.PUBLIC, "169.253.1.1"),
    ("192.0.3.1", K.PUBLIC, "192.0.3.1"),
    ("203.0.114.1", K.PUBLIC, "203.0.114.1"),
    ("223.255.255.255", K.PUBLIC, "223.255.255.255"),
    ("2001:4860:4860::8888", K.PUBLIC, "2001:4860:4860::8888"),
    (" 8.8.4.4\n", K.PUBLIC, "8.8.4.4"),
    # port suffixes tolerated
    ("1.2.3.4:5555", K.PUBLIC, "1.2.3.4"),
    ("10.0.0.1:22", K.PRIVATE, "10.0.0.1"),
    ("[2001:db8::1]:22", K.DOCUMENTATION, "2001:db8::1"),
    ("[2001:4860:4860::8888]", K.PUBLIC, "2001:4860:4860::8888"),
    ("[fe80::1%eth0]:22", K.LINK_LOCAL, "fe80::1"),
]


@pytest.mark.parametrize(("raw", "kind", "normalized"), CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_classify_ip_maps_each_shape_to_kind_and_normalized_address(
    raw: str | None, kind: IpKind, normalized: str | None
) -> None:
    assert classify_ip(raw) == (kind, normalized)


def test_non_string_input_is_invalid_not_an_exception() -> None:
    assert classify_ip(12345) == (K.INVALID, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("first_octet", range(256))
def test_fast_path_agrees_with_the_range_table_for_every_first_octet(first_octet: int) -> None:
    # The IPv4-mapped form always takes the table-driven path; the dotted form may take the
    # fast path. Both must agree at the edges of every /8.
    for rest in (
        "0.0.0",
        "0.0.1",
        "63.255.255",
        "64.0.0",
        "127.255.255",
        "128.0.0",
        "254.0.0",
        "255.255.255",
        "0.2.1",
        "51.100.1",
        "88.99.1",
        "168.0.1",
    ):
        dotted = f"{first_octet}.{rest}"
        assert classify_ip(dotted) == classify_ip(f"::ffff:{dotted}"), dotted


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_address_classifies_like_its_ipv4_mapped_form(value: int) -> None:
    dotted = str(IPv4Address(value))
    assert classify_ip(dotted) == classify_ip(f"::ffff:{dotted}")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_fast_path_matches_only_public_addresses(value: int) -> None:
    dotted = str(IPv4Address(value))
    if PUBLIC_IPV4_FAST.fullmatch(dotted):
        assert classify_ip(dotted) == (K.PUBLIC, dotted)


@settings(max_examples=300)
@given(st.text())
def test_classify_ip_never_raises_and_is_stable_on_arbitrary_text(text: str) -> None:
    kind, normalized = classify_ip(text)
    assert classify_ip(text) == (kind, normalized)
    if normalized is not None:
        assert classify_ip(normalized) == (kind, normalized)
    else:
        assert kind in (K.INVALID, K.MISSING)


@given(st.from_regex(r"\[?[0-9a-fA-F:.%a-z]{0,45}\]?(:[0-9]{0,6})?", fullmatch=True))
def test_classify_ip_never_raises_on_address_like_text(text: str) -> None:
    kind, normalized = classify_ip(text)
    if normalized is not None:
        assert classify_ip(normalized) == (kind, normalized)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ssm.amazonaws.com", True),
        ("ec2.amazonaws.com.cn", True),
        ("AWS Internal", True),
        ("bastion.example.org", False),
    ],
)
def test_aws_service_names_are_recognised(name: str, expected: bool) -> None:
    assert is_aws_service_name(name) is expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("10.0.0.1", "RFC 1918"),
        ("100.64.1.1", "RFC 6598"),
        ("fd00::1", "RFC 4193"),
        ("ssm.amazonaws.com", "AWS service principal"),
        ("bastion.example.org", "hostname"),
        ("127.0.0.1", "loopback"),
        ("192.0.2.5", "documentation"),
        ("240.1.1.1", "reserved"),
        (None, "no source IP"),
        ("bogus", "not a valid IP"),
    ],
)
def test_every_non_public_kind_has_a_specific_reason(raw: str | None, fragment: str) -> None:
    kind, normalized = classify_ip(raw)
    assert fragment in not_geolocatable_reason(kind, normalized)
