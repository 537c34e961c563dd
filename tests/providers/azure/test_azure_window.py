"""Read windows and checkpoints of the azure feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from providers.azure.window import next_checkpoint, read_window
from tests.providers.azure.azfixtures import NOW, make_ctx

SCOPE = "azure:bastion:ws"
TEN = timedelta(minutes=10)


def test_without_checkpoint_the_default_lookback_is_read() -> None:
    window = read_window(make_ctx(), SCOPE, now=NOW, overlap=TEN)
    assert (window.start, window.end) == (NOW - timedelta(hours=24), NOW)
    assert window.contains(window.start)  # inclusive when not resuming


def test_resuming_starts_overlap_before_the_checkpoint_and_excludes_its_start() -> None:
    stored = {SCOPE: "2024-05-02T09:00:00+00:00"}
    window = read_window(make_ctx(checkpoints=stored), SCOPE, now=NOW, overlap=TEN)
    assert window.start == datetime(2024, 5, 2, 8, 50, tzinfo=UTC)
    assert not window.contains(window.start)
    assert window.contains(window.start + timedelta(microseconds=1))
    assert not window.contains(NOW + timedelta(seconds=1))


def test_an_explicit_window_wins_over_the_checkpoint() -> None:
    since = datetime(2024, 4, 1, tzinfo=UTC)
    ctx = make_ctx(checkpoints={SCOPE: "2024-05-02T09:00:00+00:00"}, since=since)
    window = read_window(ctx, SCOPE, now=NOW, overlap=TEN)
    assert window.start == since and window.after is None
    assert window.previous == datetime(2024, 5, 2, 9, tzinfo=UTC)


def test_an_unreadable_checkpoint_falls_back_to_the_lookback_and_is_logged() -> None:
    with capture_logs() as logs:
        window = read_window(make_ctx(checkpoints={SCOPE: "garbage"}), SCOPE, now=NOW, overlap=TEN)
    assert window.previous is None and window.start == NOW - timedelta(hours=24)
    assert logs[0]["event"] == "azure_checkpoint_unreadable"


def test_checkpoints_only_move_forward() -> None:
    earlier, later = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
    assert next_checkpoint(earlier, later) == "2024-05-02T00:00:00+00:00"
    assert next_checkpoint(later, earlier) is None
    assert next_checkpoint(later, later) is None
    assert next_checkpoint(None, None) is None
