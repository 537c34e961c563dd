"""In-process micro benchmarks: IP enrichment with the per-run cache, and compiled policy
evaluation. Used by ``bench.run`` (section ``micro``); no timed assertions anywhere."""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.enrich import GeoEnricher
from agent.models import (
    Accelerator,
    AccessMethod,
    EvaluationInput,
    GpuInstance,
    Session,
)
from bench.common import IpPools

__all__ = ["enrich_rates", "policy_rates"]


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _best(rounds: int, work: Any) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def enrich_rates(*, n: int = 5_000_000, distinct: int = 50_000, batch: int = 10_000) -> dict:
    """IPs/s of ``GeoEnricher.lookup``: cold (every IP new), then ``n`` lookups over
    ``distinct`` addresses in pipeline-sized batches with the enricher's per-run cache."""
    _quiet()
    rnd = random.Random(3)  # noqa: S311 - synthetic data
    pools = IpPools(rnd, sample=max(distinct * 2, 60_000))
    pool = [pools.session_ip() for _ in range(distinct)]
    ips = [rnd.choice(pool) for _ in range(n)]
    batches = [ips[i : i + batch] for i in range(0, n, batch)]
    unique = list(dict.fromkeys(pool))

    def cold() -> None:
        with GeoEnricher() as enricher:
            enricher.lookup(unique)

    def cached() -> None:
        with GeoEnricher() as enricher:
            for chunk in batches:
                enricher.lookup(chunk)

    def one_batch() -> None:
        with GeoEnricher() as enricher:
            enricher.lookup(ips)

    t_cold = _best(2, cold)
    t_cached = _best(2, cached)
    t_one = _best(2, one_batch)
    rates = {
        f"cold: {len(unique):,} distinct IPs, one batch (classify+registry+models)": len(unique)
        / t_cold,
        f"per-run cache: {n:,} lookups, batches of {batch:,}, {len(unique):,} distinct": n
        / t_cached,
        f"one batch of {n:,} lookups": n / t_one,
    }
    return {"rates": rates, "cached": n / t_cached}


def policy_rates(*, n: int = 20_000) -> dict:
    """Sessions/s through the compiled bundled packs (export controls)."""
    _quiet()
    from agent.assembly import build_classifier, build_engine
    from agent.config import AppConfig

    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    config = AppConfig()
    engine = build_engine(config, clock=lambda: now)
    classifier = build_classifier(config)
    rnd = random.Random(4)  # noqa: S311 - seeded synthetic benchmark data, not security
    pools = IpPools(rnd)
    with GeoEnricher() as enricher:
        intel = enricher.lookup([pools.session_ip() for _ in range(n)])
    models = ("nvidia-h100", "nvidia-a100", "nvidia-l4", "nvidia-t4")
    classes = {m: classifier.classify(m) for m in models}
    items = []
    for i, ip in enumerate(intel):
        model = models[i % len(models)]
        instance = GpuInstance(
            provider="aws",
            account="111122223333",
            region="us-east-1",
            instance_id=f"i-{i:017x}",
            instance_type="p5.48xlarge",
            accelerators=(Accelerator(model=model, count=8),),
        )
        session = Session(
            key=f"evt-{i}",
            provider="aws",
            source="bench",
            account="111122223333",
            region="us-east-1",
            instance_id=instance.instance_id,
            source_ip=ip.ip,
            method=AccessMethod.SSM_SESSION,
            started_at=now,
        )
        items.append(EvaluationInput(session=session, instance=instance, intel=ip, classes=classes))
    seconds = _best(3, lambda: [engine.evaluate(item) for item in items])
    return {
        "rate": n / seconds,
        "per_session_us": seconds / n * 1e6,
        "policies": len(engine.describe()),
    }
