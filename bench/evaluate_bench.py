"""Benchmark: ``POST /v1/evaluate`` against ``GET /healthz`` of the same app, on loopback.

    /work/venv/bin/python bench/evaluate_bench.py [--requests 2000] [--concurrency 1,8]

Starts ``chipwarden``'s app under uvicorn in a subprocess (bundled sample config: policies,
builtin geo data, the sample inventory; a fresh SQLite store; log level warning), creates a
viewer token, then for each concurrency level sends ``--requests`` requests to each endpoint
(after a warm-up) over keep-alive httpx connections and reports throughput and p50/p99
latency, plus the evaluate/healthz ratios. The evaluate bodies rotate over D:5, E:1 and
allied source addresses, known and unknown instances, so both decisions and the IP cache
are exercised. Bounded by the request count, loopback only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PEPPER = "bench-pepper-not-a-secret-0123456789"
BODIES: list[dict[str, Any]] = [
    {"source_ip": "1.2.4.8", "provider": "aws", "instance_type": "p5.48xlarge", "principal": "a"},
    {
        "source_ip": "52.94.76.1",
        "provider": "aws",
        "account": "111122223333",
        "instance_id": "i-0a1b2c3d4e5f60001",
        "principal": "b",
    },
    {
        "source_ip": "2.188.21.1",
        "provider": "aws",
        "instance_type": "p4d.24xlarge",
        "method": "ssm-session",
        "principal": "c",
    },
    {"source_ip": "193.99.144.80", "provider": "gateway", "principal": "d"},
    {"source_ip": "10.1.0.5", "provider": "aws", "instance_type": "g6.xlarge", "principal": "e"},
]

SERVER = """
import sys
import uvicorn
from agent.logging import configure_logging
from agent.server.app import create_app
from agent.server.settings import ServerSettings
configure_logging(fmt="json", level="warning")
app = create_app(ServerSettings())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make_token(store_url: str) -> str:
    from agent.review.models import Role
    from agent.review.service import ReviewService
    from agent.store import open_store

    with open_store(store_url) as db:
        service = ReviewService(db, clock=lambda: datetime.now(UTC), pepper=PEPPER)
        token, _ = service.tokens.create(name="bench", role=Role.VIEWER, created_by="bench")
    return token


def _start(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    from agent.cli import sample_config_path

    store = f"sqlite:///{tmp / 'bench.db'}"
    token = _make_token(store)
    port = _free_port()
    env = {
        **os.environ,
        "CHIPWARDEN_CONFIG": str(sample_config_path()),
        "CHIPWARDEN_STORE": store,
        "CHIPWARDEN_TOKEN_PEPPER": PEPPER,
        "CHIPWARDEN_EXPIRY_SWEEP_SECONDS": "0",
    }
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SERVER, str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server died")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base, token
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become ready in 60 s")


async def _run(
    client: httpx.AsyncClient, make: Callable[[int], Any], *, total: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            response = await make(i)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


def _summary(elapsed: float, latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def _bench(base: str, token: str, *, total: int, levels: list[int]) -> None:
    headers = {"authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:
        health = lambda _i: client.get("/healthz")  # noqa: E731
        evaluate = lambda i: client.post("/v1/evaluate", json=BODIES[i % len(BODIES)])  # noqa: E731
        check = await client.post("/v1/evaluate", json=BODIES[0])
        print(f"sample decision for {BODIES[0]['source_ip']}: {check.json()['decision']}")
        for level in levels:
            await _run(client, health, total=min(200, total), concurrency=level)  # warm-up
            await _run(client, evaluate, total=min(200, total), concurrency=level)
            base_stats = _summary(*await _run(client, health, total=total, concurrency=level))
            eval_stats = _summary(*await _run(client, evaluate, total=total, concurrency=level))
            print(f"\nconcurrency {level}, {total} requests each (loopback, keep-alive):")
            print(f"  {'endpoint':<18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
            for name, stats in (("GET /healthz", base_stats), ("POST /v1/evaluate", eval_stats)):
                rps, p50, p99 = stats["rps"], stats["p50_ms"], stats["p99_ms"]
                print(f"  {name:<18}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
            throughput = eval_stats["rps"] / base_stats["rps"]
            print(
                f"  ratio evaluate/healthz: throughput {throughput:.2f}x, "
                f"p50 {eval_stats['p50_ms'] / base_stats['p50_ms']:.2f}x, "
                f"p99 {eval_stats['p99_ms'] / base_stats['p99_ms']:.2f}x"
            )


def main() -> None:
    """Parse arguments, start the server, measure, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x]
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        proc, base, token = _start(Path(tmp))
        try:
            asyncio.run(_bench(base, token, total=args.requests, levels=levels))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
