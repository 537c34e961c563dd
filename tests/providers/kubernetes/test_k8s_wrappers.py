"""Audit events are found inside every wrapper shape they are shipped in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import RecordError
from providers.kubernetes.wrappers import RawEvent, parse_time, unwrap

EVENT = {"kind": "Event", "verb": "create", "objectRef": {"resource": "pods"}, "auditID": "a"}


def _events(record: Any) -> list[tuple[str, RawEvent]]:
    out = []
    for suffix, ev in unwrap(record):
        assert isinstance(ev, RawEvent), ev
        out.append((suffix, ev))
    return out


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_raw_event_is_itself() -> None:
    [(suffix, ev)] = _events(EVENT)
    assert (suffix, ev.dialect, ev.shape, ev.data) == ("", "k8s", "audit.k8s.io/v1", EVENT)


def test_event_list_yields_each_item_with_its_index() -> None:
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [EVENT, EVENT]}
    assert [s for s, _ in _events(body)] == [" items[0]", " items[1]"]


def test_eks_cloudwatch_shapes_unwrap_and_lend_their_timestamp(data_dir: Path) -> None:
    records = _lines(data_dir / "audit" / "eks_cloudwatch.jsonl")
    insights, filtered, subscription = records
    [(_, ev)] = _events(insights)
    assert ev.shape == "eks-cloudwatch"
    assert ev.fallback_time == datetime(2026, 11, 27, 12, 7, 0, 13000, tzinfo=UTC)
    [(_, ev)] = _events(filtered)
    assert ev.fallback_time == datetime(2026, 11, 27, 12, 10, tzinfo=UTC)
    parts = unwrap(subscription)
    assert [s for s, _ in parts] == [" logEvents[0]", " logEvents[1]", " logEvents[2]"]
    assert isinstance(parts[2][1], RecordError)
    assert "message is not JSON" in parts[2][1].message


def test_aks_diagnostic_log_may_be_a_string_or_an_object_and_names_the_cluster(
    data_dir: Path,
) -> None:
    as_string, as_object, event_hub, broken = _lines(data_dir / "audit" / "aks_diagnostic.jsonl")
    for record in (as_string, as_object):
        [(_, ev)] = _events(record)
        assert (ev.dialect, ev.shape, ev.log_cluster) == ("k8s", "aks-diagnostic", "gpu-lab")
    assert [s for s, _ in _events(event_hub)] == [" records[0]", " records[1]"]
    [(_, error)] = unwrap(broken)
    assert isinstance(error, RecordError)
    assert "properties.log is not JSON" in error.message


def test_gke_log_entry_stays_in_its_own_dialect(data_dir: Path) -> None:
    first = _lines(data_dir / "audit" / "gke_cloud_audit.jsonl")[0]
    [(_, ev)] = _events(first)
    assert (ev.dialect, ev.shape, ev.log_cluster) == ("gke", "gke-cloud-audit", "gpu-lab")


@pytest.mark.parametrize(
    "record",
    [{"hello": "world"}, "just a string", 42, {"message": 7}],
)
def test_unknown_shapes_are_record_errors(record: Any) -> None:
    [(_, error)] = unwrap(record)
    assert isinstance(error, RecordError)


def test_unknown_object_error_lists_its_keys() -> None:
    [(_, error)] = unwrap({"zeta": 1, "alpha": 2})
    assert isinstance(error, RecordError)
    assert "keys: alpha, zeta" in error.message


def test_wrappers_nested_without_end_are_cut_off() -> None:
    record: Any = EVENT
    for _ in range(8):
        record = {"message": json.dumps(record)}
    [(_, error)] = unwrap(record)
    assert isinstance(error, RecordError)
    assert "nested too deeply" in error.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-07-13T08:38:41.005864307Z", datetime(2025, 7, 13, 8, 38, 41, 5864, tzinfo=UTC)),
        ("2018-10-26T13:42:46Z", datetime(2018, 10, 26, 13, 42, 46, tzinfo=UTC)),
        ("2026-11-27T14:00:00+02:00", datetime(2026, 11, 27, 12, 0, tzinfo=UTC)),
        ("2026-11-27 12:07:00.013", datetime(2026, 11, 27, 12, 7, 0, 13000, tzinfo=UTC)),
        (1795781400000, datetime(2026, 11, 27, 12, 10, tzinfo=UTC)),
        ("1795781400000", datetime(2026, 11, 27, 12, 10, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_wrapper_format_parse_to_utc(value: Any, expected: datetime) -> None:
    assert parse_time(value, field="t") == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", True, {"a": 1}])
def test_bad_timestamps_name_the_field(value: Any) -> None:
    with pytest.raises(RecordError, match="requestReceivedTimestamp"):
        parse_time(value, field="requestReceivedTimestamp")
