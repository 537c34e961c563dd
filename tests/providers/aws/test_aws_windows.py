"""Which days and time ranges a unit reads, S3 key layout helpers, fan-out and batching."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from agent.contracts import AuditWindow, CollectContext
from agent.models import AccessMethod, Session
from providers.aws.fanout import Unit, fan_out, to_batches
from providers.aws.windows import (
    LogCursor,
    day_prefix,
    delivered_in,
    flow_log_id,
    key_time,
    plan_days,
    time_range,
)

from .conftest import NOW, make_ctx

SCHEDULED = AuditWindow(since=None, until=None)
KEY = "t/AWSLogs/o-abc/111122223333/CloudTrail/eu-west-1/2026/03/02/111122223333_CloudTrail_eu-west-1_20260302T1155Z_Ab1.json.gz"  # noqa: E501


def test_day_prefixes_follow_the_trail_and_flow_log_layouts() -> None:
    day = date(2026, 3, 2)
    assert (
        day_prefix(
            prefix="t",
            account="111122223333",
            service="CloudTrail",
            region="eu-west-1",
            day=day,
            organization_id="o-abc",
        )
        == KEY.rsplit("/", 1)[0] + "/"
    )
    assert day_prefix(prefix="", account="1", service="vpcflowlogs", region="r", day=day) == (
        "AWSLogs/1/vpcflowlogs/r/2026/03/02/"
    )
    assert key_time(KEY) == datetime(2026, 3, 2, 11, 55, tzinfo=UTC)
    assert key_time("AWSLogs/x/readme.txt") is None
    assert (
        flow_log_id("a/1_vpcflowlogs_us-east-1_fl-0abc123_20260302T1155Z_h.log.gz") == "fl-0abc123"
    )


def test_scheduled_runs_list_the_lookback_days_or_resume_from_the_last_day_reached() -> None:
    assert plan_days(window=SCHEDULED, now=NOW, marker=None, max_catchup_days=14) == [
        date(2026, 3, 1),
        date(2026, 3, 2),
    ]
    resumed = plan_days(window=SCHEDULED, now=NOW, marker="2026-02-26", max_catchup_days=14)
    assert resumed[0] == date(2026, 2, 26) and resumed[-1] == date(2026, 3, 2)
    capped = plan_days(window=SCHEDULED, now=NOW, marker="2025-01-01", max_catchup_days=3)
    assert capped[0] == date(2026, 2, 27)


def test_an_explicit_window_lists_exactly_the_days_it_overlaps() -> None:
    window = AuditWindow(
        since=NOW - timedelta(days=3), until=NOW - timedelta(days=1), explicit=True
    )
    assert plan_days(window=window, now=NOW, marker="2020-01-01", max_catchup_days=14) == [
        date(2026, 2, 27),
        date(2026, 2, 28),
        date(2026, 3, 1),
    ]
    assert delivered_in(
        KEY, AuditWindow(since=NOW - timedelta(hours=1), until=None, explicit=True), NOW
    )
    assert not delivered_in(KEY, AuditWindow(since=NOW, until=None, explicit=True), NOW)


def test_time_ranges_resume_with_overlap_and_explicit_windows_protect_the_checkpoint() -> None:
    saved = NOW - timedelta(hours=2)
    span = time_range(window=SCHEDULED, now=NOW, saved=saved, overlap=timedelta(minutes=15))
    assert (span.start, span.end, span.writes_checkpoint) == (
        saved - timedelta(minutes=15),
        NOW,
        True,
    )
    later = AuditWindow(since=NOW - timedelta(hours=1), until=NOW, explicit=True)
    assert not time_range(
        window=later, now=NOW, saved=saved, overlap=timedelta(0)
    ).writes_checkpoint
    earlier = AuditWindow(since=NOW - timedelta(hours=5), until=NOW, explicit=True)
    assert time_range(window=earlier, now=NOW, saved=saved, overlap=timedelta(0)).writes_checkpoint


def test_log_cursors_remember_the_events_at_their_timestamp() -> None:
    cursor = LogCursor(100, frozenset({"s/1"})).advance(100, "s/2").advance(90, "s/0")
    assert LogCursor.decode(cursor.encode()) == LogCursor(100, frozenset({"s/1", "s/2"}))
    assert cursor.skips(100, "s/2") and not cursor.skips(100, "s/3") and cursor.skips(99, "x")
    assert cursor.advance(101, "s/9") == LogCursor(101, frozenset({"s/9"}))
    assert LogCursor.decode("nonsense") is None


# ----------------------------------------------------------------------------- fan-out


def test_fan_out_runs_units_in_parallel_and_reports_in_submission_order() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def work(n: int):  # type: ignore[no-untyped-def]
        def run(local: CollectContext) -> int:
            barrier.wait()  # all three must be running at once, or this times out
            local.count_read(n)
            local.quarantine(source="s", locator=f"u{n}", position=None, reason="bad")
            return n * 10

        return run

    ctx = make_ctx()
    seen = []
    units = [Unit(label=f"u{n}", run=work(n)) for n in (1, 2, 3)]
    for unit, result in fan_out(units, ctx=ctx, max_workers=3, source="s"):
        seen.append((unit.label, result, ctx.read))
    assert seen == [("u1", 10, 1), ("u2", 20, 3), ("u3", 30, 6)]
    assert [q.locator for q in ctx.quarantined] == ["u1", "u2", "u3"]


def test_a_unit_that_crashes_is_a_scope_error_and_the_others_deliver() -> None:
    def boom(_local: CollectContext) -> int:
        raise KeyError("nope")

    ctx = make_ctx()
    units = [Unit("bad", boom), Unit("good", lambda _l: 1)]
    got = [(u.label, r) for u, r in fan_out(units, ctx=ctx, max_workers=2, source="aws")]
    assert got == [("bad", None), ("good", 1)]
    (error,) = ctx.scope_errors
    assert (error.scope, error.code) == ("bad", "internal_error")


def _session(key: str) -> Session:
    return Session(
        key=key, provider="aws", source="aws", method=AccessMethod.SSM_SESSION, started_at=NOW
    )


def test_batches_carry_each_day_and_its_checkpoints_after_its_sessions() -> None:
    batches = to_batches(
        "aws:1/r",
        [("d1", _session("a")), ("d2", _session("b")), ("d1", _session("c"))],
        [("d1", "s1", "k1"), ("d2", "s2", "k2"), ("d2", "marker", "d2")],
    )
    assert [(b.unit, [s.key for s in b.sessions], b.checkpoint_scope) for b in batches] == [
        ("aws:1/r/d1", ["a", "c"], "s1"),
        ("aws:1/r/d2", ["b"], "s2"),
        ("aws:1/r/d2", [], "marker"),
    ]
    assert [b.unit for b in to_batches("aws:1/r", [], [])] == ["aws:1/r"]


@pytest.mark.parametrize("value", ["", "2026-13-01"])
def test_an_unreadable_marker_falls_back_to_the_lookback(value: str) -> None:
    assert plan_days(window=SCHEDULED, now=NOW, marker=value, max_catchup_days=14)[0] == date(
        2026, 3, 1
    )
