"""What we know about a source IP: kind, place, network, reputation tags, and who said so."""

from __future__ import annotations

from enum import StrEnum

from agent.models.base import Frozen

__all__ = ["IpIntel", "IpKind"]


class IpKind(StrEnum):
    """Classification of a source address before any geolocation."""

    PUBLIC = "public"
    PRIVATE = "private"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    RESERVED = "reserved"
    MULTICAST = "multicast"
    DOCUMENTATION = "documentation"
    SERVICE = "service"  # an AWS service name such as ssm.amazonaws.com
    INVALID = "invalid"
    MISSING = "missing"


class IpIntel(Frozen):
    """Enrichment of one source IP.

    ``country`` is ISO 3166-1 alpha-2 or ``None`` with ``unknown_reason`` saying why (unknown is
    a value, never silently "not restricted"). ``sources`` names each database and version that
    answered (``iptocc 3.3.170 (RIR registry country)``).
    """

    ip: str
    kind: IpKind
    normalized: str | None = None
    country: str | None = None
    subdivision: str | None = None  # ISO 3166-2, e.g. UA-43
    city: str | None = None
    asn: int | None = None
    asn_org: str | None = None
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    unknown_reason: str | None = None

    @property
    def geolocatable(self) -> bool:
        return self.kind is IpKind.PUBLIC
