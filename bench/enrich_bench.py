"""Benchmark: naive per-IP geolocation vs GeoEnricher.lookup batch (builtin country).

    /work/venv/bin/python bench/enrich_bench.py [--n 1000000] [--repeat-share 0.5] [--rounds 3]

(a) naive: for each IP, ``ipaddress.ip_address`` + ``is_global`` + ``iptocc.country_code(ip)``,
    building the same ``IpIntel`` per input that the enricher returns (same output contract).
(a0) the same loop without building models (countries only), to show what the models cost.
(b) batch: ``GeoEnricher().lookup(ips)`` (classify, dedupe, one iptocc call, IpIntel models).
(c) floor: one ``iptocc.country_code(list)`` call over the same list, no classification/models.
Each is timed ``--rounds`` times in this one process; the best round is reported.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version

import iptocc
import structlog

from agent.enrich import GeoEnricher
from agent.enrich.ipkind import PUBLIC_IPV4_FAST
from agent.models import IpIntel, IpKind


def synthetic_public_ips(n: int, *, repeat_share: float, seed: int) -> list[str]:
    """``n`` public IPv4 strings of which ``repeat_share`` are repeats of earlier ones."""
    rnd = random.Random(seed)  # noqa: S311 - deterministic synthetic data, not security
    unique_target = max(1, round(n * (1.0 - repeat_share)))
    unique: set[str] = set()
    while len(unique) < unique_target:
        candidate = (
            f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}."
            f"{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
        )
        if PUBLIC_IPV4_FAST.fullmatch(candidate):
            unique.add(candidate)
    pool = sorted(unique)
    ips = pool + [rnd.choice(pool) for _ in range(n - len(pool))]
    rnd.shuffle(ips)
    return ips


def naive(ips: Sequence[str]) -> list[str | None]:
    """Per-IP parse, global check, single-address iptocc call and one IpIntel per input."""
    source = f"iptocc {version('iptocc')} (RIR registry country)"
    out: list[IpIntel] = []
    for ip in ips:
        address = ipaddress.ip_address(ip)
        public = address.is_global
        country = iptocc.country_code(ip) if public else None
        out.append(
            IpIntel(
                ip=ip,
                kind=IpKind.PUBLIC if public else IpKind.RESERVED,
                normalized=str(address),
                country=country,
                sources=(source,) if public else (),
                unknown_reason=None if country else "no registry country for this address",
            )
        )
    return [intel.country for intel in out]


def naive_countries_only(ips: Sequence[str]) -> list[str | None]:
    """Per-IP parse, global check and single-address iptocc call; no models."""
    out: list[str | None] = []
    for ip in ips:
        address = ipaddress.ip_address(ip)
        out.append(iptocc.country_code(ip) if address.is_global else None)
    return out


def batch(ips: Sequence[str]) -> list[str | None]:
    """A fresh GeoEnricher (empty cache) resolving the whole list in one call."""
    with GeoEnricher() as enricher:
        return [intel.country for intel in enricher.lookup(ips)]


def floor(ips: Sequence[str]) -> list[str | None]:
    """The embedded registry alone: one batch call, no classification, no models."""
    return iptocc.country_code(list(ips))


def best_of(
    rounds: int, fn: Callable[[Sequence[str]], list[str | None]], ips: Sequence[str]
) -> tuple[float, list[str | None]]:
    """Best wall time over ``rounds`` runs, and the last result."""
    best = float("inf")
    result: list[str | None] = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(ips)
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the three variants side by side, print rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat-share", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240514)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    ips = synthetic_public_ips(args.n, repeat_share=args.repeat_share, seed=args.seed)
    print(
        f"{len(ips):,} public IPv4 addresses, {len(set(ips)):,} distinct, "
        f"best of {args.rounds} rounds"
    )
    t_naive, r_naive = best_of(args.rounds, naive, ips)
    t_bare, r_bare = best_of(args.rounds, naive_countries_only, ips)
    t_batch, r_batch = best_of(args.rounds, batch, ips)
    t_floor, r_floor = best_of(args.rounds, floor, ips)
    if not r_naive == r_bare == r_batch == r_floor:
        raise SystemExit("results differ between variants")
    for label, seconds in (
        ("(a) naive per-IP loop", t_naive),
        ("(a0) naive loop, no models", t_bare),
        ("(b) GeoEnricher.lookup batch", t_batch),
        ("(c) iptocc batch alone (floor)", t_floor),
    ):
        print(f"{label:<32} {seconds:8.3f} s  {len(ips) / seconds:>14,.0f} IPs/s")
    print(
        f"batch speed-up: {t_naive / t_batch:.1f}x over (a), {t_bare / t_batch:.1f}x over (a0); "
        f"batch cost over the floor: {t_batch / t_floor:.1f}x"
    )


if __name__ == "__main__":
    main()
