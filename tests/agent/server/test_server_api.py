"""HTTP API behaviour on the real ASGI app: findings, review, exceptions, exports, runs,
evaluate, webhook ingestion, limits, headers and metrics."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.models import Severity
from agent.review.models import Role
from tests.agent.server.conftest import Service

K8S_EVENTLIST = Path(__file__).resolve().parents[2] / "data" / "k8s" / "webhook" / "eventlist.json"


def _principal() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


# -- findings -------------------------------------------------------------------------


def test_findings_filter_by_text_status_severity_and_country(service: Service) -> None:
    who = _principal()
    high = service.finding(principal=who)
    low = service.finding(principal=who, severity=Severity.LOW, country="IR")

    def get(**params: str) -> Any:
        return service.client.get("/v1/findings", params=params, headers=service.auth(Role.VIEWER))

    everything = get(q=who.upper()).json()["items"]
    assert [f["id"] for f in everything] == [high.id, low.id]  # most severe first
    assert [f["id"] for f in get(q=who, severity="medium").json()["items"]] == [high.id]
    assert [f["id"] for f in get(q=who, country="ir").json()["items"]] == [low.id]
    assert get(q=who, status="resolved").json()["items"] == []
    assert get(country="IRN").status_code == 422


def test_cursor_pagination_walks_every_finding_once(service: Service) -> None:
    who = _principal()
    made = {service.finding(principal=who, severity=s).id for s in Severity for _ in range(2)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": who, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = service.client.get("/v1/findings", params=params, headers=service.auth()).json()
        seen.extend(f["id"] for f in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(made) == 10 and set(seen) == made
    bad = service.client.get("/v1/findings", params={"cursor": "!!"}, headers=service.auth())
    assert bad.status_code == 400 and bad.json()["code"] == "usage_error"


def test_a_finding_comes_with_its_evidence_and_review_history(service: Service) -> None:
    finding = service.finding()
    service.client.post(
        f"/v1/findings/{finding.id}/review",
        json={"action": "acknowledge", "note": "looking"},
        headers=service.auth(Role.REVIEWER),
    )

    body = service.client.get(
        f"/v1/findings/{finding.id}", headers=service.auth(Role.VIEWER)
    ).json()

    assert body["finding"]["session"]["evidence"][0]["locator"] == "trail.json"
    assert body["session_id"] == finding.session.session_id
    (entry,) = body["history"]
    assert entry["action"] == "acknowledge" and entry["actor"].startswith("reviewer-bot")
    missing = service.client.get("/v1/findings/" + "0" * 32, headers=service.auth())
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_review_flow_resolve_then_conflict_then_reopen(service: Service) -> None:
    finding = service.finding()
    url = f"/v1/findings/{finding.id}/review"
    headers = service.auth(Role.REVIEWER)

    resolved = service.client.post(
        url, json={"action": "resolve", "reason": "false-positive", "note": "VPN"}, headers=headers
    )
    again = service.client.post(
        url, json={"action": "resolve", "reason": "duplicate"}, headers=headers
    )
    no_reason = service.client.post(
        url, json={"action": "reopen", "reason": "duplicate"}, headers=headers
    )
    reopened = service.client.post(url, json={"action": "reopen"}, headers=headers)
    unknown = service.client.post(url, json={"action": "except"}, headers=headers)

    assert resolved.status_code == 200
    assert resolved.json()["finding"]["status"] == "resolved"
    assert resolved.json()["entry"]["details"] == {"reason": "false-positive"}
    assert again.status_code == 409 and "cannot resolve" in again.json()["detail"]
    assert no_reason.status_code == 400
    assert reopened.json()["finding"]["status"] == "open"
    assert unknown.status_code == 422
    assert service.client.get("/v1/trail/verify", headers=service.auth()).json()["ok"] is True


def test_runs_are_listed_with_their_scope_errors(service: Service) -> None:
    from agent.models import AuditRun, RunStatus, ScopeError

    run_id = f"run-{uuid.uuid4().hex[:8]}"
    service.state.store.save_run(
        AuditRun(
            id=run_id,
            started_at=service.clock() + timedelta(days=365),
            status=RunStatus.PARTIAL,
            scope_errors=(
                ScopeError(source="aws", scope="eu-west-1", code="denied", message="no"),
            ),
        )
    )

    runs = service.client.get("/v1/runs", headers=service.auth(Role.VIEWER)).json()["items"]

    assert runs[0]["id"] == run_id and runs[0]["scope_errors"][0]["scope"] == "eu-west-1"


# -- exports --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media"),
    [
        ("csv", "text/csv"),
        ("jsonl", "application/x-ndjson"),
        ("ocsf", "application/json"),
        ("html", "text/html"),
    ],
)
def test_exports_are_served_in_every_format(service: Service, fmt: str, media: str) -> None:
    who = _principal()
    finding = service.finding(principal=who)

    response = service.client.get(
        "/v1/findings/export", params={"format": fmt, "q": who}, headers=service.auth(Role.VIEWER)
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert "attachment" in response.headers["content-disposition"]
    if fmt == "csv":
        assert [r["id"] for r in csv.DictReader(io.StringIO(response.text))] == [finding.id]
    elif fmt == "ocsf":
        assert [e["finding_info"]["uid"] for e in response.json()] == [finding.id]
    else:
        assert finding.id in response.text


# -- exceptions -----------------------------------------------------------------------


def test_exception_lifecycle_over_the_api(service: Service) -> None:
    who = _principal()
    finding = service.finding(principal=who)
    body = {
        "scope": {"principal": who},
        "owner": "gpu-platform",
        "approver": "ciso",
        "justification": "licensed partner",
        "expires_at": (service.clock() + timedelta(days=10)).isoformat(),
    }

    created = service.client.post("/v1/exceptions", json=body, headers=service.auth(Role.ADMIN))
    assert created.status_code == 201 and created.json()["finding_ids"] == [finding.id]
    exc_id = created.json()["exception"]["id"]
    listed = service.client.get(
        "/v1/exceptions", params={"active": True}, headers=service.auth(Role.VIEWER)
    )
    assert exc_id in [e["id"] for e in listed.json()["items"]]

    expired = service.client.post(
        f"/v1/exceptions/{exc_id}/expire", headers=service.auth(Role.ADMIN)
    )
    assert expired.json()["finding_ids"] == [finding.id]
    history = service.client.get(f"/v1/findings/{finding.id}", headers=service.auth()).json()[
        "history"
    ]
    assert [e["action"] for e in history] == ["except", "reflag"]
    assert (
        service.client.post(f"/v1/exceptions/{exc_id}/expire", headers=service.auth()).status_code
        == 400
    )
    assert (
        service.client.post("/v1/exceptions/exc_nope/expire", headers=service.auth()).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("patch", "status"),
    [
        ({"expires_at": "2000-01-01T00:00:00Z"}, 400),
        ({"scope": {}}, 422),
        ({"scope": {"cidr": "not-a-net"}}, 400),
        ({"expires_at": None}, 422),
        ({"colour": "blue"}, 422),
    ],
)
def test_bad_exception_requests_are_refused(service: Service, patch: dict, status: int) -> None:  # type: ignore[type-arg]
    body = {
        "scope": {"country": "CN"},
        "owner": "o",
        "approver": "a",
        "justification": "j",
        "expires_at": (service.clock() + timedelta(days=1)).isoformat(),
        **patch,
    }

    assert (
        service.client.post("/v1/exceptions", json=body, headers=service.auth()).status_code
        == status
    )


def test_too_far_expiry_is_bounded_by_settings(service: Service) -> None:
    body = {
        "scope": {"country": "CN"},
        "owner": "o",
        "approver": "a",
        "justification": "j",
        "expires_at": (service.clock() + timedelta(days=91)).isoformat(),
    }

    response = service.client.post("/v1/exceptions", json=body, headers=service.auth())

    assert response.status_code == 400 and "more than 90 days" in response.json()["detail"]


# -- evaluate -------------------------------------------------------------------------


def _evaluate(service: Service, role: Role = Role.VIEWER, **body: object) -> dict:  # type: ignore[type-arg]
    response = service.client.post("/v1/evaluate", json=body, headers=service.auth(role))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_evaluate_denies_a_d5_source_to_an_h100_type_with_reasons(service: Service) -> None:
    answer = _evaluate(
        service, source_ip="1.2.4.8", provider="aws", instance_type="p5.48xlarge", principal="a"
    )

    assert answer["decision"] == "deny" and answer["allow"] is False
    assert answer["ip"]["country"] == "CN"
    assert answer["accelerators"] == [{"model": "nvidia-h100", "count": 8.0}]
    assert any(m["severity"] in ("high", "critical") for m in answer["matched"])
    assert all(m["reasons"] and m["finding_id"] for m in answer["matched"])
    assert len(answer["decision_id"]) == 32 and answer["recorded"] is False


def test_evaluate_allows_a_us_source_and_resolves_the_inventory(service: Service) -> None:
    answer = _evaluate(
        service,
        source_ip="52.94.76.1",
        provider="aws",
        account="111122223333",
        instance_id="i-0a1b2c3d4e5f60001",
    )

    assert answer["decision"] == "allow" and answer["matched"] == []
    assert answer["instance_in_inventory"] is True


def test_an_active_exception_turns_a_deny_into_an_allow(service: Service) -> None:
    who = _principal()
    service.client.post(
        "/v1/exceptions",
        json={
            "scope": {"principal": who},
            "owner": "o",
            "approver": "a",
            "justification": "licensed",
            "expires_at": (service.clock() + timedelta(days=1)).isoformat(),
        },
        headers=service.auth(),
    )

    answer = _evaluate(
        service, source_ip="1.2.4.8", provider="aws", instance_type="p5.48xlarge", principal=who
    )

    assert answer["decision"] == "allow" and answer["matched"]
    assert all(m["excepted"] and m["exception_id"].startswith("exc_") for m in answer["matched"])


def test_record_true_stores_the_session_findings_and_the_decision(service: Service) -> None:
    who = _principal()

    answer = _evaluate(
        service,
        Role.REVIEWER,
        source_ip="1.2.4.8",
        provider="aws",
        instance_type="p5.48xlarge",
        principal=who,
        record=True,
    )

    assert answer["recorded"] is True
    stored = service.client.get("/v1/findings", params={"q": who}, headers=service.auth()).json()
    assert {f["id"] for f in stored["items"]} == {m["finding_id"] for m in answer["matched"]}
    saved = service.state.review.queries.get_decision(answer["decision_id"])
    assert saved is not None and saved["decision"] == "deny"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"source_ip": ""},
        {"source_ip": "1.2.3.4", "method": "teleport"},
        {"source_ip": "1.2.3.4", "extra": 1},
        {"source_ip": "x" * 101},
    ],
)
def test_malformed_evaluate_requests_are_422(service: Service, body: dict) -> None:  # type: ignore[type-arg]
    assert service.client.post("/v1/evaluate", json=body, headers=service.auth()).status_code == 422


# -- ingest ---------------------------------------------------------------------------


def test_kubernetes_audit_webhook_sessions_are_evaluated_and_stored(service: Service) -> None:
    response = service.client.post(
        "/v1/ingest/kubernetes-audit",
        params={"cluster": "gpu-lab"},
        content=K8S_EVENTLIST.read_bytes(),
        headers={**service.auth(Role.REVIEWER), "content-type": "application/json"},
    )

    body = response.json()
    assert response.status_code == 200
    assert body["sessions"] == 2
    assert body["item_errors"] == ["items[4]: sourceIPs is not a list of strings"]
    stored = list(service.state.store.list_sessions())
    assert {s.source for s in stored} >= {"kubernetes-webhook"}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not an EventList object"),
        (b'{"kind": "PodList", "apiVersion": "v1"}', "expected 'EventList'"),
    ],
)
def test_malformed_webhook_bodies_are_400_and_counted(
    service: Service, content: bytes, fragment: str
) -> None:
    def rejected() -> float:
        value = service.app.state.metrics.registry.get_sample_value(
            "chipwarden_ingest_rejected_total", {"webhook": "kubernetes-audit"}
        )
        return value or 0.0

    before = rejected()
    response = service.client.post(
        "/v1/ingest/kubernetes-audit",
        params={"cluster": "c"},
        content=content,
        headers={**service.auth(Role.REVIEWER), "content-type": "application/json"},
    )

    assert response.status_code == 400 and fragment in response.json()["detail"]
    assert rejected() == before + 1


def test_an_unknown_webhook_is_404(service: Service) -> None:
    response = service.client.post(
        "/v1/ingest/carrier-pigeon", params={"cluster": "c"}, content=b"{}", headers=service.auth()
    )
    assert response.status_code == 404


# -- limits, headers, metrics, openapi ------------------------------------------------


def test_request_bodies_over_the_limit_are_413(service: Service) -> None:
    big = {"source_ip": "1.2.3.4", "attributes": {"k": "x" * 70_000}}
    response = service.client.post(
        "/v1/evaluate",
        content=json.dumps(big),
        headers={**service.auth(), "content-type": "application/json"},
    )

    assert response.status_code == 413
    chunked = service.client.post(
        "/v1/evaluate",
        content=iter([b'{"source_ip": "1.2.3.4", "attributes": {"k": "', b"x" * 70_000, b'"}}']),
        headers={**service.auth(), "content-type": "application/json"},
    )
    assert chunked.status_code == 413


def test_api_responses_carry_security_headers_and_no_store(service: Service) -> None:
    response = service.client.get("/v1/runs", headers=service.auth())

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"


def test_metrics_expose_evaluations_findings_latency_and_geo(service: Service) -> None:
    _evaluate(service, source_ip="1.2.4.8", provider="aws", instance_type="p5.48xlarge")

    text = service.client.get("/metrics", headers=service.auth(Role.VIEWER)).text

    assert 'chipwarden_sessions_evaluated_total{path="evaluate"}' in text
    assert 'chipwarden_decisions_total{decision="deny"}' in text
    assert "chipwarden_findings{" in text
    assert (
        'chipwarden_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/evaluate"'
        in text
    )
    assert "chipwarden_geo_database_info{" in text
    assert "chipwarden_store_up 1.0" in text


def test_openapi_is_published_for_token_holders(service: Service) -> None:
    spec = service.client.get("/openapi.json", headers=service.auth(Role.VIEWER)).json()

    assert spec["openapi"].startswith("3.")
    assert {"/v1/evaluate", "/v1/findings", "/v1/findings/{finding_id}/review"} <= set(
        spec["paths"]
    )
    assert not any(path.startswith("/console") for path in spec["paths"])


def test_ingested_findings_are_notified_after_the_response(
    service: Service, httpserver: Any
) -> None:
    from agent.notify.dispatch import NotificationDispatcher, NotifierTarget

    received: list[dict[str, Any]] = []

    def handler(request: Any) -> Any:
        from werkzeug import Response

        received.append(json.loads(request.data))
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(handler)
    target = NotifierTarget(url=httpserver.url_for("/hook"), min_severity=Severity.INFO)
    service.state.dispatcher = NotificationDispatcher(
        store=service.state.store, targets=[target], clock=service.clock
    )
    body = json.loads(K8S_EVENTLIST.read_text())
    for item in body["items"]:  # make the sessions (and so the findings) new for this test
        if isinstance(item, dict) and "auditID" in item:
            item["auditID"] = f"{item['auditID']}-{uuid.uuid4().hex[:6]}"
        if isinstance(item, dict) and isinstance(item.get("sourceIPs"), list):
            item["sourceIPs"] = ["1.2.4.8"]
    try:
        response = service.client.post(
            "/v1/ingest/kubernetes-audit",
            params={"cluster": f"c-{uuid.uuid4().hex[:6]}"},
            json=body,
            headers=service.auth(Role.REVIEWER),
        )
    finally:
        service.state.dispatcher = None

    assert response.status_code == 200 and response.json()["findings"] > 0
    sent = {f["id"] for b in received for f in b["findings"]}
    assert len(sent) == response.json()["findings"]
