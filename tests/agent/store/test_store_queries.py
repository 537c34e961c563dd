"""list_findings / count_findings / get_finding: filters, order, paging, round trips."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from agent.models import Finding, FindingStatus, Session, Severity
from agent.store import SqlStore

SessionFactory = Callable[..., Session]
FindingFactory = Callable[..., Finding]


HOUR = timedelta(hours=1)


@pytest.fixture
def catalogue(
    store: SqlStore, make_session: SessionFactory, make_finding: FindingFactory
) -> dict[str, Finding]:
    """Six findings that differ in one dimension each, committed over two runs."""
    t0 = make_finding().last_seen
    items = {
        "base": make_finding(make_session("base")),
        "critical": make_finding(make_session("critical"), severity=Severity.CRITICAL),
        "low-ru": make_finding(make_session("low-ru"), severity=Severity.LOW, country="RU"),
        "other-policy": make_finding(make_session("other-policy"), policy_id="hygiene/tor-exit"),
        "gcp": make_finding(
            make_session("gcp", provider="gcp", account="proj-1"), last_seen=t0 + HOUR
        ),
        "other-account": make_finding(
            make_session("other-account", account="444455556666"), last_seen=t0 + 2 * HOUR
        ),
    }
    run1 = [items[k] for k in ("base", "critical", "low-ru")]
    run2 = [items[k] for k in ("other-policy", "gcp", "other-account")]
    store.commit_batch(findings=run1, sessions=[], checkpoint=None, run_id="run-1")
    store.commit_batch(findings=run2, sessions=[], checkpoint=None, run_id="run-2")
    store.set_finding_status(items["base"].id, status=FindingStatus.RESOLVED)
    return items


def _keys(findings: list[Finding]) -> set[str]:
    return {f.session.key for f in findings}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, {"base", "critical", "low-ru", "other-policy", "gcp", "other-account"}),
        ({"status": FindingStatus.RESOLVED}, {"base"}),
        ({"status": "open"}, {"critical", "low-ru", "other-policy", "gcp", "other-account"}),
        ({"min_severity": Severity.CRITICAL}, {"critical"}),
        (
            {"min_severity": "high"},
            {"base", "critical", "other-policy", "gcp", "other-account"},
        ),
        ({"policy_id": "hygiene/tor-exit"}, {"other-policy"}),
        ({"run_id": "run-1"}, {"base", "critical", "low-ru"}),
        ({"provider": "gcp"}, {"gcp"}),
        ({"account": "444455556666"}, {"other-account"}),
        ({"country": "RU"}, {"low-ru"}),
        (
            {"country": "CN", "run_id": "run-2", "provider": "aws"},
            {"other-policy", "other-account"},
        ),
        ({"country": "KP"}, set()),
    ],
)
def test_filters_select_exactly_the_matching_findings(
    store: SqlStore, catalogue: dict[str, Finding], filters: dict[str, Any], expected: set[str]
) -> None:
    assert _keys(store.list_findings(**filters)) == expected
    assert store.count_findings(**filters) == len(expected)


def test_findings_are_ordered_by_severity_then_most_recent(
    store: SqlStore, catalogue: dict[str, Finding]
) -> None:
    keys = [f.session.key for f in store.list_findings()]

    assert keys[0] == "critical"
    assert keys[-1] == "low-ru"
    # Same severity (high): the latest last_seen first.
    assert keys[1:3] == ["other-account", "gcp"]


def test_limit_and_offset_page_through_the_same_order(
    store: SqlStore, catalogue: dict[str, Finding]
) -> None:
    everything = store.list_findings()

    pages = [store.list_findings(limit=4, offset=0), store.list_findings(limit=4, offset=4)]

    assert [len(p) for p in pages] == [4, 2]
    assert pages[0] + pages[1] == everything


def test_a_stored_finding_reads_back_equal_to_the_one_committed(
    store: SqlStore, make_finding: FindingFactory
) -> None:
    finding = make_finding(extra={"note": "x"}, indeterminate=True, run_id="r-7")
    store.commit_batch(findings=[finding], sessions=[], checkpoint=None, run_id="r-7")

    assert store.get_finding(finding.id) == finding


def test_unknown_ids_read_as_none_and_cannot_be_reviewed(store: SqlStore) -> None:
    assert store.get_finding("no-such-id") is None
    assert store.set_finding_status("no-such-id", status=FindingStatus.RESOLVED) is False


def test_an_unknown_filter_value_is_rejected(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="sev"):
        store.list_findings(min_severity="sev")
