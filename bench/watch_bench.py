"""Benchmark: ``chipwarden watch`` following an auth.log: lines/s, and append -> stored finding.

    /work/venv/bin/python bench/watch_bench.py [--lines 200000] [--appends 200]
                                               [--follow-interval 0.5] [--gap 0.02]

(a) throughput: ``--lines`` synthetic sshd/syslog lines (2% Accepted, 3% Failed, 2% ends, the
    rest other programs) are followed from the start by ``watch_loop`` (until idle), side by
    side with a whole-file ``run_audit`` of the same file; both evaluate and store everything.
(b) latency: ``watch_loop`` runs in a thread; one Accepted line from a restricted country is
    appended every ``--gap`` seconds; the latency is from the append (flushed) to the moment
    the finding is committed and handed to the notifier hook, p50 / p99 / max.
Everything runs in one process on a SQLite store in a temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from agent.assembly import build_classifier, build_engine, build_plugins
from agent.config import load_config
from agent.contracts import AuditWindow
from agent.enrich import GeoEnricher
from agent.models import AuditRun, Finding
from agent.pipeline import run_audit
from agent.store import open_store
from agent.watch import WatchOptions, watch_loop

ACCOUNT, INSTANCE = "111122223333", "i-0a1b2c3d4e5f60001"
RESTRICTED = ("1.2.4.8", "223.5.5.5", "175.45.176.1", "2.188.21.1")  # CN, CN, KP, IR
ELSEWHERE = ("52.94.76.1", "193.99.144.80", "203.0.113.10", "10.1.0.5")


def _now() -> datetime:
    return datetime.now(UTC)


def write_config(root: Path) -> Path:
    (root / "inventory.csv").write_text(
        "provider,account,region,instance_id,instance_type\n"
        f"aws,{ACCOUNT},us-east-1,{INSTANCE},p5.48xlarge\n"
    )
    config = root / "config.yaml"
    config.write_text(
        f"store: sqlite:///{root / 'bench.db'}\n"
        "inventory: [{path: inventory.csv}]\n"
        "sources:\n"
        "  - type: sshd-log\n"
        "    path: auth.log\n"
        "    year: 2026\n"
        f"    instance: {{provider: aws, account: '{ACCOUNT}', instance_id: {INSTANCE}}}\n"
    )
    return config


def synthetic_lines(n: int, *, seed: int) -> list[str]:
    """A realistic mix: most lines belong to other programs or add to a session."""
    rnd = random.Random(seed)  # noqa: S311 - deterministic synthetic data
    lines, pid = [], 10_000
    for i in range(n):
        second = i // 50
        ts = f"Nov 28 {10 + second // 3600 % 10:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        roll = rnd.random()
        ip = rnd.choice(RESTRICTED if rnd.random() < 0.2 else ELSEWHERE)
        pid += 1
        if roll < 0.02:
            msg = (
                f"sshd[{pid}]: Accepted publickey for u{pid} from {ip} port {pid % 60000 + 1} ssh2"
            )
        elif roll < 0.05:
            msg = f"sshd[{pid}]: Failed password for root from {ip} port {pid % 60000 + 1} ssh2"
        elif roll < 0.07:
            msg = f"sshd[{pid - 40}]: Disconnected from user u{pid - 40} {ip} port 22"
        else:
            msg = f"CRON[{pid}]: pam_unix(cron:session): session closed for user root"
        lines.append(f"{ts} gpu-7 {msg}")
    return lines


def throughput(lines: Sequence[str]) -> tuple[float, float, int]:
    """Seconds for watch (follow from the start) and for a whole-file audit; sessions."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "auth.log").write_text("\n".join(lines) + "\n")
        cfg, doc = load_config(write_config(root))
        engine, classifier = build_engine(cfg, clock=_now), build_classifier(cfg)
        with GeoEnricher.from_config(cfg.geo, base_dir=root) as enricher:
            with open_store(cfg.store) as store:
                start = time.perf_counter()
                run = watch_loop(
                    plugins=build_plugins(cfg, doc=doc, clock=_now),
                    store=store,
                    engine=engine,
                    enricher=enricher,
                    classifier=classifier,
                    clock=_now,
                    stop=threading.Event(),
                    options=WatchOptions(until_idle=True),
                )
                followed = time.perf_counter() - start
            assert run.counts.read == len(lines), run.counts  # noqa: S101 - a benchmark's own sanity check, not input validation
            (root / "bench.db").unlink()
            with open_store(cfg.store) as store:
                start = time.perf_counter()
                run_audit(
                    plugins=build_plugins(cfg, doc=doc, clock=_now),
                    store=store,
                    engine=engine,
                    enricher=enricher,
                    classifier=classifier,
                    window=AuditWindow(since=None, until=None),
                    clock=_now,
                )
                audited = time.perf_counter() - start
    return followed, audited, run.counts.sessions


def latency(*, appends: int, gap: float, follow_interval: float) -> list[float]:
    """Append -> committed-and-notified latency of ``appends`` restricted-country logins."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = root / "auth.log"
        log.write_text("")
        cfg, doc = load_config(write_config(root))
        sent: dict[str, float] = {}
        took: dict[str, float] = {}
        done = threading.Event()

        def hook(_run: AuditRun, findings: list[Finding]) -> None:
            at = time.perf_counter()
            for f in findings:
                user = f.session.principal or ""
                if user in sent and user not in took:
                    took[user] = at - sent[user]
            if len(took) == appends:
                done.set()

        stop = threading.Event()
        with (
            GeoEnricher.from_config(cfg.geo, base_dir=root) as enricher,
            open_store(cfg.store) as store,
        ):
            worker = threading.Thread(
                target=watch_loop,
                kwargs={
                    "plugins": build_plugins(cfg, doc=doc, clock=_now),
                    "store": store,
                    "engine": build_engine(cfg, clock=_now),
                    "enricher": enricher,
                    "classifier": build_classifier(cfg),
                    "clock": _now,
                    "stop": stop,
                    "options": WatchOptions(follow_interval=follow_interval),
                    "after_run": [hook],
                },
            )
            worker.start()
            time.sleep(0.5)
            rnd = random.Random(7)  # noqa: S311 - seeded synthetic log lines, not security
            with log.open("a", encoding="utf-8") as fh:
                for i in range(appends):
                    user = f"lat{i}"
                    fh.write(
                        f"Nov 28 12:00:{i % 60:02d} gpu-7 sshd[{50_000 + i}]: Accepted "
                        f"publickey for {user} from 1.2.4.8 port {1000 + i} ssh2\n"
                    )
                    fh.flush()
                    sent[user] = time.perf_counter()
                    time.sleep(gap * rnd.uniform(0.5, 1.5))
            done.wait(60)
            stop.set()
            worker.join()
    return sorted(took.values())


def _pct(values: Sequence[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main(argv: Sequence[str] | None = None) -> None:
    """Run throughput and latency, print rates, ratio and percentiles."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between appends")
    parser.add_argument("--follow-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    lines = synthetic_lines(args.lines, seed=1)
    followed, audited, sessions = throughput(lines)
    print(f"throughput: {len(lines):,} lines, {sessions:,} session records (with updates)")
    print(f"  watch (follow)     {followed:7.2f} s  {len(lines) / followed:>10,.0f} lines/s")
    print(f"  audit (whole file) {audited:7.2f} s  {len(lines) / audited:>10,.0f} lines/s")
    print(f"  follow / audit time ratio: {followed / audited:.2f}")
    for interval in dict.fromkeys((args.follow_interval, 0.1)):
        took = latency(appends=args.appends, gap=args.gap, follow_interval=interval)
        ms = [t * 1000 for t in took]
        print(
            f"latency append -> stored finding (follow interval {interval:g} s, "
            f"{len(ms)}/{args.appends} appends): p50 {statistics.median(ms):.0f} ms, "
            f"p99 {_pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
        )


if __name__ == "__main__":
    main()
