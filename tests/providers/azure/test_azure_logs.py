"""Pure normalisation of Bastion audit logs, VM sign-ins and Activity Log events."""

from __future__ import annotations

import json

import pytest

from agent.errors import RecordError
from agent.models import AccessMethod, Outcome
from providers.azure.activity import activity_sessions
from providers.azure.logs import (
    VM_SIGN_IN_APPS,
    bastion_from_record,
    bastion_from_row,
    signin_from_row,
    signin_row_from_record,
)
from providers.azure.queries import bastion_query, signin_query
from tests.providers.azure.azfixtures import (
    A10_ID,
    DATA,
    H100_ID,
    SUB_A,
    WORKSPACE,
    la_rows,
    load,
)

LINUX_APP = "ce6ff14a-7fdc-4685-bbe0-f6afdfcfa8e0"


def test_docs_bastion_record_normalises_to_a_bastion_session() -> None:
    record = load("azure-docs__bastion__monitor-bastion__BastionAuditLogs-example.json")
    session = bastion_from_record(record, source="az", locator="blob", position="line 1")
    assert session.method is AccessMethod.BASTION
    assert session.source_ip == "131.107.159.86"
    assert session.instance_id == record["properties"]["targetResourceId"].lower()
    assert session.started_at.isoformat() == "2019-10-03T16:03:34.776000+00:00"
    assert session.attributes["protocol"] == "ssh"
    assert session.attributes["target_ip"] == "172.16.1.5"
    assert session.outcome is Outcome.SUCCESS
    # documentation placeholders (<username>, <tunnelID>) are not taken as values
    assert session.principal is None and "tunnel_id" not in session.attributes
    assert session.evidence[0].locator == "blob"


def test_bastion_rows_keep_tunnel_identity_end_time_and_lower_case_target() -> None:
    rows = la_rows("la_bastion_audit_logs.json")
    start, end = (bastion_from_row(r, source="az", workspace_id=WORKSPACE) for r in rows[1:3])
    assert start.key == end.key == f"bastion:{rows[1]['TunnelId']}"
    assert start.instance_id == H100_ID and start.account == SUB_A
    assert start.principal == "mallory@contoso.example"
    assert start.attributes["os_user"] == "azureuser"
    assert end.ended_at is not None and end.ended_at > end.started_at
    assert start.started_at == end.started_at


def test_bastion_login_failed_is_a_failed_outcome() -> None:
    row = la_rows("la_bastion_audit_logs.json")[3]
    session = bastion_from_row(row, source="az", workspace_id=WORKSPACE)
    assert session.outcome is Outcome.FAILED
    assert session.principal == "Administrator" and session.principal_type == "os-user"
    assert session.instance_id == A10_ID


def test_bastion_row_with_an_unreadable_time_is_a_record_error() -> None:
    row = la_rows("la_bastion_audit_logs.json")[4]
    with pytest.raises(RecordError, match="time"):
        bastion_from_row(row, source="az", workspace_id=WORKSPACE)
    with pytest.raises(RecordError, match="properties"):
        bastion_from_record(
            {"time": "2024-01-01T00:00:00Z"}, source="az", locator="b", position="1"
        )


def test_bastion_duration_gives_the_end_when_no_end_time_is_logged() -> None:
    row = {**la_rows("la_bastion_audit_logs.json")[1], "Duration": 60000}
    session = bastion_from_row(row, source="az", workspace_id=WORKSPACE)
    assert session.ended_at is not None
    assert (session.ended_at - session.started_at).total_seconds() == 60


def test_linux_vm_sign_in_through_the_cli_records_provider_country() -> None:
    row = la_rows("la_signin_logs.json")[0]
    session = signin_from_row(row, source="az", workspace_id=WORKSPACE)
    assert session is not None
    assert session.method is AccessMethod.VM_SIGN_IN
    assert session.source_ip == "175.45.176.10"
    assert session.attributes["provider_country"] == "KP"
    assert session.attributes["vm_os"] == "linux"
    assert session.attributes["app_display_name"] == "Microsoft Azure CLI"
    assert session.outcome is Outcome.SUCCESS
    assert session.instance_id is None and session.notes


def test_windows_sign_in_with_json_text_columns_is_a_failed_attempt() -> None:
    row = la_rows("la_signin_logs.json")[1]
    assert isinstance(row["LocationDetails"], str)
    session = signin_from_row(row, source="az", workspace_id=WORKSPACE)
    assert session is not None
    assert session.outcome is Outcome.FAILED
    assert session.attributes["provider_country"] == "IR"
    assert session.attributes["failure_reason"] == "Invalid username or password."
    assert session.attributes["device_name"] == "viz-a10-01"
    assert session.evidence[0].locator == "loganalytics:AADNonInteractiveUserSignInLogs"


def test_sign_in_to_another_application_is_not_a_session() -> None:
    row = la_rows("la_signin_logs.json")[2]
    assert signin_from_row(row, source="az", workspace_id=WORKSPACE) is None


def test_sign_in_keys_are_stable_across_reads() -> None:
    row = la_rows("la_signin_logs.json")[0]
    first = signin_from_row(row, source="az", workspace_id=WORKSPACE)
    again = signin_from_row(dict(row), source="az", workspace_id=WORKSPACE)
    assert first is not None and again is not None
    assert first.session_id == again.session_id


def test_panther_sign_in_record_shape_adapts_to_log_analytics_columns() -> None:
    lines = (DATA / "panther-analysis__azure_signin_rule_tests.jsonl").read_text().splitlines()
    records = [json.loads(line)["log"] for line in lines]
    # none of the recorded sign-ins is to a VM sign-in application
    assert all(
        signin_from_row(signin_row_from_record(r), source="az", workspace_id=WORKSPACE) is None
        for r in records
    )
    record = json.loads(json.dumps(records[2]))
    record["properties"]["resourceId"] = LINUX_APP
    session = signin_from_row(signin_row_from_record(record), source="az", workspace_id=WORKSPACE)
    assert session is not None
    assert session.source_ip == record["properties"]["ipAddress"]
    assert (
        session.attributes["provider_country"]
        == record["properties"]["location"]["countryOrRegion"].upper()
    )


def test_queries_name_the_tables_and_both_sign_in_applications() -> None:
    assert bastion_query().startswith("MicrosoftAzureBastionAuditLogs")
    text = signin_query()
    assert "SigninLogs" in text and "AADNonInteractiveUserSignInLogs" in text
    assert all(app in text for app in VM_SIGN_IN_APPS)


def _events() -> list[tuple[str, dict[str, object]]]:
    return [(f"event {i}", e) for i, e in enumerate(load("activity_log_events.json")["value"])]


def test_run_command_events_of_one_operation_fold_into_one_session() -> None:
    result = activity_sessions(_events(), source="az", subscription_id=SUB_A)
    run = next(s for s in result.sessions if s.instance_id == H100_ID)
    assert run.method is AccessMethod.RUN_COMMAND
    assert run.source_ip == "198.51.100.23"  # only the Started event carries httpRequest
    assert run.principal == "alice@contoso.example"
    assert run.outcome is Outcome.SUCCESS
    assert run.ended_at is not None and run.ended_at > run.started_at


def test_serial_console_connect_targets_the_parent_vm() -> None:
    result = activity_sessions(_events(), source="az", subscription_id=SUB_A)
    serial = next(s for s in result.sessions if s.method is AccessMethod.SERIAL_PORT)
    assert serial.instance_id == A10_ID
    assert serial.source_ip == "203.0.113.77"


def test_forbidden_scale_set_run_command_is_denied_and_other_writes_are_ignored() -> None:
    result = activity_sessions(_events(), source="az", subscription_id=SUB_A)
    denied = next(s for s in result.sessions if s.outcome is Outcome.DENIED)
    assert denied.instance_id is not None and denied.instance_id.endswith("/virtualmachines/1")
    # 5 events = 3 sessions + 1 unrelated write + 1 second event of the folded operation
    assert len(result.sessions) == 3
    assert result.ignored == 2
    assert result.newest is not None and result.newest.hour == 11


def test_malformed_events_are_reported_with_their_position() -> None:
    events = [*_events(), ("event 9", {"operationName": {"value": "x"}}), ("event 10", "junk")]
    result = activity_sessions(events, source="az", subscription_id=SUB_A)  # type: ignore[arg-type]
    assert [p for p, _ in result.quarantined] == ["event 9", "event 10"]
    assert len(result.sessions) == 3


def test_the_tail_of_an_operation_begun_before_the_window_makes_no_session() -> None:
    events = _events()
    succeeded_only = [events[1]]  # the Succeeded event of the run command, no request event
    result = activity_sessions(succeeded_only, source="az", subscription_id=SUB_A)
    assert result.sessions == [] and result.ignored == 1
    started_only = [events[0]]
    (session,) = activity_sessions(started_only, source="az", subscription_id=SUB_A).sessions
    assert session.outcome is Outcome.UNKNOWN and session.ended_at is None
    assert session.source_ip == "198.51.100.23"
