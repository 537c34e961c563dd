"""Run the benchmarks side by side and print the tables (see bench/README.md).

    python -m bench.run                       # defaults: about 1-2 minutes on 2 cores
    python -m bench.run --ct-size 1GB --flow-size 1GB --mem-sizes 1GB,4GB --inc-files 10000

Inputs are generated once under ``--out`` (bench/out by default, git-ignored) and reused.
Every variant runs in its own process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import gen_cloudtrail, gen_flowlogs
from bench.common import parse_size
from bench.micro import enrich_rates, policy_rates

ROOT = Path(__file__).resolve().parent.parent
MB = 1_000_000


def _dataset(out: Path, kind: str, size: int, files: int | None = None) -> tuple[Path, dict]:
    """Generate (once) and return the data folder and its summary."""
    tag = f"{kind}-{size // MB}MB" + (f"-{files}f" if files else "")
    folder = out / "data" / tag
    summary_path = folder / "summary.json"
    if summary_path.exists():
        return folder, json.loads(summary_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    if kind == "ct":
        summary = gen_cloudtrail.generate(folder, size=size, files=files)
    else:
        summary = gen_flowlogs.generate(folder, size=size, files=files)
    summary["generated_in_s"] = round(time.perf_counter() - started, 1)
    summary_path.write_text(json.dumps(summary))
    return folder, summary


def _measure(
    variant: str, data: Path, store: str | None = None, config: str | None = None
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.variants", variant, str(data), store or "-"]
    if config:
        cmd.append(config)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_shards(variant: str, data: Path, store: str, shards: int) -> dict[str, Any]:
    """``shards`` processes of ``variant`` at once (``--shard i/N``) on one store; wall time
    until the last one ends, CPU and records summed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.variants", variant, str(data), store],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**env, "BENCH_SHARD": f"{i}/{shards}"},
        )
        for i in range(shards)
    ]  # fmt: skip
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{variant} shard failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "seconds": time.perf_counter() - started,  # includes interpreter start-up and imports
        "cpu": sum(r["cpu"] for r in results),
        "records": sum(r["records"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
        "rss_before_mb": max(r["rss_before_mb"] for r in results),
    }


def _fresh_store(data: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{data / 'bench-store.db'}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{data / 'bench-store.db'}"


def _row(label: str, r: dict[str, Any], records: int, raw: int) -> str:
    s, cpu = r["seconds"], r["cpu"]
    return (
        f"{label:<32}{s:>8.3f}{cpu:>8.3f}{records / cpu / 1e6:>9.2f}{raw / cpu / MB:>8.0f}"
        f"{r['rss_mb']:>9.0f}{r['rss_mb'] - r['rss_before_mb']:>7.0f}"
    )


_HEAD = (
    f"{'variant':<32}{'wall s':>8}{'CPU s':>8}{'Mrec/s':>9}{'MB/s':>8}{'peakRSS':>9}{'+work':>7}"
    "\n(rates per CPU second; the wall clock also counts time other processes took the CPU)"
)


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def section_cloudtrail(out: Path, size: int) -> dict[str, Any]:
    data, summary = _dataset(out, "ct", size)
    records, raw = summary["records"], summary["raw_bytes"]
    print(
        f"\n== CloudTrail org trail: {summary['files']} files, {raw / MB:.0f} MB JSON "
        f"({summary['gz_bytes'] / MB:.1f} MB gzip), {records:,} records, "
        f"{summary['session_events']} session events, IPs from {summary['countries']} countries"
    )
    print(_HEAD)
    rows = {
        "ct-zcat": "(a) zcat: gzip.decompress",
        "ct-zcat-isal": "(a) zcat: ISA-L",
        "ct-floor": "(a) floor: gzip + orjson",
        "ct-floor-isal": "(a) floor: ISA-L + orjson",
        "ct-naive": "(b) naive: json.load + loop",
        "ct-chipwarden": "(c) chipwarden audit",
    }
    res: dict[str, Any] = {}
    for variant, label in rows.items():
        store = _fresh_store(data) if variant == "ct-chipwarden" else None
        res[variant] = _measure(variant, data, store)
        print(_row(label, res[variant], records, raw))
    tiny, _ = _dataset(out, "ct", 20_000, files=1)
    res["startup"] = _measure("ct-chipwarden", tiny, _fresh_store(tiny))
    print(
        f"{'(c0) chipwarden on 1 tiny file':<32}{res['startup']['seconds']:>8.3f}"
        f"{res['startup']['cpu']:>8.3f}   (fixed cost)"
    )
    _net_ratios(res, "ct-chipwarden", "ct-naive", "ct-floor-isal")
    c = res["ct-chipwarden"]["cpu"]
    floor, floor_fast = res["ct-floor"]["cpu"], res["ct-floor-isal"]["cpu"]
    naive = res["ct-naive"]["cpu"]
    print(
        f"CPU time ratios: (c)/(a floor gzip+orjson) = {c / floor:.2f}x; (c)/(a floor ISA-L+"
        f"orjson) = {c / floor_fast:.2f}x; (c)/(a zcat gzip) = {c / res['ct-zcat']['cpu']:.2f}x;"
        f" (c)/(a zcat ISA-L) = {c / res['ct-zcat-isal']['cpu']:.2f}x; (c)/(b) = {c / naive:.3f}x,"
        f" i.e. {naive / c:.1f}x faster than naive"
    )
    wall = {k: res[k]["seconds"] for k in ("ct-chipwarden", "ct-floor", "ct-naive")}
    print(
        f"wall-clock ratios (2 cores: chipwarden decompresses the next file on the other one):"
        f" (c)/(a floor gzip+orjson) = {wall['ct-chipwarden'] / wall['ct-floor']:.2f}x; "
        f"{wall['ct-naive'] / wall['ct-chipwarden']:.1f}x faster than naive"
    )
    print(
        f"target within 1.25x of the floor: CPU {_verdict(c <= 1.25 * floor)}"
        f" (ISA-L floor: {_verdict(c <= 1.25 * floor_fast)}), wall "
        f"{_verdict(wall['ct-chipwarden'] <= 1.25 * wall['ct-floor'])};"
        f" target >= 5x naive: CPU {_verdict(naive / c >= 5)}, wall "
        f"{_verdict(wall['ct-naive'] / wall['ct-chipwarden'] >= 5)}"
        f"  [chipwarden: {res['ct-chipwarden']['sessions']} sessions, "
        f"{res['ct-chipwarden']['findings']} findings, status {res['ct-chipwarden']['status']}]"
    )
    return res


def _net_ratios(res: dict[str, Any], ours: str, naive: str, floor: str) -> None:
    """Ratios without chipwarden's fixed start-up (config, policy packs, store migration)."""
    net = max(res[ours]["cpu"] - res["startup"]["cpu"], 1e-9)
    res["net_cpu"] = net
    print(
        f"net of start-up: (c)-(c0) = {net:.3f} CPU s; vs floor {net / res[floor]['cpu']:.2f}x;"
        f" {res[naive]['cpu'] / net:.1f}x faster than naive"
    )


def section_flows(out: Path, size: int) -> dict[str, Any]:
    data, summary = _dataset(out, "fl", size)
    records, raw = summary["records"], summary["raw_bytes"]
    print(
        f"\n== VPC flow logs (v2 + v5): {summary['files']} files, {raw / MB:.0f} MB text "
        f"({summary['gz_bytes'] / MB:.1f} MB gzip), {records:,} records, "
        f"{summary['hits']:,} to GPU admin ports"
    )
    print(_HEAD)
    rows = {
        "fl-zcat": "(a) zcat: gzip.decompress",
        "fl-zcat-isal": "(a) zcat: ISA-L",
        "fl-floor": "(a) floor: ISA-L + split lines",
        "fl-naive": "(b) naive: per-line dict loop",
        "fl-chipwarden": "(c) chipwarden audit",
    }
    res: dict[str, Any] = {}
    for variant, label in rows.items():
        store = _fresh_store(data) if variant == "fl-chipwarden" else None
        res[variant] = _measure(variant, data, store)
        print(_row(label, res[variant], records, raw))
    res["two-shards"] = _measure_shards("fl-chipwarden", data, _fresh_store(data), 2)
    two = res["two-shards"]
    print(
        f"{'(c) 2 shards at once (--shard i/2)':<32}{two['seconds']:>8.3f}{two['cpu']:>8.3f}"
        f"   {records / two['seconds'] / 1e6:.2f}M records/s wall, interpreter start-up included"
    )
    tiny, _ = _dataset(out, "fl", 20_000, files=1)
    res["startup"] = _measure("fl-chipwarden", tiny, _fresh_store(tiny))
    print(
        f"{'(c0) chipwarden on 1 tiny file':<32}{res['startup']['seconds']:>8.3f}"
        f"{res['startup']['cpu']:>8.3f}   (fixed cost)"
    )
    _net_ratios(res, "fl-chipwarden", "fl-naive", "fl-floor")
    c = res["fl-chipwarden"]["cpu"]
    naive = res["fl-naive"]["cpu"]
    rate = records / c
    print(
        f"CPU time ratios: (c)/(a floor) = {c / res['fl-floor']['cpu']:.2f}x; (c)/(a zcat "
        f"ISA-L) = {c / res['fl-zcat-isal']['cpu']:.2f}x; (c)/(b) = {c / naive:.3f}x, i.e. "
        f"{naive / c:.1f}x faster than naive; end-to-end {rate / 1e6:.2f}M records per CPU "
        f"second (one core; {2 * rate / 1e6:.2f}M/s for 2 shards on 2 cores)"
    )
    print(
        f"wall clock: {records / res['fl-chipwarden']['seconds'] / 1e6:.2f}M records/s, "
        f"{res['fl-naive']['seconds'] / res['fl-chipwarden']['seconds']:.1f}x faster than naive"
        "\n"
        f"target >= 3M records/s on 2 cores (2 shards): {_verdict(2 * rate >= 3e6)}; "
        f"target >= 5x naive: "
        f"{_verdict(naive / c >= 5)}  [chipwarden: {res['fl-chipwarden']['sessions']} sessions, "
        f"{res['fl-chipwarden']['findings']} findings, status {res['fl-chipwarden']['status']}]"
    )
    return res


def section_memory(out: Path, sizes: Sequence[int]) -> dict[str, Any]:
    print("\n== Peak RSS of chipwarden audit by input size (each in a fresh process)")
    print(f"{'input':<34}{'wall s':>9}{'CPU s':>9}{'peakRSS MB':>12}{'records':>14}")
    res: dict[str, Any] = {}
    for kind, variant in (("ct", "ct-chipwarden"), ("fl", "fl-chipwarden")):
        peaks = []
        for size in sizes:
            data, _ = _dataset(out, kind, size)
            r = _measure(variant, data, _fresh_store(data))
            peaks.append(r["rss_mb"])
            res[f"{kind}-{size}"] = r
            label = f"{kind} {size // MB} MB"
            print(
                f"{label:<34}{r['seconds']:>9.2f}{r['cpu']:>9.2f}{r['rss_mb']:>12.0f}"
                f"{r['records']:>14,}"
            )
        growth = max(peaks) / min(peaks) - 1
        print(
            f"  {kind}: peak < 300 MB: {_verdict(max(peaks) < 300)}; flat within 10%: "
            f"{_verdict(growth <= 0.10)} (+{growth * 100:.1f}% from smallest to largest)"
        )
    return res


def section_incremental(out: Path, files: int, file_size: int) -> dict[str, Any]:
    data, summary = _dataset(out, "ct", files * file_size, files=files)
    config = data / "config-incremental.yaml"
    config.write_text(
        (data / "config.yaml")
        .read_text()
        .replace("paths: [trail]", "paths: [trail]\n    incremental: true"),
        encoding="utf-8",
    )
    tiny, _ = _dataset(out, "ct", 20_000, files=1)
    startup = _measure("ct-chipwarden", tiny, _fresh_store(tiny))
    store = _fresh_store(data)
    first = _measure("ct-chipwarden", data, store, config.name)
    second = _measure("ct-chipwarden", data, store, config.name)
    ratio = second["seconds"] / first["seconds"]
    cpu_ratio = second["cpu"] / first["cpu"]
    print(
        f"\n== Incremental: {summary['files']:,} unchanged files ({summary['raw_bytes'] / MB:.0f}"
        f" MB JSON), same store\nfirst audit {first['seconds']:.2f} s wall / {first['cpu']:.2f} s"
        f" CPU ({first['records']:,} records read); second audit {second['seconds']:.3f} s wall /"
        f" {second['cpu']:.3f} s CPU ({second['records']:,} records read) = {ratio * 100:.2f}% "
        f"(wall), {cpu_ratio * 100:.2f}% (CPU) of the first; target < 3%: "
        f"{_verdict(max(ratio, cpu_ratio) < 0.03)}"
    )
    net = (second["cpu"] - startup["cpu"]) / max(first["cpu"] - startup["cpu"], 1e-9)
    print(
        f"without the fixed start-up ({startup['cpu']:.3f} s CPU: config, policy packs, store "
        f"migration check), listing + checkpoint check = {net * 100:.2f}% of the first run's "
        f"reading ({(second['cpu'] - startup['cpu']) / summary['files'] * 1e6:.0f} us per file)"
    )
    return {"first": first, "second": second, "startup": startup}


def section_micro(n: int) -> dict[str, Any]:
    print("\n== Enrichment and policy evaluation (in process)")
    enrich = enrich_rates(n=n)
    for label, rate in enrich["rates"].items():
        print(f"{label:<58}{rate / 1e6:>8.2f} M IPs/s")
    print(f"target >= 5M IPs/s with the per-run cache: {_verdict(enrich['cached'] >= 5e6)}")
    policy = policy_rates()
    print(
        f"policy evaluation (compiled packs, {policy['policies']} policies): "
        f"{policy['rate']:,.0f} sessions/s ({policy['per_session_us']:.1f} us/session)"
    )
    return {"enrich": enrich, "policy": policy}


SECTIONS: dict[str, Callable[[argparse.Namespace, Path], Any]] = {
    "ct": lambda a, out: section_cloudtrail(out, parse_size(a.ct_size)),
    "flow": lambda a, out: section_flows(out, parse_size(a.flow_size)),
    "memory": lambda a, out: section_memory(out, [parse_size(s) for s in a.mem_sizes.split(",")]),
    "incremental": lambda a, out: section_incremental(
        out, a.inc_files, parse_size(a.inc_file_size)
    ),
    "micro": lambda a, out: section_micro(a.enrich_n),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--ct-size", default="128MB")
    parser.add_argument("--flow-size", default="128MB")
    parser.add_argument("--mem-sizes", default="64MB,256MB")
    parser.add_argument("--inc-files", type=int, default=10_000)
    parser.add_argument("--inc-file-size", default="48KB", help="JSON per file (incremental)")
    parser.add_argument("--enrich-n", type=int, default=5_000_000)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    print(
        f"chipwarden bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average {load:.2f} at start"
    )
    results = {}
    for name in args.sections.split(","):
        results[name] = SECTIONS[name](args, args.out)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
