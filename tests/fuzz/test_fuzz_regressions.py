"""Regression tests for the parser crashes the fuzzers found in the Azure, Google Cloud and
Kubernetes providers, fixed in place with this work (issue 9, part A).

Before each fix the input raised something other than RecordError, which left the source
and turned every later record of that source into one internal ScopeError.
"""

from __future__ import annotations

import json

import pytest

from agent.errors import RecordError
from agent.models import EvidenceRef
from providers.azure.activity import activity_sessions
from providers.azure.flows import iter_records, parse_tuple, record_tuples
from providers.azure.normalize import parse_time
from providers.gcp.audit import session_from_audit_entry
from providers.gcp.entries import parse_timestamp
from providers.gcp.normalize import instance_from_compute
from providers.kubernetes.events import access_from, to_session
from providers.kubernetes.wrappers import RawEvent, unwrap
from tests.fuzz.hostile import usable
from tests.fuzz.seeds import json_records

HUGE = b"9" * 5000
DEEP = b"[" * 5000 + b"]" * 5000
RUN_COMMAND = {
    "operationName": {"value": "Microsoft.Compute/virtualMachines/runCommand/action"},
    "eventTimestamp": "2026-11-25T10:00:00Z",
    "resourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/"
    "virtualMachines/gpu",
    "operationId": "op-1",
    "status": {"value": "Started"},
}


def test_azure_activity_event_with_a_non_object_http_request_still_folds() -> None:
    result = activity_sessions(
        [("event 0", {**RUN_COMMAND, "httpRequest": ["not", "an", "object"]})],
        source="azure",
        subscription_id="s",
    )
    assert [s.source_ip for s in result.sessions] == [None]


@pytest.mark.parametrize("blob", [HUGE, DEEP, b'{"records": []}\n' + HUGE])
def test_azure_flow_blob_with_a_huge_integer_or_deep_nesting_is_record_errors(
    blob: bytes,
) -> None:
    records = list(iter_records(blob))
    assert records and all(isinstance(r, RecordError) for _, r in records if r != {})


@pytest.mark.parametrize(
    "record",
    [
        {"properties": {"flows": 5}},
        {"properties": {"flows": ["rule"]}},
        {"properties": {"flows": [{"flows": [{"flowTuples": "abc"}]}]}},
        {"flowRecords": {"flows": "abc"}},
        {"flowRecords": {"flows": [{"flowGroups": ["x"]}]}},
    ],
)
def test_azure_flow_record_with_containers_of_the_wrong_type_is_a_record_error(
    record: dict[str, object],
) -> None:
    with pytest.raises(RecordError):
        list(record_tuples(record, position="record 0"))


def test_azure_flow_record_with_a_non_string_rule_or_mac_keeps_its_tuples() -> None:
    record = {
        "macAddress": 12,
        "flowRecords": {"flows": [{"flowGroups": [{"rule": 7, "flowTuples": ["t"]}]}]},
    }
    [raw] = record_tuples(record, position="record 0")
    assert (raw.mac, raw.rule, raw.text) == (None, None, "t")


@pytest.mark.parametrize(
    "text",
    [
        "99999999999999999999,1.2.3.4,10.0.0.4,5000,22,T,I,A",
        "1764064800,1.2.3.4,10.0.0.4,5000,22,T,I,A,B," + "9" * 5000 + ",1,1,1",
    ],
)
def test_azure_flow_tuple_with_an_out_of_range_time_or_count_never_escapes(text: str) -> None:
    layout = "nsg-v1" if text.count(",") == 7 else "nsg-v2"
    try:
        flow = parse_tuple(text, layout=layout)
    except RecordError:
        return
    assert flow.bytes_total is None


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_at_the_edge_of_the_calendar_are_record_errors(value: str) -> None:
    with pytest.raises(RecordError):
        parse_time(value, field="time")
    with pytest.raises(RecordError):
        parse_timestamp(value)


def test_gcp_audit_entry_with_a_field_of_the_wrong_type_is_a_record_error() -> None:
    entry = json.loads(json.dumps(json_records("gcp/own__gpu-prod__log-entries.jsonl")[0]))
    entry["protoPayload"]["requestMetadata"] = {"callerSuppliedUserAgent": ["a", "list"]}
    with pytest.raises(RecordError, match="audit entry"):
        session_from_audit_entry(entry, project="p")


def test_gcp_instance_with_labels_tags_and_nics_of_the_wrong_type_is_still_an_instance() -> None:
    instance = {
        "name": "vm-1",
        "labels": ["a"],
        "tags": "b",
        "scheduling": 5,
        "metadata": ["c"],
        "networkInterfaces": {"d": 1},
    }
    inst = instance_from_compute(instance, project="p", zone="z", accelerators=())
    assert (inst.instance_id, inst.private_ips) == ("vm-1", ())


def test_gke_entry_with_a_non_object_resource_unwraps() -> None:
    [(_, raw)] = unwrap({"protoPayload": {"methodName": "x"}, "resource": ["not", "object"]})
    assert isinstance(raw, RawEvent) and raw.log_cluster is None


def test_k8s_exec_body_with_non_string_command_words_keeps_the_strings() -> None:
    event = json_records("k8s/audit/falco__exec_pod.json")[0]
    event = {
        **event,
        "requestURI": "/api/v1/namespaces/ml/pods/p/exec",
        "requestObject": {"command": ["bash", 5, ["x"], "-c"], "container": 7},
    }
    access = access_from(RawEvent("k8s", event, "audit.k8s.io/v1"))
    assert access is not None and access.command == "bash -c" and access.container is None
    evidence = EvidenceRef(kind="file", locator="f", position="1")
    usable(to_session(access, cluster="c", source="s", node=None, evidence=evidence))


def test_gcp_os_login_request_naming_the_instance_with_an_object_is_no_crash() -> None:
    entry = {
        "insertId": "o-1",
        "timestamp": "2026-11-25T10:00:00Z",
        "protoPayload": {
            "serviceName": "oslogin.googleapis.com",
            "methodName": "google.cloud.oslogin.OsLoginService.CheckPolicy",
            "request": {"instance": {"name": "vm"}, "zone": ["z"]},
        },
    }
    session = session_from_audit_entry(entry, project="p")
    assert session is not None and session.instance_id is None


def test_azure_flow_tuple_counts_with_non_ascii_digits_are_ignored() -> None:
    flow = parse_tuple("1764064800,1.2.3.4,10.0.0.4,5000,22,T,I,A,B,1,²,1,1", layout="nsg-v2")
    assert flow.bytes_total is None


@pytest.mark.parametrize(
    "proto",
    [
        {
            "serviceName": "iap.googleapis.com",
            "methodName": "AuthorizeUser",
            "authorizationInfo": 5,
            "metadata": {"unsatisfied_access_levels": 7},
        },
        {
            "serviceName": "compute.googleapis.com",
            "methodName": "v1.compute.instances.setMetadata",
            "request": {"Metadata Keys Modified": 3},
            "metadata": {"instanceMetadataDelta": {"addedMetadataKeys": True}},
        },
    ],
)
def test_gcp_list_fields_of_the_wrong_type_are_no_crash(proto: dict[str, object]) -> None:
    entry = {"insertId": "l-1", "timestamp": "2026-11-25T10:00:00Z", "protoPayload": proto}
    session_from_audit_entry(entry, project="p")
