"""Pure flow-log parsing (NSG v1, v2, VNet) and folding into network-flow sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.errors import RecordError
from agent.models import AccessMethod
from providers.azure.flows import (
    FlowHit,
    aggregate_flows,
    iter_records,
    parse_tuple,
    record_tuples,
)
from tests.providers.azure.azfixtures import DATA, H100_ID

GAP = timedelta(minutes=15)


def _tuples(name: str) -> list[tuple[str, str | None, str]]:
    data = (DATA / name).read_bytes()
    out = []
    for position, record in iter_records(data):
        assert not isinstance(record, RecordError)
        out += [(t.text, t.mac, t.layout) for t in record_tuples(record, position=position)]
    return out


def test_nsg_v1_docs_sample_parses_every_tuple() -> None:
    tuples = _tuples("azure-docs__nsg-flow-logs-overview__sample-records.jsonl")
    v1 = [parse_tuple(t, layout=layout) for t, _, layout in tuples if layout == "nsg-v1"]
    assert len(v1) == 12
    rdp = [f for f in v1 if f.dst_port == 3389 and f.accepted]
    assert {f.src_ip for f in rdp} >= {"163.28.66.17", "13.76.89.229"}
    assert all(f.inbound and f.protocol == "tcp" and f.state is None for f in rdp)
    denied = parse_tuple("1487282421,42.119.146.95,10.1.0.4,51529,5358,T,I,D", layout="nsg-v1")
    assert not denied.accepted
    assert denied.time.isoformat() == "2017-02-16T22:00:21+00:00"


def test_nsg_v2_docs_sample_reads_state_and_byte_counts() -> None:
    tuples = _tuples("azure-docs__nsg-flow-logs-overview__sample-records.jsonl")
    v2 = [parse_tuple(t, layout=layout) for t, _, layout in tuples if layout == "nsg-v2"]
    assert len(v2) == 11
    begin = next(f for f in v2 if f.state == "B")
    assert begin.bytes_total is None
    end = parse_tuple(
        "1542110379,10.5.16.4,13.67.143.117,59932,443,T,O,A,E,1,66,1,66", layout="nsg-v2"
    )
    assert (end.state, end.bytes_total, end.inbound) == ("E", 132, False)


def test_vnet_docs_sample_uses_milliseconds_protocol_numbers_and_deny_state() -> None:
    tuples = _tuples("azure-docs__vnet-flow-logs-overview__sample-record.json")
    assert {layout for _, _, layout in tuples} == {"vnet"}
    assert {mac for _, mac, _ in tuples} == {"00224871C205"}
    flows = [parse_tuple(t, layout="vnet") for t, _, _ in tuples]
    ssh = next(f for f in flows if f.dst_port == 22)
    assert ssh.inbound and not ssh.accepted and ssh.protocol == "tcp"
    assert ssh.time.isoformat().startswith("2022-09-14T08:59:58.065")
    assert all(f.accepted for f in flows if not f.inbound)


@pytest.mark.parametrize(
    ("text", "layout", "problem"),
    [
        ("not,a,tuple", "nsg-v2", "fields"),
        ("1487282421,42.119.146.95,10.1.0.4,51529,5358,T,X,D", "nsg-v1", "direction"),
        ("1487282421,42.119.146.999,10.1.0.4,51529,5358,T,I,D", "nsg-v1", "source ip"),
        ("1487282421,42.119.146.95,10.1.0.4,51529,70000,T,I,D", "nsg-v1", "destination port"),
        ("1487282421,42.119.146.95,10.1.0.4,51529,22,T,I,Q", "nsg-v1", "decision"),
        ("1663145998065,101.33.218.153,10.0.0.6,55188,22,6,I,Z,NX,0,0,0,0", "vnet", "state"),
        ("soon,101.33.218.153,10.0.0.6,55188,22,6,I,D,NX,0,0,0,0", "vnet", "timestamp"),
    ],
)
def test_malformed_tuples_are_record_errors_naming_the_field(
    text: str, layout: str, problem: str
) -> None:
    with pytest.raises(RecordError, match=problem):
        parse_tuple(text, layout=layout)


def test_blob_reader_accepts_records_document_json_lines_and_reports_bad_lines() -> None:
    lines = b'{"properties": {"flows": []}}\n{broken\n\n[1, 2]\n'
    found = list(iter_records(lines))
    assert [p for p, _ in found] == ["line 1", "line 2", "line 4", "line 4"]
    assert isinstance(found[1][1], RecordError)
    assert isinstance(found[2][1], RecordError)  # a list item that is not an object
    document = b'{"records": [{"a": 1}, {"b": 2}]}'
    assert [p for p, _ in iter_records(document)] == ["record 0", "record 1"]


def test_record_that_is_neither_nsg_nor_vnet_is_a_record_error() -> None:
    with pytest.raises(RecordError, match="neither"):
        list(record_tuples({"category": "Other"}, position="record 0"))


def _hit(text: str) -> FlowHit:
    flow = parse_tuple(text, layout="nsg-v2")
    return FlowHit(flow, H100_ID, "mac", "allow-ssh", "blob", "record 0 tuple 0")


def test_tuples_within_the_gap_fold_into_one_session_per_source_vm_and_port() -> None:
    hits = [
        _hit("1714644000,175.45.176.10,10.1.0.4,50300,22,T,I,A,B,,,,"),
        _hit("1714644300,175.45.176.10,10.1.0.4,50300,22,T,I,A,C,120,20480,118,98304"),
        _hit("1714644420,175.45.176.10,10.1.0.4,50300,22,T,I,A,E,10,1200,9,4096"),
        _hit("1714647600,175.45.176.10,10.1.0.4,50422,22,T,I,A,B,,,,"),  # 53 min later
        _hit("1714644010,198.51.100.7,10.1.0.4,50300,22,T,I,A,B,,,,"),  # another source
    ]
    sessions, merged = aggregate_flows(hits, gap=GAP, source="az")
    assert merged == 2
    by_src = sorted((s.source_ip, s.started_at.minute) for s in sessions)
    assert by_src == [("175.45.176.10", 0), ("175.45.176.10", 0), ("198.51.100.7", 0)]
    first = min((s for s in sessions if s.source_ip == "175.45.176.10"), key=lambda s: s.started_at)
    assert first.method is AccessMethod.NETWORK_FLOW
    assert first.instance_id == H100_ID
    assert first.attributes["tuples"] == "3"
    assert first.attributes["bytes"] == str(98304 + 20480 + 1200 + 4096)
    assert first.ended_at is not None and (first.ended_at - first.started_at).seconds == 420


def test_flow_session_keys_do_not_depend_on_input_order() -> None:
    texts = [
        "1714644000,175.45.176.10,10.1.0.4,50300,22,T,I,A,B,,,,",
        "1714644300,175.45.176.10,10.1.0.4,50300,22,T,I,A,C,1,2,3,4",
    ]
    forward, _ = aggregate_flows([_hit(t) for t in texts], gap=GAP, source="az")
    backward, _ = aggregate_flows([_hit(t) for t in reversed(texts)], gap=GAP, source="az")
    assert [s.session_id for s in forward] == [s.session_id for s in backward]
