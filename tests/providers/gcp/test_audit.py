"""Audit-log normalisation against real recorded entries (iap-desktop, Panther, Custodian)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.errors import RecordError
from agent.models import Accelerator, AccessMethod, GpuInstance, Outcome
from providers.gcp.audit import OSLOGIN_NOTE, merge_sessions, session_from_audit_entry
from providers.gcp.normalize import InventoryIndex

from .samples import load_json, load_jsonl, own_entry, sample

IAP = "iap-desktop__TestAuthorizeUserTunnelEvent.jsonl"
CHECK = "iap-desktop__TestOsLoginCheckPolicyEvent.jsonl"
PANTHER = "panther-analysis__gcp_compute_ssh_connection_tests.jsonl"


def _vm(
    name: str,
    numeric: str,
    *,
    project: str = "project-1",
    zone: str = "us-central1-a",
    accelerators: tuple[Accelerator, ...] = (),
    cluster: str | None = None,
) -> GpuInstance:
    tags = {"gcp-instance-id": numeric}
    if cluster:
        tags["gke-cluster"] = cluster
    return GpuInstance(
        provider="gcp",
        account=project,
        region=zone,
        instance_id=name,
        accelerators=accelerators,
        tags=tags,
        state="running",
    )


def _panther(test_name: str) -> dict[str, Any]:
    return sample(PANTHER, test_name)


# -- IAP TCP forwarding ----------------------------------------------------------------------


def test_iap_authorize_user_is_an_iap_tunnel_with_destination_and_caller() -> None:
    s = session_from_audit_entry(sample(IAP, "ToEvent_WhenSeverityIsInfo"), project="fallback")
    assert s is not None
    assert s.method is AccessMethod.IAP_TUNNEL and s.outcome is Outcome.SUCCESS
    assert s.account == "project-1"  # from logName, not the fallback
    assert s.source_ip == "3.4.5.6"
    assert s.principal is None  # authenticationInfo is empty in this real record
    assert s.region == "us-central1-a"
    assert s.attributes["destination_ip"] == "10.0.0.1"
    assert s.attributes["destination_port"] == "3389"
    assert s.attributes["gcp_instance_id"] == "312951312222222222"
    assert s.started_at == datetime(2020, 9, 30, 9, 35, 39, 102788, tzinfo=UTC)
    assert s.evidence[0].event_id == "822bjve2s5t9"
    assert s.evidence[0].event_name == "AuthorizeUser"


def test_iap_numeric_instance_id_resolves_to_the_instance_name_through_the_inventory() -> None:
    index = InventoryIndex.build([_vm("gpu-box", "312951312222222222")])
    s = session_from_audit_entry(
        sample(IAP, "ToEvent_WhenSeverityIsInfo"), project="p", index=index
    )
    assert s is not None
    assert s.instance_id == "gpu-box"
    assert s.attributes["gcp_instance_id"] == "312951312222222222"
    assert not s.notes


def test_iap_target_missing_from_the_inventory_keeps_the_numeric_id_with_a_note() -> None:
    s = session_from_audit_entry(sample(IAP, "ToEvent_WhenSeverityIsInfo"), project="p")
    assert s is not None
    assert s.instance_id == "312951312222222222"
    assert any("not in this run's inventory" in n for n in s.notes)


def test_iap_permission_denied_status_is_a_denied_attempt() -> None:
    s = session_from_audit_entry(sample(IAP, "ToEvent_WhenSeverityIsError"), project="p")
    assert s is not None and s.outcome is Outcome.DENIED


def test_iap_entry_without_request_metadata_still_yields_a_session_without_ip() -> None:
    s = session_from_audit_entry(sample(IAP, "ToEvent_WhenFieldContentsAreMissing"), project="p")
    assert s is not None and s.source_ip is None and s.instance_id == "312951312222222222"


def test_iap_for_web_apps_is_not_a_vm_session() -> None:
    assert (
        session_from_audit_entry(sample(IAP, "ToEvent_WhenRecordIsFromIapWeb"), project="p") is None
    )


def test_workforce_identity_principal_comes_from_principal_subject() -> None:
    entry = sample(IAP, "ToEvent_WhenAuthenticatedUsingWorkforceIdentitzFederation")
    s = session_from_audit_entry(entry, project="p")
    assert s is not None
    assert s.principal is not None and s.principal.startswith("principal://iam.googleapis.com/")
    assert s.principal_type == "workforce-identity"


def test_panther_exported_iap_session_end_parses_space_timestamps_and_caller_ip_spelling() -> None:
    s = session_from_audit_entry(_panther("Connect with IAP"), project="p")
    assert s is not None
    assert s.source_ip == "1.1.1.1"  # Panther writes callerIP
    assert s.principal == "denethor@lotr.com" and s.principal_type == "user"
    assert s.attributes["iap_phase"] == "SESSION_END"
    assert s.attributes["iap_bytes_received"] == "6922"
    assert s.ended_at == s.started_at == datetime(2025, 5, 27, 16, 46, 46, 485356, tzinfo=UTC)
    assert s.key == "example-project/iap/Q444-UYUD-GBRY-QFUF-AS7Q-6A6E"


def test_iap_start_and_end_of_one_tunnel_share_a_key_and_merge() -> None:
    start = session_from_audit_entry(own_entry("iap-0001"), project="gpu-prod")
    end = session_from_audit_entry(own_entry("iap-0002"), project="gpu-prod")
    assert start is not None and end is not None and start.key == end.key
    merged = merge_sessions(start, end)
    assert merged.started_at == start.started_at
    assert merged.ended_at == end.started_at
    assert merged.attributes["iap_phase"] == "SESSION_START"
    assert len(merged.evidence) == 2


# -- OS Login ----------------------------------------------------------------------------------


def test_os_login_check_policy_targets_the_named_instance_without_a_user_ip() -> None:
    s = session_from_audit_entry(
        sample(CHECK, "ToEvent_WhenLegacyLogRecordLacksTopLevelLabels"), project="p"
    )
    assert s is not None
    assert s.method is AccessMethod.OS_LOGIN and s.outcome is Outcome.SUCCESS
    assert (s.instance_id, s.region, s.principal) == (
        "instance-1",
        "us-central1-a",
        "bob@example.com",
    )
    assert s.source_ip is None and OSLOGIN_NOTE in s.notes
    assert s.attributes["oslogin_policy"] == "LOGIN"


def test_os_login_caller_ip_is_kept_as_an_attribute_not_as_the_source() -> None:
    s = session_from_audit_entry(
        sample(CHECK, "ToEvent_WhenCheckFailedAndResponsMissing"), project="p"
    )
    assert s is not None
    assert s.source_ip is None and s.attributes["caller_ip"] == "2002:a61:a294::"
    assert s.outcome is Outcome.DENIED  # response.success is false


def test_os_login_check_without_response_is_a_failed_check() -> None:
    s = session_from_audit_entry(sample(CHECK, "ToEvent_WhenCheckFailed"), project="p")
    assert s is not None and s.outcome is Outcome.FAILED


def test_os_login_2fa_steps_are_keyed_by_session_id() -> None:
    start = session_from_audit_entry(
        sample(
            "iap-desktop__TestOsLoginStartSessionEvent.jsonl", "ToEvent_When2faMethodsUnavailable"
        ),
        project="p",
    )
    cont = session_from_audit_entry(
        sample("iap-desktop__TestOsLoginContinueSessionEvent.jsonl", "ToEvent_WhenAuthenticated"),
        project="p",
    )
    assert start is not None and cont is not None
    assert start.outcome is Outcome.DENIED  # NO_AVAILABLE_CHALLENGES
    assert start.key == "project-1/oslogin/AM3QAYYXRnWWZW3vmO"
    assert cont.outcome is Outcome.SUCCESS and cont.attributes["oslogin_status"] == "AUTHENTICATED"
    assert cont.instance_id == "instance-1"


def test_os_login_dataplane_check_policy_is_recognised() -> None:
    s = session_from_audit_entry(_panther("SSH From OS Login Without MFA"), project="p")
    assert s is not None and s.method is AccessMethod.OS_LOGIN
    assert s.instance_id == "example-instance" and s.attributes["oslogin_policy"] == "ADMIN_LOGIN"


# -- metadata SSH keys, serial port --------------------------------------------------------------


def test_instance_ssh_key_added_through_set_metadata_is_an_access_grant() -> None:
    s = session_from_audit_entry(_panther("SSH From GCP Console"), project="p")
    assert s is not None
    assert s.method is AccessMethod.SSH_KEY_GRANT
    assert (s.instance_id, s.region) == ("example-instance", "us-central1-f")
    assert s.source_ip == "192.168.1.100"
    assert s.attributes["grant_scope"] == "instance"
    assert s.attributes["metadata_keys"] == "ssh-keys"


def test_project_wide_ssh_keys_are_a_project_scoped_grant_without_instance() -> None:
    s = session_from_audit_entry(_panther("SSH From Remote Machine"), project="p")
    assert s is not None
    assert s.method is AccessMethod.SSH_KEY_GRANT and s.instance_id is None
    assert s.attributes["grant_scope"] == "project"
    assert s.account == "example-project"


def test_metadata_changes_without_ssh_keys_are_not_sessions() -> None:
    entry = load_jsonl("iap-desktop__TestSetMetadataEvent.jsonl")[0]["log"]  # windows-keys
    assert session_from_audit_entry(entry, project="p") is None


def test_first_and_last_entries_of_one_set_metadata_operation_share_a_key() -> None:
    first = session_from_audit_entry(own_entry("md-0001"), project="gpu-prod")
    last = session_from_audit_entry(own_entry("md-0002"), project="gpu-prod")
    assert first is not None and last is not None and first.key == last.key


def test_serial_port_connect_targets_the_instance_and_keeps_the_port() -> None:
    s = session_from_audit_entry(_panther("Connect to Serial Port"), project="p")
    assert s is not None
    assert s.method is AccessMethod.SERIAL_PORT
    assert (s.instance_id, s.region) == ("example-instance", "us-central1-f")
    assert s.source_ip == "192.168.1.100"
    assert s.attributes["serial_port"] == "1" and s.attributes["username"] == "user_example_com"


def test_a_serial_port_event_other_than_connect_only_closes_its_operation() -> None:
    entry = _panther("Connect to Serial Port")
    entry["protoPayload"]["methodName"] = "google.ssh-serialport.v1.disconnect"
    s = session_from_audit_entry(entry, project="p")
    assert s is not None and s.ended_at == s.started_at
    del entry["operation"]
    assert session_from_audit_entry(entry, project="p") is None


# -- GKE exec ----------------------------------------------------------------------------------


def _gke_exec_sample() -> dict[str, Any]:
    rows = load_jsonl("panther-analysis__k8s_exec_rule_tests.jsonl")
    log: dict[str, Any] = next(r["log"] for r in rows if r["test_name"] == "GCP GKE Exec Into Pod")
    return copy.deepcopy(log)


def test_panther_gke_exec_export_without_timestamp_and_insert_id_is_malformed() -> None:
    with pytest.raises(RecordError, match="insertId"):
        session_from_audit_entry(_gke_exec_sample(), project="test-project")


def test_gke_exec_is_a_kubernetes_exec_on_the_pod() -> None:
    entry = _gke_exec_sample() | {"insertId": "k1", "timestamp": "2025-06-01T10:00:00Z"}
    s = session_from_audit_entry(entry, project="test-project")
    assert s is not None
    assert s.method is AccessMethod.KUBERNETES_EXEC
    assert s.attributes["namespace"] == "default" and s.attributes["pod"] == "nginx-pod"
    assert s.source_ip == "1.2.3.4" and s.principal == "user@company.com"
    assert s.instance_id is None


def test_gke_exec_in_a_single_node_cluster_resolves_to_that_node() -> None:
    node = _vm("gke-ml-node", "1", project="gpu-prod", zone="asia-east1-a", cluster="ml-cluster")
    s = session_from_audit_entry(
        own_entry("gke-0001"), project="gpu-prod", index=InventoryIndex.build([node])
    )
    assert s is not None and s.instance_id == "gke-ml-node" and s.region == "asia-east1-a"


def test_gke_exec_in_a_multi_node_cluster_carries_an_upper_bound_of_its_gpus() -> None:
    h100 = Accelerator(model="nvidia-h100", count=8)
    nodes = [
        _vm("n1", "1", project="gpu-prod", cluster="ml-cluster", accelerators=(h100,)),
        _vm(
            "n2",
            "2",
            project="gpu-prod",
            cluster="ml-cluster",
            accelerators=(Accelerator(model="nvidia-h100", count=4),),
        ),
        _vm("n3", "3", project="gpu-prod", cluster="ml-cluster"),
    ]
    s = session_from_audit_entry(
        own_entry("gke-0002"), project="gpu-prod", index=InventoryIndex.build(nodes)
    )
    assert s is not None
    assert s.method is AccessMethod.KUBERNETES_PORT_FORWARD and s.attributes["verb"] == "get"
    assert s.instance_id is None and s.accelerators == (h100,)
    assert any("upper bound" in n for n in s.notes)


# -- not sessions, malformed ---------------------------------------------------------------------


def test_an_admin_event_with_a_real_public_caller_is_not_an_access_session() -> None:
    entry = load_json("cloud-custodian__event__instance-template-create.json")
    assert session_from_audit_entry(entry, project="cloud-custodian") is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("insertId"), "insertId"),
        (lambda e: e.update(timestamp="30/09/2020"), "RFC 3339"),
        (lambda e: e.update(timestamp=1601458539), "string"),
        (lambda e: e.update(protoPayload="AuthorizeUser"), "protoPayload must be an object"),
        (lambda e: e["protoPayload"].update(requestMetadata=[1]), "requestMetadata"),
    ],
)
def test_malformed_entries_raise_record_error_naming_the_field(mutate: Any, message: str) -> None:
    entry = copy.deepcopy(sample(IAP, "ToEvent_WhenSeverityIsInfo"))
    mutate(entry)
    with pytest.raises(RecordError, match=message):
        session_from_audit_entry(entry, project="p")


def test_a_non_object_entry_is_malformed() -> None:
    with pytest.raises(RecordError):
        session_from_audit_entry(["not", "an", "entry"], project="p")
