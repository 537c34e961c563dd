"""Shared helpers of the bench generators and runners: deterministic IP pools by country,
the synthetic GPU inventory, sizes and gzip writing. Standard library + iptocc only."""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import iptocc

__all__ = [
    "ACCOUNT_COUNT",
    "REGIONS",
    "GpuHost",
    "IpPools",
    "gpu_hosts",
    "gzip_bytes",
    "parse_size",
    "write_inventory",
]

REGIONS: tuple[str, ...] = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
)
ACCOUNT_COUNT = 12
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

# Share of session source IPs per country (the rest drawn from every other country seen).
SESSION_COUNTRY_WEIGHTS: dict[str, float] = {
    "US": 0.30,
    "DE": 0.08,
    "GB": 0.07,
    "JP": 0.06,
    "IN": 0.06,
    "FR": 0.05,
    "BR": 0.04,
    "KR": 0.04,
    "CA": 0.04,
    "NL": 0.03,
    "SG": 0.03,
    "CN": 0.05,
    "HK": 0.02,
    "RU": 0.03,
    "IR": 0.01,
    "AE": 0.02,
}


def parse_size(text: str) -> int:
    """``256MB``, ``1g``, ``4GB``, ``500k`` -> bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 64MB, 1GB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Standard gzip (deflate) bytes at zlib's default level, as most log shippers write."""
    return gzip.compress(data, compresslevel=level, mtime=0)


class IpPools:
    """Public IPv4 addresses grouped by registry country (iptocc), drawn deterministically."""

    def __init__(self, rnd: random.Random, *, sample: int = 60_000) -> None:
        candidates = [
            f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}."
            f"{rnd.randint(1, 254)}"
            for _ in range(sample)
        ]
        candidates = [c for c in candidates if not c.startswith(("10.", "127.", "100.", "172."))]
        by_country: dict[str, list[str]] = {}
        for ip, cc in zip(candidates, iptocc.country_code(candidates), strict=True):
            if cc:
                by_country.setdefault(cc, []).append(ip)
        self.by_country = by_country
        self.all = [ip for ips in by_country.values() for ip in ips]
        self._rnd = rnd
        weights = {c: w for c, w in SESSION_COUNTRY_WEIGHTS.items() if c in by_country}
        rest = [c for c in by_country if c not in weights]
        self._countries = [*weights, *rest]
        spare = max(0.0, 1.0 - sum(weights.values()))
        self._weights = [*weights.values(), *([spare / len(rest)] * len(rest) if rest else [])]

    def session_ip(self) -> str:
        """A source IP for a session event, weighted towards a realistic country mix."""
        country = self._rnd.choices(self._countries, weights=self._weights)[0]
        return self._rnd.choice(self.by_country[country])

    def any_ip(self) -> str:
        return self._rnd.choice(self.all)

    def countries(self) -> int:
        return len(self.by_country)


@dataclass(frozen=True)
class GpuHost:
    """One synthetic instance of the inventory (GPU or not)."""

    account: str
    region: str
    instance_id: str
    instance_type: str
    private_ip: str
    eni: str


_TYPES: tuple[str, ...] = (
    "p5.48xlarge",
    "p4d.24xlarge",
    "g6e.12xlarge",
    "g5.2xlarge",
    "g4dn.xlarge",
    "t3.micro",
)


def accounts() -> list[str]:
    return [f"{100000000000 + 7919 * i:012d}" for i in range(ACCOUNT_COUNT)]


def gpu_hosts(per_account_region: int = 3) -> list[GpuHost]:
    """A fixed inventory: ``per_account_region`` instances in every account x region."""
    hosts = []
    n = 0
    for a, account in enumerate(accounts()):
        for r, region in enumerate(REGIONS):
            for k in range(per_account_region):
                n += 1
                hosts.append(
                    GpuHost(
                        account=account,
                        region=region,
                        instance_id=f"i-{n:017x}",
                        instance_type=_TYPES[(a + r + k) % len(_TYPES)],
                        private_ip=f"10.{a}.{r}.{10 + k}",
                        eni=f"eni-{n:017x}",
                    )
                )
    return hosts


def write_inventory(path: Path, hosts: Sequence[GpuHost]) -> None:
    """The static CSV inventory chipwarden reads (provider,account,...,enis)."""
    lines = ["provider,account,region,instance_id,instance_type,private_ips,enis,name"]
    lines += [
        f"aws,{h.account},{h.region},{h.instance_id},{h.instance_type},{h.private_ip},{h.eni},"
        f"host-{i}"
        for i, h in enumerate(hosts)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
