"""Azure logs under hostile input: Bastion and sign-in rows/records, Activity Log events,
NSG / VNet flow-log blobs and tuples."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.errors import RecordError
from providers.azure.activity import activity_sessions
from providers.azure.flows import iter_records, parse_tuple, record_tuples
from providers.azure.logs import (
    bastion_from_record,
    bastion_from_row,
    signin_from_row,
    signin_row_from_record,
)
from providers.azure.normalize import parse_time
from tests.fuzz.hostile import (
    FUZZ,
    NASTY_JSON,
    NASTY_STRINGS,
    check,
    hostile_values,
    mutated,
    texts,
)
from tests.fuzz.seeds import DATA, json_records


def _table_rows(name: str) -> list[dict[str, Any]]:
    table = json.loads((DATA / "azure" / name).read_text())["tables"][0]
    columns = [c["name"] for c in table["columns"]]
    return [dict(zip(columns, row, strict=True)) for row in table["rows"]]


BASTION_ROWS = _table_rows("la_bastion_audit_logs.json")
SIGNIN_ROWS = _table_rows("la_signin_logs.json")
BASTION_RECORDS = json_records("azure/azure-docs__bastion__monitor-bastion__*.json")
SIGNIN_RECORDS = [r["log"] for r in json_records("azure/panther-analysis__azure_signin_*.jsonl")]
ACTIVITY = json_records("azure/activity_log_events.json", key="value")
FLOW_RECORDS = json_records(
    "azure/nsg_flow_v2_gpu.json",
    "azure/vnet_flow_gpu.json",
    "azure/azure-docs__*flow-logs*.json*",
    key="records",
)


@FUZZ
@given(
    st.one_of(st.sampled_from(BASTION_ROWS).flatmap(mutated), hostile_values),
    st.one_of(st.sampled_from(BASTION_RECORDS).flatmap(mutated), hostile_values),
)
def test_hostile_bastion_rows_and_records_are_sessions_or_record_errors(row: Any, rec: Any) -> None:
    check("azure.bastion", lambda: bastion_from_row(row, source="azure", workspace_id="w"))
    check(
        "azure.bastion",
        lambda: bastion_from_record(rec, source="azure", locator="b", position="record 0"),
    )


objects = st.dictionaries(texts, hostile_values, max_size=6)
"""Feeds only pass JSON objects on (``iter_records`` turns anything else into RecordError)."""


def _signin(record: Any) -> Any:
    return signin_from_row(signin_row_from_record(record), source="azure", workspace_id="w")


@FUZZ
@given(
    st.one_of(st.sampled_from(SIGNIN_ROWS).flatmap(mutated), hostile_values),
    st.one_of(st.sampled_from(SIGNIN_RECORDS).flatmap(mutated), objects),
)
def test_hostile_sign_in_rows_and_records_are_sessions_none_or_record_errors(
    row: Any, rec: Any
) -> None:
    check("azure.signin", lambda: signin_from_row(row, source="azure", workspace_id="w"))
    check("azure.signin", lambda: _signin(rec))


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(ACTIVITY).flatmap(mutated), hostile_values), max_size=6))
def test_hostile_activity_events_fold_into_sessions_ignored_or_quarantined(
    events: list[Any],
) -> None:
    pairs = [(f"event {i}", e) for i, e in enumerate(events)]
    result = check(
        "azure.activity", lambda: activity_sessions(pairs, source="azure", subscription_id="s")
    )
    if result is not None:
        assert result.ignored + len(result.quarantined) + len(result.sessions) <= len(events) * 2


def _flows(data: bytes) -> int:
    """What the flow-log feed does with a blob: records -> tuples -> parsed flows."""
    parsed = 0
    for position, record in iter_records(data):
        if isinstance(record, RecordError):
            continue
        for raw in list(record_tuples(record, position=position)):
            try:
                parse_tuple(raw.text, layout=raw.layout)
                parsed += 1
            except RecordError:
                continue
    return parsed


blobs = st.one_of(
    st.lists(st.sampled_from(FLOW_RECORDS).flatmap(mutated), max_size=3).map(
        lambda rs: json.dumps({"records": rs}).encode()
    ),
    st.sampled_from(FLOW_RECORDS).flatmap(mutated).map(lambda r: json.dumps(r).encode()),
    st.sampled_from(NASTY_JSON),
    st.binary(max_size=200),
)


@FUZZ
@given(blobs)
def test_a_hostile_flow_log_blob_is_flows_or_record_errors(data: bytes) -> None:
    check("azure.flows", lambda: _flows(data))


TUPLES = (
    "1542110377,10.0.0.4,13.67.143.118,44931,443,T,O,A",
    "1542110377,94.102.49.190,10.0.0.4,28746,22,T,I,A,B,,,,",
    "1663146003599,10.0.0.6,192.168.1.4,23956,3389,6,O,B,NX,0,0,0,0",
)
field = st.one_of(st.sampled_from([s for s in NASTY_STRINGS if len(s) < 6000]), st.text(max_size=8))


@st.composite
def tuples(draw: st.DrawFn) -> str:
    parts = draw(st.sampled_from(TUPLES)).split(",")
    for i in draw(st.lists(st.integers(0, len(parts) - 1), max_size=3)):
        parts[i] = draw(field)
    return ",".join(parts)


@FUZZ
@given(tuples(), st.sampled_from(["nsg-v1", "nsg-v2", "vnet"]), st.one_of(hostile_values, field))
def test_hostile_flow_tuples_and_times_parse_or_are_record_errors(
    text: str, layout: str, when: Any
) -> None:
    check("azure.tuple", lambda: parse_tuple(text, layout=layout))
    check("azure.time", lambda: parse_time(when, field="time"))
