"""``--shard I/N``: stable, complete and disjoint partitioning of work units."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from agent.errors import UsageError
from agent.sharding import INDEX_ENV, Shard, apply_shard, resolve_shard

UNITS = [
    f"trail|{100000000000 + a}|{r}|2026-11-{d:02d}"
    for a in range(20)
    for r in ("us-east-1", "eu-west-1", "ap-south-1")
    for d in range(1, 8)
]


def test_every_unit_belongs_to_exactly_one_shard() -> None:
    shards = [Shard(i, 4) for i in range(4)]
    owners = Counter(sum(s.owns(u) for s in shards) for u in UNITS)
    assert owners == {1: len(UNITS)}


def test_the_partition_is_balanced_enough_for_hundreds_of_units() -> None:
    sizes = [sum(Shard(i, 4).owns(u) for u in UNITS) for i in range(4)]
    assert min(sizes) > len(UNITS) / 4 * 0.7


def test_the_partition_is_stable_across_processes() -> None:
    # BLAKE2b of the name, not Python's salted hash(): these values never change.
    assert [Shard(i, 3).owns("trail|111122223333|us-east-1|2026-11-24") for i in range(3)] == [
        Shard(i, 3).owns("trail|111122223333|us-east-1|2026-11-24") for i in range(3)
    ]
    assert sum(Shard(i, 3).owns("x") for i in range(3)) == 1


@pytest.mark.parametrize(("text", "shard"), [("0/4", Shard(0, 4)), (" 3 / 4 ", Shard(3, 4))])
def test_shard_specs_parse(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard


@pytest.mark.parametrize("text", ["4/4", "1", "a/b", "-1/4", "0/0"])
def test_bad_shard_specs_are_usage_errors_with_a_hint(text: str) -> None:
    with pytest.raises(UsageError) as err:
        Shard.parse(text)
    assert "I/N" in (err.value.hint or "")


def test_shards_takes_the_index_from_the_indexed_job_environment() -> None:
    assert resolve_shard(shard=None, shards=4, environ={INDEX_ENV: "2"}) == Shard(2, 4)
    assert resolve_shard(shard="1/3", shards=None, environ={}) == Shard(1, 3)
    assert resolve_shard(shard=None, shards=None, environ={INDEX_ENV: "2"}) == Shard(0, 1)


@pytest.mark.parametrize(
    ("shard", "shards", "environ"),
    [("0/2", 2, {}), (None, 4, {}), (None, 4, {INDEX_ENV: "x"}), (None, 4, {INDEX_ENV: "4"})],
)
def test_inconsistent_shard_options_are_usage_errors(
    shard: str | None, shards: int | None, environ: dict[str, str]
) -> None:
    with pytest.raises(UsageError):
        resolve_shard(shard=shard, shards=shards, environ=environ)


class Unitised:
    def __init__(self, name: str) -> None:
        self.name = name
        self.owns: Callable[[str], bool] | None = None

    def select_units(self, owns: Callable[[str], bool]) -> None:
        self.owns = owns


class Whole:
    def __init__(self, name: str) -> None:
        self.name = name


def test_sources_with_units_are_told_which_are_ours_and_others_go_to_one_shard() -> None:
    sources = [Unitised("a"), *(Whole(f"w{i}") for i in range(12))]
    kept = [apply_shard(sources, Shard(i, 3)) for i in range(3)]
    assert all(sources[0] in k for k in kept)
    assert sources[0].owns is not None
    whole = Counter(s.name for k in kept for s in k if isinstance(s, Whole))
    assert whole == {f"w{i}": 1 for i in range(12)}


def test_the_trivial_shard_keeps_everything_untouched() -> None:
    sources = [Unitised("a"), Whole("b")]
    assert apply_shard(sources, Shard()) == sources
    assert sources[0].owns is None
