"""Classify a raw source-address string before any geolocation (pure, never raises).

Ranges follow the IANA IPv4 / IPv6 Special-Purpose Address Registries (RFC 6890 and updates:
RFC 1918, 6598, 5737, 3849, 9637, 4193, 4291). They are kept as data tables here, not taken
from ``ipaddress.is_private`` whose answers changed between Python patch releases.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final

from agent.models import IpKind

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "PUBLIC_IPV4_FAST",
    "classify_ip",
    "is_aws_service_name",
    "not_geolocatable_reason",
]

MAX_ADDRESS_LENGTH: Final = 100
"""Longer values are never addresses (the longest IPv6 text with zone and port is ~60)."""

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# First octets whose whole /8 is ordinary public unicast; everything else takes the slow path
# (0, 10, 100, 127, 169, 172, 192, 198, 203 and 224-255 hold special-purpose blocks).
_PUBLIC_FIRST_OCTET = (
    r"(?:[1-9]|1[1-9]|[2-9][0-9]|10[1-9]|11[0-9]|12[0-6]|12[89]|1[3-5][0-9]|16[0-8]"
    r"|17[01]|17[3-9]|18[0-9]|19[01]|19[3-7]|199|20[0-2]|20[4-9]|21[0-9]|22[0-3])"
)
PUBLIC_IPV4_FAST: Final = re.compile(rf"{_PUBLIC_FIRST_OCTET}(?:\.{_OCTET}){{3}}")
"""Canonical dotted-quad IPv4 inside an all-public /8: ``classify_ip(s) == (PUBLIC, s)`` for
every full match, so batch callers may test this first and skip the call."""
_PORT = re.compile(r"[0-9]{1,5}")
_ZONE = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.?",
    re.ASCII,
)
# CloudTrail writes these instead of an address when a service acted for the caller.
_SERVICE_PHRASES: Final = frozenset({"aws internal"})
_AWS_SUFFIXES: Final = (".amazonaws.com", ".amazonaws.com.cn", ".amazon.com")

_V4_TABLE: Final[tuple[tuple[IPv4Network, IpKind], ...]] = tuple(
    (IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", IpKind.RESERVED),  # "this network" (RFC 791)
        ("10.0.0.0/8", IpKind.PRIVATE),  # RFC 1918
        ("100.64.0.0/10", IpKind.PRIVATE),  # shared address space / CGNAT (RFC 6598)
        ("127.0.0.0/8", IpKind.LOOPBACK),
        ("169.254.0.0/16", IpKind.LINK_LOCAL),  # RFC 3927
        ("172.16.0.0/12", IpKind.PRIVATE),  # RFC 1918
        ("192.0.0.0/24", IpKind.RESERVED),  # IETF protocol assignments (RFC 6890)
        ("192.0.2.0/24", IpKind.DOCUMENTATION),  # TEST-NET-1 (RFC 5737)
        ("192.88.99.0/24", IpKind.RESERVED),  # deprecated 6to4 relay anycast (RFC 7526)
        ("192.168.0.0/16", IpKind.PRIVATE),  # RFC 1918
        ("198.18.0.0/15", IpKind.RESERVED),  # benchmarking (RFC 2544)
        ("198.51.100.0/24", IpKind.DOCUMENTATION),  # TEST-NET-2 (RFC 5737)
        ("203.0.113.0/24", IpKind.DOCUMENTATION),  # TEST-NET-3 (RFC 5737)
        ("224.0.0.0/4", IpKind.MULTICAST),
        ("240.0.0.0/4", IpKind.RESERVED),  # future use + limited broadcast 255.255.255.255
    )
)

_V6_TABLE: Final[tuple[tuple[IPv6Network, IpKind], ...]] = tuple(
    (IPv6Network(net), kind)
    for net, kind in (
        ("::1/128", IpKind.LOOPBACK),
        ("::/128", IpKind.RESERVED),  # unspecified
        ("64:ff9b::/96", IpKind.PUBLIC),  # NAT64 well-known prefix (RFC 6052): kept as IPv6
        ("64:ff9b:1::/48", IpKind.PRIVATE),  # local-use NAT64 (RFC 8215)
        ("2001:db8::/32", IpKind.DOCUMENTATION),  # RFC 3849
        ("3fff::/20", IpKind.DOCUMENTATION),  # RFC 9637
        ("2001:2::/48", IpKind.RESERVED),  # benchmarking (RFC 5180)
        ("2001:10::/28", IpKind.RESERVED),  # deprecated ORCHID (RFC 4843)
        ("2000::/3", IpKind.PUBLIC),  # global unicast (6to4 2002::/16 stays IPv6 here)
        ("fc00::/7", IpKind.PRIVATE),  # unique local (RFC 4193)
        ("fe80::/10", IpKind.LINK_LOCAL),
        ("ff00::/8", IpKind.MULTICAST),
    )
)

_PRIVATE_REASONS: Final[tuple[tuple[IPv4Network | IPv6Network, str], ...]] = (
    (IPv4Network("100.64.0.0/10"), "shared address space (RFC 6598 CGNAT)"),
    (IPv6Network("fc00::/7"), "unique local address (RFC 4193)"),
    (IPv6Network("64:ff9b:1::/48"), "local-use NAT64 address (RFC 8215)"),
)

_REASONS: Final[dict[IpKind, str]] = {
    IpKind.MISSING: "no source IP in the record",
    IpKind.INVALID: "not a valid IP address",
    IpKind.PRIVATE: "private address (RFC 1918): not geolocatable",
    IpKind.LOOPBACK: "loopback address: not geolocatable",
    IpKind.LINK_LOCAL: "link-local address: not geolocatable",
    IpKind.MULTICAST: "multicast address: not a client source",
    IpKind.DOCUMENTATION: "documentation address (RFC 5737 / RFC 3849): not routable",
    IpKind.RESERVED: "reserved or unspecified address: not routable",
    IpKind.PUBLIC: "no registry country for this address",
}


def classify_ip(value: str | None) -> tuple[IpKind, str | None]:
    """``(kind, normalized address)`` for a raw source-address value; never raises.

    ``normalized`` is the canonical address (port, brackets and IPv6 zone stripped,
    IPv4-mapped IPv6 unwrapped), the trimmed name for SERVICE, ``None`` when invalid/missing.
    """
    if not value:
        return IpKind.MISSING, None
    if not isinstance(value, str):
        return IpKind.INVALID, None
    if PUBLIC_IPV4_FAST.fullmatch(value):
        return IpKind.PUBLIC, value
    return _classify_slow(value)


def _classify_slow(value: str) -> tuple[IpKind, str | None]:
    if len(value) > MAX_ADDRESS_LENGTH or "\x00" in value:
        return IpKind.INVALID, None
    text = value.strip()
    if not text:
        return IpKind.MISSING, None
    host = _strip_port(text)
    if host is None:
        return IpKind.INVALID, None
    address = _parse_address(host)
    if address is None:
        if host.lower() in _SERVICE_PHRASES or _HOSTNAME.fullmatch(host):
            return IpKind.SERVICE, host
        return IpKind.INVALID, None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return _kind_of(address), str(address)


def _strip_port(text: str) -> str | None:
    """``[v6]:port`` / ``[v6]`` / ``v4:port`` -> host; ``None`` when the brackets/port are bad."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        rest = text[close + 1 :]
        if rest and not (rest.startswith(":") and _valid_port(rest[1:])):
            return None
        return text[1:close]
    if text.count(":") == 1:
        host, port = text.split(":")
        return host if _valid_port(port) else None
    return text


def _valid_port(port: str) -> bool:
    return bool(_PORT.fullmatch(port)) and int(port) <= 65535


def _parse_address(host: str) -> IPv4Address | IPv6Address | None:
    if "%" in host:
        host, zone = host.split("%", 1)
        if not _ZONE.fullmatch(zone) or ":" not in host:
            return None
    if not host.isascii():
        return None
    try:
        parsed = ip_address(host)
    except ValueError:
        return None
    if isinstance(parsed, IPv6Address) and parsed.scope_id is not None:
        return None  # a second '%' survived the split above
    return parsed


def _kind_of(address: IPv4Address | IPv6Address) -> IpKind:
    if isinstance(address, IPv4Address):
        for net4, kind in _V4_TABLE:
            if address in net4:
                return kind
        return IpKind.PUBLIC
    for net6, kind in _V6_TABLE:
        if address in net6:
            return kind
    return IpKind.RESERVED  # outside 2000::/3 and the blocks above: reserved by the IETF


def is_aws_service_name(name: str) -> bool:
    """True for CloudTrail's service stand-ins (``ssm.amazonaws.com``, ``AWS Internal``)."""
    lowered = name.lower().rstrip(".")
    return lowered in _SERVICE_PHRASES or lowered.endswith(_AWS_SUFFIXES)


def not_geolocatable_reason(kind: IpKind, normalized: str | None) -> str:
    """Why an address of ``kind`` carries no country (PUBLIC: the registry had none)."""
    if kind is IpKind.SERVICE:
        if normalized is not None and is_aws_service_name(normalized):
            return "AWS service principal, not an IP"
        return "hostname, not an IP (names are not resolved)"
    if kind is IpKind.PRIVATE and normalized is not None:
        address = _parse_address(normalized)
        for net, label in _PRIVATE_REASONS:
            if address is not None and address.version == net.version and address in net:
                return f"{label}: not geolocatable"
    return _REASONS[kind]
