"""CloudTrail record -> Session, checked against real captured and documented records."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.errors import RecordError
from agent.models import AccessMethod, Outcome
from providers.aws.normalize import (
    event_time,
    join_ssm_sessions,
    session_from_cloudtrail,
    ssm_session_end,
)

from .conftest import CLOUDTRAIL, load_records

# The test's own spec of which events are sessions and how each is reached.
SESSION_METHODS = {
    "StartSession": AccessMethod.SSM_SESSION,
    "ResumeSession": AccessMethod.SSM_SESSION,
    "SendSSHPublicKey": AccessMethod.EC2_INSTANCE_CONNECT,
    "SendSerialConsoleSSHPublicKey": AccessMethod.EC2_SERIAL_CONSOLE,
    "OpenTunnel": AccessMethod.EC2_INSTANCE_CONNECT_ENDPOINT,
    "ConsoleLogin": AccessMethod.CONSOLE,
}
FIXTURES = sorted(p.name for p in CLOUDTRAIL.iterdir() if p.suffix in {".json", ".jsonl"})


def parse(record: Any, **kw: Any) -> Any:
    return session_from_cloudtrail(record, locator="test.json", position="record 0", **kw)


def first(name: str, event_name: str) -> dict[str, Any]:
    return next(r for r in load_records(name) if r["eventName"].strip() == event_name)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_copied_record_normalises_to_its_method_or_is_not_a_session(fixture: str) -> None:
    records = load_records(fixture)
    assert records
    for record in records:
        name = record["eventName"].strip()
        if "eventTime" not in record:  # one Panther test event has no eventTime
            with pytest.raises(RecordError, match="eventTime is missing"):
                parse(record)
            continue
        session = parse(record)
        if name not in SESSION_METHODS:
            assert session is None, name
            continue
        assert session is not None
        assert session.provider == "aws"
        assert session.key == record["eventID"]
        assert session.source_ip == record.get("sourceIPAddress")
        assert session.principal_type == record["userIdentity"]["type"]
        assert session.started_at == event_time(record)
        if session.method is not AccessMethod.SSM_PORT_FORWARD:
            assert session.method is SESSION_METHODS[name]


def test_ssm_start_session_targets_the_instance_and_keeps_the_session_id() -> None:
    record = first("stratus-red-team__aws.execution.ssm-start-session.json", "StartSession")
    session = parse(record)
    assert session.method is AccessMethod.SSM_SESSION
    assert session.instance_id == record["requestParameters"]["target"]
    assert session.attributes["sessionId"] == record["responseElements"]["sessionId"]
    assert session.principal == "arn:aws:iam::294599468799:user/christophe"
    assert session.account == "294599468799"
    assert session.region == "me-northwest-3r"
    assert session.outcome is Outcome.SUCCESS


def test_port_forwarding_document_makes_an_ssm_port_forward() -> None:
    record = copy.deepcopy(
        first("stratus-red-team__aws.execution.ssm-start-session.json", "StartSession")
    )
    record["requestParameters"]["documentName"] = "AWS-StartPortForwardingSessionToRemoteHost"
    session = parse(record)
    assert session.method is AccessMethod.SSM_PORT_FORWARD
    assert session.attributes["documentName"] == "AWS-StartPortForwardingSessionToRemoteHost"


def test_console_started_ssm_session_carries_a_note_about_the_aws_source_ip() -> None:
    record = copy.deepcopy(
        first("stratus-red-team__aws.execution.ssm-start-session.json", "StartSession")
    )
    record["userAgent"] = "aws-internal/3 aws-sdk-java/1.12"
    assert any("ConsoleLogin" in note for note in parse(record).notes)


def test_terminate_session_is_not_a_session_but_gives_the_end_time() -> None:
    record = first("stratus-red-team__aws.execution.ssm-start-session.json", "TerminateSession")
    assert parse(record) is None
    assert ssm_session_end(record) == (
        record["requestParameters"]["sessionId"],
        datetime.fromisoformat(record["eventTime"]),
    )


def test_failed_terminate_session_gives_no_end_time() -> None:
    record = copy.deepcopy(
        first("stratus-red-team__aws.execution.ssm-start-session.json", "TerminateSession")
    )
    record["errorCode"] = "AccessDeniedException"
    assert ssm_session_end(record) is None


def test_join_attaches_end_times_by_session_id_and_fills_resumed_targets() -> None:
    records = load_records("stratus-red-team__aws.execution.ssm-start-session.json")
    forwarded = next(r for r in records if r["eventName"] == "StartSession")
    forwarded["requestParameters"]["documentName"] = "AWS-StartPortForwardingSession"
    starts = [s for r in records if (s := parse(r)) is not None]
    ends = dict(e for r in records if (e := ssm_session_end(r)) is not None)
    resume = copy.deepcopy(forwarded)
    resume.update(
        eventName="ResumeSession",
        eventID="resume-1",
        requestParameters={"sessionId": resume["responseElements"]["sessionId"]},
    )
    resumed = parse(resume)
    assert (resumed.instance_id, resumed.method) == (None, AccessMethod.SSM_SESSION)
    joined = join_ssm_sessions([*starts, resumed], ends)
    assert len(starts) == 3
    for session in joined[:3]:
        assert session.ended_at == ends[session.attributes["sessionId"]]
    assert joined[3].instance_id == forwarded["requestParameters"]["target"]
    assert joined[3].method is AccessMethod.SSM_PORT_FORWARD


def test_instance_connect_push_names_instance_and_os_user() -> None:
    record = first(
        "stratus-red-team__aws.lateral-movement.ec2-instance-connect.json", "SendSSHPublicKey"
    )
    session = parse(record)
    assert session.method is AccessMethod.EC2_INSTANCE_CONNECT
    assert session.instance_id == "i-fDb357cB7e99ad973"
    assert session.attributes["osUser"] == "ec2-user"


def test_doc_sample_with_trailing_space_event_name_and_invalid_ip_still_parses() -> None:
    (record,) = load_records("awsdocs__ec2-user-guide__SendSSHPublicKey-example.json")
    assert record["eventName"] == "SendSSHPublicKey "
    session = parse(record)
    assert session.method is AccessMethod.EC2_INSTANCE_CONNECT
    assert session.source_ip == "123.456.789.012"  # verbatim: the enricher classifies it
    assert session.attributes["osUser"] == "ec2-user"  # legacy osUser field
    assert session.instance_id == "i-0123456789EXAMPLE"
    assert session.account == "0987654321"  # recipientAccountId wins over userIdentity
    assert session.evidence[0].event_name == "SendSSHPublicKey"


def test_serial_console_key_push_is_a_serial_console_session_of_an_assumed_role() -> None:
    record = first(
        "stratus-red-team__aws.lateral-movement.ec2-serial-console-send-ssh-public-key.json",
        "SendSerialConsoleSSHPublicKey",
    )
    session = parse(record)
    assert session.method is AccessMethod.EC2_SERIAL_CONSOLE
    assert session.instance_id == record["requestParameters"]["instanceId"]
    assert session.attributes["serialPort"] == "0"
    assert session.principal_type == "AssumedRole"
    assert session.principal == record["userIdentity"]["arn"]
    assert session.attributes["sessionIssuer"].endswith(
        "AWSReservedSSO_account-admin_599c9e90e350d2ff"
    )
    assert session.attributes["mfaAuthenticated"] == "false"


def test_open_tunnel_has_no_instance_but_keeps_the_endpoint_target() -> None:
    session = parse(load_records("chipwarden__OpenTunnel.json")[0])
    assert session.method is AccessMethod.EC2_INSTANCE_CONNECT_ENDPOINT
    assert session.instance_id is None
    assert session.attributes["privateIpAddress"] == "10.20.3.41"
    assert session.attributes["remotePort"] == "22"
    assert session.attributes["instanceConnectEndpointId"] == "eice-0a1b2c3d4e5f60718"


def test_console_login_without_mfa_is_an_account_level_success() -> None:
    (record,) = load_records("stratus-red-team__aws.initial-access.console-login-without-mfa.json")
    session = parse(record)
    assert session.method is AccessMethod.CONSOLE
    assert session.instance_id is None
    assert session.outcome is Outcome.SUCCESS
    assert session.attributes["MFAUsed"] == "No"
    assert session.source_ip == "225.01.00.16"


def test_console_login_failures_are_failed_and_fall_back_to_user_name() -> None:
    records = load_records("awsdocs__cloudtrail-user-guide__console-sign-in-event-examples.json")
    logins = [parse(r) for r in records if r["eventName"] == "ConsoleLogin"]
    failed = [s for s in logins if s.outcome is Outcome.FAILED]
    assert len(logins) == 5 and len(failed) == 2
    assert {s.principal for s in failed} == {"anaya", "arn:aws:iam::111122223333:root"}


def test_access_denied_error_code_makes_a_denied_attempt() -> None:
    record = next(
        r
        for r in load_records("panther-analysis__remote_access_rule_tests.jsonl")
        if r.get("errorCode") == "AccessDenied"
    )
    session = parse(record)
    assert session.outcome is Outcome.DENIED
    assert session.instance_id is None  # no requestParameters on a denied call
    assert session.attributes["errorCode"] == "AccessDenied"
    assert session.started_at == datetime(2025, 1, 13, 20, 46, 57, tzinfo=UTC)  # Panther format


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("AccessDenied", Outcome.DENIED),
        ("AccessDeniedException", Outcome.DENIED),
        ("UnauthorizedOperation", Outcome.DENIED),
        ("Client.UnauthorizedOperation", Outcome.DENIED),
        ("InvalidArgs", Outcome.FAILED),
        ("EC2InstanceNotFoundException", Outcome.FAILED),
    ],
)
def test_error_codes_map_to_denied_or_failed(code: str, outcome: Outcome) -> None:
    record = copy.deepcopy(
        first(
            "stratus-red-team__aws.lateral-movement.ec2-instance-connect.json", "SendSSHPublicKey"
        )
    )
    record["errorCode"] = code
    assert parse(record).outcome is outcome


def test_session_event_name_from_another_service_is_not_a_session() -> None:
    record = copy.deepcopy(
        first("stratus-red-team__aws.execution.ssm-start-session.json", "StartSession")
    )
    record["eventSource"] = "gamelift.amazonaws.com"
    assert parse(record) is None


def test_session_key_is_the_event_id_so_reruns_give_the_same_session_id() -> None:
    a, b, c = (
        parse(r)
        for r in load_records("stratus-red-team__aws.lateral-movement.ec2-instance-connect.json")
    )
    again = parse(
        load_records("stratus-red-team__aws.lateral-movement.ec2-instance-connect.json")[0]
    )
    assert a.session_id == again.session_id
    assert len({a.session_id, b.session_id, c.session_id}) == 3


def test_record_without_event_id_gets_a_stable_content_key() -> None:
    record = copy.deepcopy(load_records("chipwarden__OpenTunnel.json")[0])
    del record["eventID"]
    first_key, second_key = parse(record).key, parse(copy.deepcopy(record)).key
    assert first_key == second_key and first_key.startswith("sha256:")


def test_evidence_points_at_the_file_position_or_api() -> None:
    record = load_records("chipwarden__OpenTunnel.json")[0]
    file_ev = parse(record).evidence[0]
    assert (file_ev.kind, file_ev.locator, file_ev.position, file_ev.event_id) == (
        "file",
        "test.json",
        "record 0",
        record["eventID"],
    )
    api = session_from_cloudtrail(
        record, locator="cloudtrail:LookupEvents", position="1/r", kind="api", source="aws-prod"
    )
    assert api is not None
    assert api.evidence[0].kind == "api" and api.source == "aws-prod"


def _valid() -> dict[str, Any]:
    return copy.deepcopy(load_records("chipwarden__OpenTunnel.json")[0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: ["not", "a", "record"], "must be a JSON object"),
        (lambda r: "{broken", "not a JSON object"),
        (lambda r: {k: v for k, v in r.items() if k != "eventTime"}, "eventTime is missing"),
        (lambda r: {**r, "eventTime": "yesterday"}, "eventTime 'yesterday'"),
        (lambda r: {**r, "eventTime": "2026-03-02"}, "not an ISO-8601"),
        (lambda r: {**r, "eventTime": "2026-13-02T09:01:44Z"}, "not a valid timestamp"),
        (lambda r: {**r, "eventTime": 1700000000}, "not an ISO-8601"),
        (lambda r: {k: v for k, v in r.items() if k != "eventName"}, "eventName is missing"),
        (lambda r: {**r, "eventName": 42}, "eventName must be a non-empty string"),
        (lambda r: {**r, "userIdentity": "root"}, "userIdentity must be an object"),
        (lambda r: {**r, "requestParameters": ["x"]}, "requestParameters must be an object"),
        (lambda r: {**r, "sourceIPAddress": 12345}, "sourceIPAddress must be a string"),
    ],
)
def test_malformed_records_raise_record_error_naming_the_field(mutate: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        parse(mutate(_valid()))
