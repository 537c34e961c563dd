"""The enricher's per-run cache: a batch it has seen whole is answered without re-resolving,
with the very same answers, in input order."""

from __future__ import annotations

from agent.enrich import GeoEnricher
from agent.models import IpKind

IPS = ["1.2.4.8", None, "10.0.0.1", "8.8.8.8", "1.2.4.8", "not an ip", "2001:db8::1"]


def test_a_fully_cached_batch_returns_the_first_answers_in_order() -> None:
    with GeoEnricher() as enricher:
        first = enricher.lookup(IPS)
        again = enricher.lookup(list(reversed(IPS)))
    assert again == list(reversed(first))
    assert all(a is b for a, b in zip(again, reversed(first), strict=True))
    assert [i.kind for i in first[:3]] == [IpKind.PUBLIC, IpKind.MISSING, IpKind.PRIVATE]


def test_a_batch_with_one_new_address_resolves_it_and_keeps_the_rest() -> None:
    with GeoEnricher() as enricher:
        first = enricher.lookup(IPS)
        mixed = enricher.lookup([*IPS, "9.9.9.9"])
    assert mixed[:-1] == first
    assert mixed[-1].ip == "9.9.9.9" and mixed[-1].kind is IpKind.PUBLIC


def test_without_a_cache_every_batch_is_resolved_afresh() -> None:
    with GeoEnricher(cache_size=0) as enricher:
        first = enricher.lookup(IPS)
        again = enricher.lookup(IPS)
    assert again == first
    assert enricher.cache_len() == 0
