"""Generate synthetic VPC flow logs as S3 delivers them: gzip'd ``.log.gz`` objects with a
header line under ``AWSLogs/<account>/vpcflowlogs/<region>/YYYY/MM/DD/``, in the default v2
format or a v5 custom format, ~1% of records inbound to GPU ENIs on admin ports from public
IPs of many countries, plus a GPU inventory CSV and a chipwarden config.

    python -m bench.gen_flowlogs OUT_DIR --size 256MB [--files 64] [--format v2|v5|mixed]
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import REGIONS, GpuHost, IpPools, accounts, gpu_hosts, gzip_bytes, parse_size
from bench.common import write_inventory as _write_inventory

__all__ = ["V2_FIELDS", "V5_FIELDS", "generate", "main"]

DAY = datetime(2026, 11, 24, tzinfo=UTC)
V2_FIELDS = [
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
]
V5_FIELDS = [
    *V2_FIELDS,
    *[
        "vpc-id",
        "subnet-id",
        "instance-id",
        "tcp-flags",
        "type",
        "pkt-srcaddr",
        "pkt-dstaddr",
        "region",
        "az-id",
        "sublocation-type",
        "sublocation-id",
        "pkt-src-aws-service",
        "pkt-dst-aws-service",
        "flow-direction",
        "traffic-path",
    ],
]
ADMIN_PORTS = (22, 22, 22, 22, 3389, 3389, 8888, 5900)
_COMMON_PORTS = (443, 443, 443, 80, 53, 123, 5432, 6379, 8080, 9090, 2049)
_GPU_TYPES = ("p5.48xlarge", "p4d.24xlarge", "g6e.12xlarge", "g5.2xlarge", "g4dn.xlarge")


class _Lines:
    """Builds flow-log lines for one file's account x region."""

    def __init__(self, rnd: random.Random, pools: IpPools, hosts: list[GpuHost]) -> None:
        self.rnd = rnd
        self.pools = pools
        self.hosts = hosts

    def line(
        self,
        *,
        fields: list[str],
        host: GpuHost,
        start: int,
        hit: bool,
        conn: tuple[str, int] | None = None,
    ) -> str:
        rnd = self.rnd
        v: dict[str, Any] = {
            "version": 5 if len(fields) > 14 else 2,
            "account-id": host.account,
            "interface-id": host.eni,
            "protocol": 6,
            "packets": rnd.randint(1, 400),
            "start": start,
            "end": start + rnd.randint(1, 60),
            "action": "ACCEPT",
            "log-status": "OK",
        }
        roll = rnd.random()
        if hit:
            src, port = conn or (self.pools.session_ip(), rnd.choice(ADMIN_PORTS))
            v.update(srcaddr=src, dstaddr=host.private_ip)
            v.update(srcport=rnd.randint(1024, 65535), dstport=port)
            direction = "ingress"
        elif roll < 0.55:  # egress from the instance to the internet
            v.update(srcaddr=host.private_ip, dstaddr=self.pools.any_ip())
            v.update(srcport=rnd.randint(1024, 65535), dstport=rnd.choice(_COMMON_PORTS))
            direction = "egress"
        elif roll < 0.80:  # inbound replies / services on non-admin ports
            v.update(srcaddr=self.pools.any_ip(), dstaddr=host.private_ip)
            v.update(srcport=rnd.choice(_COMMON_PORTS), dstport=rnd.randint(1024, 65535))
            direction = "ingress"
        elif roll < 0.93:  # east-west traffic inside the VPC
            v.update(srcaddr=f"10.{rnd.randint(0, 11)}.{rnd.randint(0, 6)}.{rnd.randint(2, 250)}")
            v.update(dstaddr=host.private_ip, srcport=rnd.randint(1024, 65535))
            v.update(dstport=rnd.choice(_COMMON_PORTS))
            direction = "ingress"
        else:  # scanners knocking on admin ports: rejected
            v.update(srcaddr=self.pools.any_ip(), dstaddr=host.private_ip)
            v.update(srcport=rnd.randint(1024, 65535), dstport=rnd.choice(ADMIN_PORTS))
            v["action"] = "REJECT"
            direction = "ingress"
        stray_hit = v["action"] == "ACCEPT" and v["dstport"] in ADMIN_PORTS
        if not hit and host.instance_type in _GPU_TYPES and stray_hit and direction == "ingress":
            v["dstport"] = 443  # keep the share of real hits at --hit-share
        v["bytes"] = v["packets"] * rnd.randint(40, 1500)
        if len(fields) > 14:
            v.update(
                {
                    "vpc-id": f"vpc-{host.account[-8:]}",
                    "subnet-id": f"subnet-{host.account[-6:]}{REGIONS.index(host.region)}",
                    "instance-id": host.instance_id,
                    "tcp-flags": rnd.choice((2, 18, 19, 3)),
                    "type": "IPv4",
                    "pkt-srcaddr": v["srcaddr"],
                    "pkt-dstaddr": v["dstaddr"],
                    "region": host.region,
                    "az-id": f"use1-az{rnd.randint(1, 6)}",
                    "sublocation-type": "-",
                    "sublocation-id": "-",
                    "pkt-src-aws-service": "-",
                    "pkt-dst-aws-service": rnd.choice(("-", "-", "-", "S3", "AMAZON")),
                    "flow-direction": direction,
                    "traffic-path": rnd.choice((1, 8, "-")) if direction == "egress" else "-",
                }
            )
        return " ".join(str(v[f]) for f in fields)

    def nodata(self, *, fields: list[str], host: GpuHost, start: int) -> str:
        values = {f: "-" for f in fields}
        values.update(
            {
                "version": "5" if len(fields) > 14 else "2",
                "account-id": host.account,
                "interface-id": host.eni,
                "start": str(start),
                "end": str(start + 60),
                "log-status": "NODATA",
            }
        )
        return " ".join(values[f] for f in fields)


def generate(
    out: Path,
    *,
    size: int,
    files: int | None = None,
    fmt: str = "mixed",
    hit_share: float = 0.01,
    seed: int = 5,
    write_config: bool = True,
) -> dict[str, Any]:
    """Write the flow logs under ``out``; returns a summary."""
    rnd = random.Random(seed)  # noqa: S311 - synthetic data, not security
    pools = IpPools(rnd)
    hosts = gpu_hosts()
    gpu = [h for h in hosts if h.instance_type in _GPU_TYPES]
    by_scope: dict[tuple[str, str], list[GpuHost]] = {}
    for h in hosts:
        by_scope.setdefault((h.account, h.region), []).append(h)
    maker = _Lines(rnd, pools, hosts)
    files = files or max(1, size // (4 << 20))
    per_file = size / files
    accts = accounts()
    root = out / "flows" / "AWSLogs"
    summary = {"files": 0, "records": 0, "raw_bytes": 0, "gz_bytes": 0, "hits": 0}
    for n in range(files):
        account = accts[n % len(accts)]
        region = REGIONS[(n // len(accts)) % len(REGIONS)]
        scope_hosts = by_scope[(account, region)]
        scope_gpu = [h for h in scope_hosts if h in gpu] or scope_hosts
        fields = V5_FIELDS if fmt == "v5" or (fmt == "mixed" and n % 2) else V2_FIELDS
        start0 = int((DAY + timedelta(minutes=(n * 10) % 1440)).timestamp())
        lines = [" ".join(fields)]
        written = len(lines[0])
        # Admin access comes from a few client connections per file: an SSH session logs a
        # record per aggregation interval and reconnects from the same address.
        expected_hits = max(1, int(per_file / 150 * hit_share))
        conns = [
            (rnd.choice(scope_gpu), (pools.session_ip(), rnd.choice(ADMIN_PORTS)))
            for _ in range(max(2, expected_hits // 25))
        ]
        while written < per_file:
            start = start0 + rnd.randint(0, 599)
            if rnd.random() < 0.002:
                text = maker.nodata(fields=fields, host=rnd.choice(scope_hosts), start=start)
            else:
                hit = rnd.random() < hit_share
                if hit:
                    host, conn = rnd.choice(conns)
                    text = maker.line(fields=fields, host=host, start=start, hit=True, conn=conn)
                else:
                    host = rnd.choice(scope_hosts)
                    text = maker.line(fields=fields, host=host, start=start, hit=False)
                summary["hits"] += hit
            lines.append(text)
            written += len(text) + 1
        body = ("\n".join(lines) + "\n").encode()
        folder = root / account / "vpcflowlogs" / region / DAY.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(start0, tz=UTC).strftime("%Y%m%dT%H%MZ")
        name = f"{account}_vpcflowlogs_{region}_fl-{n:017x}_{stamp}_{rnd.getrandbits(32):08x}"
        data = gzip_bytes(body)
        (folder / f"{name}.log.gz").write_bytes(data)
        summary["files"] += 1
        summary["records"] += len(lines) - 1
        summary["raw_bytes"] += len(body)
        summary["gz_bytes"] += len(data)
    if write_config:
        _write_inventory(out / "inventory.csv", hosts)
        (out / "config.yaml").write_text(
            "inventory:\n  - path: inventory.csv\n"
            "sources:\n  - type: vpc-flow-files\n    paths: [flows]\n"
            "policies: [builtin:export-controls]\n",
            encoding="utf-8",
        )
    summary["countries"] = pools.countries()
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="64MB", help="uncompressed text volume (64MB, 1GB)")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--format", dest="fmt", choices=("v2", "v5", "mixed"), default="mixed")
    parser.add_argument("--hit-share", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        generate(
            args.out,
            size=parse_size(args.size),
            files=args.files,
            fmt=args.fmt,
            hit_share=args.hit_share,
            seed=args.seed,
        )
    )


if __name__ == "__main__":
    main()
