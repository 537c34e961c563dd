"""One measured variant per process: ``python -m bench.variants NAME DATA [STORE|-] [CONFIG]``.

Prints one JSON line: wall and CPU seconds (work only, imports excluded), records,
raw_bytes, peak RSS of this process (``ru_maxrss``) and the RSS before the work. Variants:

- ``*-zcat`` / ``*-zcat-isal``: decompress every file (stdlib gzip, the fastest decoder);
- ``ct-floor`` / ``ct-floor-isal``: decompress + ``orjson.loads`` of every CloudTrail file;
  ``fl-floor``: decompress + split into lines;
- ``ct-naive`` / ``fl-naive``: what a user writes in an afternoon (below);
- ``ct-chipwarden`` / ``fl-chipwarden``: ``chipwarden audit`` (agent.cli.run) on DATA_DIR's
  config.yaml, with a real SQLite or PostgreSQL store.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import iptocc

Variant = Callable[[Path, str | None], dict[str, Any]]

_SESSION_NAMES = frozenset(
    {"StartSession", "ResumeSession", "SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"}
    | {"OpenTunnel", "ConsoleLogin"}
)
_RESTRICTED = frozenset({"CN", "RU", "IR", "KP", "BY", "MO", "HK", "CU", "SY", "VE"})
_ADMIN_PORTS = frozenset({22, 3389, 5900, 8888})


def _files(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in root.rglob(f"*{suffix}") if p.is_file())


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """User + system CPU seconds of this process (threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _gunzip_fast() -> Callable[[bytes], bytes]:
    from providers.aws.fastscan import gunzip

    return gunzip


# -- CloudTrail --------------------------------------------------------------------------


def ct_zcat(data: Path, _store: str | None, *, fast: bool = False) -> dict[str, Any]:
    unzip = _gunzip_fast() if fast else gzip.decompress
    raw = sum(len(unzip(p.read_bytes())) for p in _files(data / "trail", ".json.gz"))
    return {"raw_bytes": raw}


def ct_floor(data: Path, _store: str | None, *, fast: bool = False) -> dict[str, Any]:
    import orjson

    unzip = _gunzip_fast() if fast else gzip.decompress
    records = raw = 0
    for path in _files(data / "trail", ".json.gz"):
        body = unzip(path.read_bytes())
        raw += len(body)
        records += len(orjson.loads(body)["Records"])
    return {"records": records, "raw_bytes": raw}


def ct_naive(data: Path, _store: str | None) -> dict[str, Any]:
    """json.load per file, a loop over records, one registry lookup per session IP."""
    records = flagged = 0
    for path in _files(data / "trail", ".json.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
        for rec in doc["Records"]:
            records += 1
            if rec.get("eventName") not in _SESSION_NAMES:
                continue
            ip = rec.get("sourceIPAddress", "")
            try:
                public = ipaddress.ip_address(ip).is_global
            except ValueError:
                continue
            if public and iptocc.country_code(ip) in _RESTRICTED:
                flagged += 1
    return {"records": records, "flagged": flagged}


# -- VPC flow logs -----------------------------------------------------------------------


def fl_zcat(data: Path, _store: str | None, *, fast: bool = False) -> dict[str, Any]:
    unzip = _gunzip_fast() if fast else gzip.decompress
    raw = sum(len(unzip(p.read_bytes())) for p in _files(data / "flows", ".log.gz"))
    return {"raw_bytes": raw}


def fl_floor(data: Path, _store: str | None) -> dict[str, Any]:
    unzip = _gunzip_fast()
    records = raw = 0
    for path in _files(data / "flows", ".log.gz"):
        body = unzip(path.read_bytes())
        raw += len(body)
        records += len(body.split(b"\n")) - 2  # header and the final newline
    return {"records": records, "raw_bytes": raw}


def _gpu_enis(data: Path) -> set[str]:
    rows = (data / "inventory.csv").read_text().splitlines()[1:]
    return {r.split(",")[6] for r in rows if r.split(",")[4].startswith(("p", "g"))}


def fl_naive(data: Path, _store: str | None) -> dict[str, Any]:
    """gzip.open per file, dict(zip(header, line.split())) per line, a lookup per hit."""
    enis = _gpu_enis(data)
    records = flagged = 0
    for path in _files(data / "flows", ".log.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            header = next(fh).split()
            for line in fh:
                rec = dict(zip(header, line.split(), strict=False))
                records += 1
                if rec.get("action") != "ACCEPT" or rec.get("interface-id") not in enis:
                    continue
                port = rec.get("dstport", "-")
                if not port.isdigit() or int(port) not in _ADMIN_PORTS:
                    continue
                if iptocc.country_code(rec["srcaddr"]) in _RESTRICTED:
                    flagged += 1
    return {"records": records, "flagged": flagged}


# -- chipwarden --------------------------------------------------------------------------


def chipwarden(data: Path, store: str | None, *, config: str = "config.yaml") -> dict[str, Any]:
    """``chipwarden audit --config DATA/config.yaml --store STORE`` (the real code path)."""
    from agent.cli import run
    from agent.store import open_store

    url = store or f"sqlite:///{data / 'bench-store.db'}"
    code = run(
        [
            "audit",
            "--config",
            str(data / config),
            "--store",
            url,
            "--format",
            "jsonl",
            "--output",
            os.devnull,
            "--no-progress",
            *(["--shard", os.environ["BENCH_SHARD"]] if os.environ.get("BENCH_SHARD") else []),
        ]
    )
    with open_store(url) as db:
        last = db.list_runs(limit=1)[0]
    counts = last.counts
    return {
        "records": counts.read,
        "sessions": counts.sessions,
        "findings": counts.findings,
        "exit_code": code,
        "status": last.status.value,
    }


VARIANTS: dict[str, Variant] = {
    "ct-zcat": ct_zcat,
    "ct-zcat-isal": lambda d, s: ct_zcat(d, s, fast=True),
    "ct-floor": ct_floor,
    "ct-floor-isal": lambda d, s: ct_floor(d, s, fast=True),
    "ct-naive": ct_naive,
    "ct-chipwarden": chipwarden,
    "fl-zcat": fl_zcat,
    "fl-zcat-isal": lambda d, s: fl_zcat(d, s, fast=True),
    "fl-floor": fl_floor,
    "fl-naive": fl_naive,
    "fl-chipwarden": chipwarden,
}


def main(argv: list[str]) -> None:
    name, data = argv[0], Path(argv[1])
    store = argv[2] if len(argv) > 2 and argv[2] != "-" else None
    variant = VARIANTS[name]
    if name.endswith("chipwarden"):
        import agent.cli  # noqa: F401  - imports are not part of the measured work

        if len(argv) > 3:
            variant = functools.partial(chipwarden, config=argv[3])
    rss_before = _rss_mb()
    cpu_before = _cpu()
    started = time.perf_counter()
    result = variant(data, store)
    result["seconds"] = time.perf_counter() - started
    result["cpu"] = _cpu() - cpu_before
    result["rss_mb"] = _rss_mb()
    result["rss_before_mb"] = rss_before
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
