"""Audit events -> pod-access facts -> Session: methods, principals, outcomes, stages.

Real captures: Falco's minikube exec/attach events (Apache-2.0) and Panther's exec rule tests
(Apache-2.0). Own fixtures in ``gpu-lab/audit.log`` cover what no public sample shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import RecordError
from agent.models import AccessMethod, EvidenceRef, Outcome
from providers.kubernetes.events import AuditAccess, NodeRef, access_from, merge, to_session
from providers.kubernetes.wrappers import RawEvent, unwrap

EVIDENCE = EvidenceRef(kind="file", locator="audit.log", position="line 1")


def _access(record: Any) -> AuditAccess | None:
    [(_, raw)] = unwrap(record)
    if isinstance(raw, RecordError):
        raise raw
    return access_from(raw)


def _must(record: Any) -> AuditAccess:
    access = _access(record)
    assert access is not None
    return access


@pytest.fixture
def gpu_lab(data_dir: Path) -> list[dict[str, Any]]:
    lines = (data_dir / "audit" / "gpu-lab" / "audit.log").read_text().splitlines()
    return [json.loads(line) for line in lines[:13]]  # the well-formed head of the file


@pytest.fixture
def panther(data_dir: Path) -> dict[str, dict[str, Any]]:
    path = data_dir / "audit" / "panther-analysis__k8s_exec_rule_tests.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {row["test_name"]: row["log"] for row in rows}


def test_falco_exec_capture_is_an_exec_with_command_container_and_client_ip(data_dir: Path) -> None:
    record = json.loads((data_dir / "audit" / "falco__exec_pod.json").read_text())
    access = _must(record)
    assert access.method is AccessMethod.KUBERNETES_EXEC
    assert (access.namespace, access.pod) == ("default", "nginx-deployment-7998647bdf-phvq7")
    assert access.command == "bash"
    assert access.container == "nginx1"
    assert access.source_ips == ("192.168.99.1",)
    assert access.username == "minikube-user"
    assert access.stage == "ResponseStarted"
    assert access.outcome is Outcome.SUCCESS  # 101 Switching Protocols
    assert access.key == "ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6"


def test_falco_attach_capture_is_an_attach(data_dir: Path) -> None:
    record = json.loads((data_dir / "audit" / "falco__attach_pod.json").read_text())
    access = _must(record)
    assert access.method is AccessMethod.KUBERNETES_ATTACH
    assert access.container == "nginx1"
    assert access.command is None


def test_panther_records_without_any_timestamp_are_malformed(
    panther: dict[str, dict[str, Any]],
) -> None:
    with pytest.raises(RecordError, match="requestReceivedTimestamp"):
        _access(panther["EKS Exec Into Pod"])
    with pytest.raises(RecordError, match="timestamp"):
        _access(panther["GCP GKE Exec Into Pod"])


def test_panther_eks_exec_parses_once_it_has_a_time(panther: dict[str, dict[str, Any]]) -> None:
    record = panther["EKS kubectl cp from pod (requestURI format)"] | {
        "requestReceivedTimestamp": "2026-11-27T10:00:00Z"
    }
    access = _must(record)
    assert access.command == "tar cf - /app/secrets/credentials.json"
    assert access.source_ips == ("203.0.113.42",)
    assert access.key.startswith("synthetic:")  # Panther's record carries no auditID


def test_panther_aks_exec_takes_the_command_from_the_logged_request_object(
    panther: dict[str, dict[str, Any]],
) -> None:
    record = panther["AKS kubectl cp from pod with SSH keys"] | {"time": "2026-11-27T10:00:00Z"}
    access = _must(record)
    assert access.shape == "aks-diagnostic"
    assert access.command == "tar cf - /root/.ssh/id_rsa"
    assert access.container == "api"
    assert access.started_at == datetime(2026, 11, 27, 10, tzinfo=UTC)


def test_panther_aks_websocket_exec_keeps_the_whole_source_ip_chain(
    panther: dict[str, dict[str, Any]],
) -> None:
    record = panther["AKS Exec Into Pod (realistic)"] | {"time": "2026-11-27T10:00:00Z"}
    access = _must(record)
    assert (access.verb, access.method) == ("get", AccessMethod.KUBERNETES_EXEC)
    assert access.source_ips == ("20.43.245.209", "172.31.52.37")


def test_panther_gke_exec_reads_caller_ip_and_principal(panther: dict[str, dict[str, Any]]) -> None:
    record = panther["GCP GKE Exec Into Pod"] | {"timestamp": "2026-11-27T10:00:00Z"}
    access = _must(record)
    assert access.method is AccessMethod.KUBERNETES_EXEC
    assert (access.username, access.source_ips) == ("user@company.com", ("1.2.3.4",))
    assert (access.namespace, access.pod) == ("default", "nginx-pod")
    assert access.outcome is Outcome.SUCCESS  # authorizationInfo granted, no error status


@pytest.mark.parametrize("name", ["Pod Creation (Not Exec)", "Get Pod (Not Exec - no subresource)"])
def test_panther_negative_cases_are_not_access(
    panther: dict[str, dict[str, Any]], name: str
) -> None:
    assert _access(panther[name]) is None


@pytest.mark.parametrize(
    ("line", "method", "verb"),
    [
        (0, AccessMethod.KUBERNETES_EXEC, "create"),
        (2, AccessMethod.KUBERNETES_EXEC, "get"),  # WebSocket client
        (6, AccessMethod.KUBERNETES_ATTACH, "create"),
        (7, AccessMethod.KUBERNETES_PORT_FORWARD, "create"),
        (8, AccessMethod.KUBERNETES_PORT_FORWARD, "get"),
        (9, AccessMethod.KUBERNETES_DEBUG, "patch"),  # kubectl debug: ephemeral container
    ],
)
def test_each_pod_access_subresource_and_verb_maps_to_its_method(
    gpu_lab: list[dict[str, Any]], line: int, method: AccessMethod, verb: str
) -> None:
    access = _must(gpu_lab[line])
    assert (access.method, access.verb) == (method, verb)


@pytest.mark.parametrize("line", [1, 3, 4, 5])
def test_request_received_stage_logs_leases_and_pod_creation_are_not_access(
    gpu_lab: list[dict[str, Any]], line: int
) -> None:
    assert _access(gpu_lab[line]) is None


def test_websocket_port_forward_records_the_requested_ports(gpu_lab: list[dict[str, Any]]) -> None:
    assert _must(gpu_lab[8]).ports == "8888"
    assert _must(gpu_lab[7]).ports is None  # SPDY port-forward does not log the port


def test_debug_session_keeps_the_ephemeral_container_and_image(
    gpu_lab: list[dict[str, Any]],
) -> None:
    access = _must(gpu_lab[9])
    assert (access.container, access.debug_image) == ("debugger-x7z2q", "busybox:1.36")


def test_impersonation_makes_the_impersonated_user_the_principal(
    gpu_lab: list[dict[str, Any]],
) -> None:
    session = to_session(
        _must(gpu_lab[10]), cluster="gpu-lab", source="k8s", node=None, evidence=EVIDENCE
    )
    assert session.principal == "frank@example.com"
    assert session.attributes["real_user"] == "ops-bot"
    assert session.attributes["impersonated_groups"] == "neuron-users"
    assert session.attributes["groups"] == "system:authenticated,ops"
    assert session.attributes["command"] == "sh -c neuron-top"


def test_forbidden_exec_is_denied(gpu_lab: list[dict[str, Any]]) -> None:
    access = _must(gpu_lab[11])
    assert (access.code, access.outcome) == (403, Outcome.DENIED)


@pytest.mark.parametrize(
    ("code", "stage", "decision", "outcome"),
    [
        (101, "ResponseStarted", "allow", Outcome.SUCCESS),
        (200, "ResponseComplete", None, Outcome.SUCCESS),
        (401, "ResponseComplete", None, Outcome.DENIED),
        (403, "ResponseComplete", "forbid", Outcome.DENIED),
        (404, "ResponseComplete", "allow", Outcome.FAILED),
        (500, "ResponseComplete", "allow", Outcome.FAILED),
        (None, "ResponseComplete", "forbid", Outcome.DENIED),
        (None, "ResponseComplete", "allow", Outcome.UNKNOWN),
        (101, "Panic", "allow", Outcome.FAILED),
    ],
)
def test_response_code_decides_the_outcome(
    gpu_lab: list[dict[str, Any]],
    code: int | None,
    stage: str,
    decision: str | None,
    outcome: Outcome,
) -> None:
    event = dict(gpu_lab[0], stage=stage, annotations={"authorization.k8s.io/decision": decision})
    event["responseStatus"] = {"code": code} if code is not None else None
    assert _must(event).outcome is outcome


def test_session_resolved_to_a_node_names_it_as_the_instance(gpu_lab: list[dict[str, Any]]) -> None:
    node = NodeRef(node="ip-10-0-1-23.ec2.internal", region="us-east-1", basis="pod-index")
    session = to_session(
        _must(gpu_lab[0]), cluster="gpu-lab", source="k8s", node=node, evidence=EVIDENCE
    )
    assert (session.provider, session.account, session.region) == (
        "kubernetes",
        "gpu-lab",
        "us-east-1",
    )
    assert session.instance_id == "ip-10-0-1-23.ec2.internal"
    assert session.source_ip == "203.0.113.10"
    assert session.attributes["source_ip_chain"] == "203.0.113.10,10.0.0.5"
    assert session.attributes["node_resolved_by"] == "pod-index"
    assert session.key == "0b6c8e5a-1f0e-4a51-9d6f-5a7a11e10001"
    assert session.evidence == (EVIDENCE,)
    assert session.notes == ()


def test_unresolved_pod_keeps_pod_namespace_container_and_a_note(
    gpu_lab: list[dict[str, Any]],
) -> None:
    session = to_session(
        _must(gpu_lab[12]), cluster="gpu-lab", source="k8s", node=None, evidence=EVIDENCE
    )
    assert session.instance_id is None
    assert {k: session.attributes[k] for k in ("namespace", "pod", "container")} == {
        "namespace": "default",
        "pod": "nginx",
        "container": "nginx",
    }
    assert session.attributes["node_resolved_by"] == "unresolved"
    assert "default/nginx" in session.notes[0]


@pytest.mark.parametrize(
    ("username", "kind"),
    [
        ("system:serviceaccount:ml-team:runner", "serviceaccount"),
        ("ci@proj.iam.gserviceaccount.com", "serviceaccount"),
        ("system:node:dgx-07", "node"),
        ("system:admin", "system"),
        ("alice@example.com", "user"),
    ],
)
def test_principal_type_follows_the_username_convention(
    gpu_lab: list[dict[str, Any]], username: str, kind: str
) -> None:
    event = dict(gpu_lab[0], user={"username": username})
    session = to_session(_must(event), cluster="c", source="k8s", node=None, evidence=EVIDENCE)
    assert session.principal_type == kind


def test_later_stage_wins_and_keeps_the_earliest_start(gpu_lab: list[dict[str, Any]]) -> None:
    started = _must(gpu_lab[0])
    complete = _must(
        dict(gpu_lab[0], stage="ResponseComplete", stageTimestamp="2026-11-27T10:52:13Z")
    )
    merged, won = merge(started, complete)
    assert won is True
    assert merged.stage == "ResponseComplete"
    assert merged.started_at == started.started_at
    assert merged.ended_at == datetime(2026, 11, 27, 10, 52, 13, tzinfo=UTC)
    merged_back, won_back = merge(complete, started)
    assert won_back is False
    assert merged_back == merged


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"objectRef": "pods"}, "objectRef is a str"),
        ({"sourceIPs": "203.0.113.1"}, "sourceIPs is not a list of strings"),
        ({"user": ["alice"]}, "user is a list"),
        ({"responseStatus": {"code": "101"}}, "responseStatus.code is not an integer"),
        ({"requestReceivedTimestamp": "soon", "timestamp": None}, "not RFC 3339"),
    ],
)
def test_malformed_access_events_raise_record_errors_naming_the_field(
    gpu_lab: list[dict[str, Any]], patch: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordError, match=message):
        access_from(RawEvent("k8s", gpu_lab[0] | patch, "audit.k8s.io/v1"))


def test_exec_without_a_pod_name_is_malformed(gpu_lab: list[dict[str, Any]]) -> None:
    event = dict(
        gpu_lab[0], objectRef={"resource": "pods", "subresource": "exec", "namespace": "x"}
    )
    with pytest.raises(RecordError, match=r"objectRef\.namespace/name"):
        access_from(RawEvent("k8s", event, "audit.k8s.io/v1"))


def test_gke_operation_first_and_last_entries_merge_into_one_stream(data_dir: Path) -> None:
    lines = (data_dir / "audit" / "gke_cloud_audit.jsonl").read_text().splitlines()
    first, last = (_must(json.loads(line)) for line in lines[:2])
    assert first.key == last.key
    merged, _ = merge(first, last)
    assert merged.command == "bash"  # only the first entry logs the request
    assert merged.started_at == datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC)
    assert merged.ended_at == datetime(2026, 11, 27, 13, 30, tzinfo=UTC)


def test_gke_permission_denied_status_is_denied(data_dir: Path) -> None:
    line = (data_dir / "audit" / "gke_cloud_audit.jsonl").read_text().splitlines()[2]
    access = _must(json.loads(line))
    assert (access.outcome, access.source_ips) == (Outcome.DENIED, ("192.0.2.99",))
