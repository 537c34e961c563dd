"""IP intelligence: address classification and country / subdivision / ASN enrichment."""

from agent.enrich.geo import BUILTIN, DEFAULT_CACHE_SIZE, GeoEnricher
from agent.enrich.ipkind import classify_ip, is_aws_service_name, not_geolocatable_reason

__all__ = [
    "BUILTIN",
    "DEFAULT_CACHE_SIZE",
    "GeoEnricher",
    "classify_ip",
    "is_aws_service_name",
    "not_geolocatable_reason",
]
