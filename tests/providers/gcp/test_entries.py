"""Timestamps, cursors and checkpoint values of Cloud Logging entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.errors import RecordError
from agent.models import Outcome
from providers.gcp.entries import (
    Cursor,
    entry_cursor,
    format_timestamp,
    outcome_from_status,
    parse_timestamp,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("2020-09-30T09:35:39.102788424Z", "2020-09-30T09:35:39.102788424Z"),
        ("2021-11-10T06:54:56.704058Z", "2021-11-10T06:54:56.704058000Z"),
        ("2026-03-01T13:00:00Z", "2026-03-01T13:00:00.000000000Z"),
        ("2025-05-27 16:46:46.485356507", "2025-05-27T16:46:46.485356507Z"),
        ("2026-03-01T14:00:00.5+02:00", "2026-03-01T12:00:00.500000000Z"),
    ],
)
def test_timestamps_normalise_to_nanosecond_utc(raw: str, canonical: str) -> None:
    assert parse_timestamp(raw)[1] == canonical


def test_parsed_datetimes_are_utc_with_microsecond_precision() -> None:
    when, _ = parse_timestamp("2020-09-30T09:35:39.102788424Z")
    assert when == datetime(2020, 9, 30, 9, 35, 39, 102788, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["yesterday", "2020-13-40T00:00:00Z", "", None, 5])
def test_invalid_timestamps_are_record_errors(raw: object) -> None:
    with pytest.raises(RecordError):
        parse_timestamp(raw)


def test_cursors_order_by_nanoseconds_then_insert_id() -> None:
    a = entry_cursor({"timestamp": "2026-03-01T10:00:00.000000001Z", "insertId": "b"})
    b = entry_cursor({"timestamp": "2026-03-01T10:00:00.000000002Z", "insertId": "a"})
    c = entry_cursor({"timestamp": "2026-03-01T10:00:00.000000002Z", "insertId": "b"})
    assert a < b < c


def test_checkpoint_values_round_trip_and_garbage_means_no_checkpoint() -> None:
    cursor = Cursor("2026-03-01T10:00:00.000000001Z", "iap-0001")
    assert cursor.serialize() == "2026-03-01T10:00:00.000000001Z|iap-0001"
    assert Cursor.parse(cursor.serialize()) == cursor
    assert Cursor.parse("2026-03-01T10:00:00Z|x|y") == Cursor(
        "2026-03-01T10:00:00.000000000Z", "x|y"
    )
    assert Cursor.parse(None) is None
    assert Cursor.parse("no-separator") is None
    assert Cursor.parse("not-a-time|x") is None


def test_format_timestamp_pads_to_nanoseconds() -> None:
    assert format_timestamp(datetime(2026, 3, 1, 10, 0, 0, 5, tzinfo=UTC)) == (
        "2026-03-01T10:00:00.000005000Z"
    )


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({}, Outcome.SUCCESS),
        ({"code": 0}, Outcome.SUCCESS),
        ({"code": 7}, Outcome.DENIED),
        ({"code": 16}, Outcome.DENIED),
        ({"code": 13}, Outcome.FAILED),
        ({"code": "x"}, Outcome.FAILED),
    ],
)
def test_status_codes_map_to_outcomes(status: dict[str, object], outcome: Outcome) -> None:
    assert outcome_from_status({"status": status}) is outcome
