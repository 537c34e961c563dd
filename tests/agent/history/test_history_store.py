"""Principal history in the store: bounded, idempotent, fed into evaluation context."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.history import HistoryContext, HistorySettings, HistoryStore, Visit
from agent.models import (
    AccessMethod,
    EvaluationInput,
    IpIntel,
    IpKind,
    Outcome,
    Session,
)
from agent.store import SqlStore, open_store

T0 = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    with open_store(f"sqlite:///{tmp_path / 'h.db'}") as opened:
        yield opened


def item(
    key: str,
    *,
    at: datetime,
    country: str = "US",
    principal: str | None = "alice",
    outcome: Outcome = Outcome.SUCCESS,
    kind: IpKind = IpKind.PUBLIC,
) -> EvaluationInput:
    session = Session(
        key=key,
        provider="aws",
        source="test",
        account="111122223333",
        principal=principal,
        source_ip="198.51.100.9",
        method=AccessMethod.SSM_SESSION,
        outcome=outcome,
        started_at=at,
    )
    intel = IpIntel(ip="198.51.100.9", kind=kind, normalized="198.51.100.9", country=country)
    return EvaluationInput(session=session, instance=None, intel=intel)


def visit(n: int, at: datetime) -> Visit:
    return Visit("alice", f"s{n}", at, "aws", None, "US", None)


def test_the_store_keeps_only_the_last_n_visits_per_principal(store: SqlStore) -> None:
    history = HistoryStore(store.engine, keep=3)

    history.record([visit(n, T0 + timedelta(hours=n)) for n in range(5)])
    history.record([Visit("bob", "b1", T0, "aws", None, "DE", None)])

    kept = history.recent(["alice", "bob", "carol"])
    assert [v.session_id for v in kept["alice"]] == ["s2", "s3", "s4"]
    assert [v.session_id for v in kept["bob"]] == ["b1"]
    assert kept["carol"] == []


def test_recording_the_same_visit_twice_is_a_no_op(store: SqlStore) -> None:
    history = HistoryStore(store.engine, keep=10)

    history.record([visit(1, T0)])
    history.record([visit(1, T0)])

    assert history.count("alice") == 1


def test_context_flags_travel_within_one_batch_and_remembers_successes(store: SqlStore) -> None:
    history = HistoryStore(store.engine, keep=10)
    provider = HistoryContext(store=history, settings=HistorySettings(keep=10))
    batch = [
        item("b", at=T0 + timedelta(hours=2), country="DE"),
        item("a", at=T0),
        item("c", at=T0 + timedelta(hours=3), country="DE", outcome=Outcome.FAILED),
        item("d", at=T0, principal=None),
        item("e", at=T0, kind=IpKind.PRIVATE, country="US"),
    ]

    out = provider.contexts(batch)

    assert out[0]["history.impossible_travel"] == "true"
    assert out[1]["history.first_session"] == "true"
    assert out[2]["history.new_country"] == "false"  # DE was seen an hour earlier
    assert out[3] == out[4] == {}
    assert history.count("alice") == 2  # the failed attempt is judged but not remembered


def test_a_later_batch_sees_what_earlier_batches_recorded(store: SqlStore) -> None:
    provider = HistoryContext(store=HistoryStore(store.engine, keep=10))

    provider.contexts([item("a", at=T0)])
    [later] = provider.contexts([item("b", at=T0 + timedelta(days=1), country="FR")])

    assert later["history.new_country"] == "true"
    assert "first session from FR" in later["history.reasons"]


def test_read_only_context_writes_nothing(store: SqlStore) -> None:
    history = HistoryStore(store.engine, keep=10)
    provider = HistoryContext(store=history, record=False)

    provider.contexts([item("a", at=T0)])

    assert history.count("alice") == 0


def test_rerunning_a_batch_gives_the_same_facts(store: SqlStore) -> None:
    provider = HistoryContext(store=HistoryStore(store.engine, keep=10))
    batch = [item("a", at=T0), item("b", at=T0 + timedelta(hours=2), country="JP")]

    first = provider.contexts(batch)
    again = provider.contexts(batch)

    assert first == again


def test_a_rerun_judges_a_session_by_the_history_it_was_first_judged_by(store: SqlStore) -> None:
    provider = HistoryContext(store=HistoryStore(store.engine, keep=10))
    later_from_japan = [item("b", at=T0 + timedelta(hours=2), country="JP")]
    earlier_from_us = [item("a", at=T0)]  # another source, read after the first

    [first] = provider.contexts(later_from_japan)
    provider.contexts(earlier_from_us)
    [again] = provider.contexts(later_from_japan)  # crash recovery re-reads the first source

    assert first["history.first_session"] == "true"
    assert again == first  # not "impossible travel US -> JP", which the first run never saw


def test_a_new_session_is_judged_by_everything_recorded_before_it(store: SqlStore) -> None:
    provider = HistoryContext(store=HistoryStore(store.engine, keep=10))
    provider.contexts([item("b", at=T0 + timedelta(hours=2), country="JP")])
    provider.contexts([item("a", at=T0)])

    [new] = provider.contexts([item("c", at=T0 + timedelta(hours=3), country="US")])

    assert new["history.impossible_travel"] == "true"  # JP at +2 h, then US at +3 h


def test_an_earlier_session_read_after_a_later_one_is_judged_as_travel_with_it(
    store: SqlStore,
) -> None:
    provider = HistoryContext(store=HistoryStore(store.engine, keep=10))
    [later] = provider.contexts([item("b", at=T0 + timedelta(hours=2), country="JP")])
    [earlier] = provider.contexts([item("a", at=T0)])  # another source, read second

    assert later["history.impossible_travel"] == "false"  # nothing known when judged
    assert earlier["history.impossible_travel"] == "true"  # the pair is judged once, here
    assert "from US at 2026-06-01 14:00Z, then from JP 2.0 h later" in earlier["history.reasons"]
    assert provider.contexts([item("a", at=T0)]) == [earlier]  # and a rerun agrees


def test_a_later_session_of_the_same_batch_is_judged_on_the_later_one_only(
    store: SqlStore,
) -> None:
    provider = HistoryContext(store=HistoryStore(store.engine, keep=10))

    earlier, later = provider.contexts(
        [item("a", at=T0), item("b", at=T0 + timedelta(hours=2), country="JP")]
    )

    assert (earlier["history.impossible_travel"], later["history.impossible_travel"]) == (
        "false",
        "true",
    )
