"""Auth matrix: every route is classified; API routes answer 401 without (or with a bad)
token and 403 below their role; console pages redirect to the login without a session."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from agent.review.models import Role
from tests.agent.server.conftest import Service

PUBLIC = None
CONSOLE = "console"
# (method, path template) -> role needed (None: open; "console": session cookie)
ROUTES: dict[tuple[str, str], Role | str | None] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): Role.VIEWER,
    ("GET", "/openapi.json"): Role.VIEWER,
    ("GET", "/v1/findings"): Role.VIEWER,
    ("GET", "/v1/findings/export"): Role.VIEWER,
    ("GET", "/v1/findings/{finding_id}"): Role.VIEWER,
    ("POST", "/v1/findings/{finding_id}/review"): Role.REVIEWER,
    ("GET", "/v1/runs"): Role.VIEWER,
    ("GET", "/v1/trail/verify"): Role.VIEWER,
    ("GET", "/v1/exceptions"): Role.VIEWER,
    ("POST", "/v1/exceptions"): Role.ADMIN,
    ("POST", "/v1/exceptions/{exception_id}/expire"): Role.ADMIN,
    ("POST", "/v1/evaluate"): Role.VIEWER,
    ("POST", "/v1/ingest/{webhook}"): Role.REVIEWER,
    # The console: the login form is necessarily open (it holds no data); "/" redirects.
    ("GET", "/"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): PUBLIC,
    ("POST", "/console/logout"): CONSOLE,
    ("GET", "/console/static/{path}"): CONSOLE,
    ("GET", "/console/"): CONSOLE,
    ("GET", "/console/findings"): CONSOLE,
    ("GET", "/console/findings/{finding_id}"): CONSOLE,
    ("POST", "/console/findings/{finding_id}/review"): CONSOLE,
    ("GET", "/console/exceptions"): CONSOLE,
    ("POST", "/console/exceptions"): CONSOLE,
    ("POST", "/console/exceptions/{exception_id}/expire"): CONSOLE,
}
SAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "/v1/findings/{finding_id}/review": {"action": "comment", "note": "auth matrix"},
    "/v1/exceptions": {
        "scope": {"principal": "nobody@auth-matrix"},
        "owner": "o",
        "approver": "a",
        "justification": "j",
        "expires_at": "2099-01-01T00:00:00Z",
    },
    "/v1/evaluate": {"source_ip": "203.0.113.9"},
}


def _walk(routes: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, path) of the app, also inside lazily included routers (FastAPI >= 0.16x
    keeps ``include_router`` targets as wrappers around the original router)."""
    out = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.extend((m, prefix + route.path) for m in sorted(route.methods))
        elif hasattr(route, "original_router"):
            context = getattr(route, "include_context", None)
            out.extend(_walk(route.original_router.routes, prefix + getattr(context, "prefix", "")))
    return out


def _routes(service: Service) -> list[tuple[str, str]]:
    return _walk(service.app.routes)


def test_every_route_is_classified_in_the_matrix(service: Service) -> None:
    assert set(_routes(service)) == set(ROUTES)


def _call(service: Service, method: str, path: str, headers: dict[str, str]) -> int:
    fid = service.finding().id
    url = (
        path.replace("{finding_id}", fid)
        .replace("{exception_id}", "exc_missing")
        .replace("{webhook}", "kubernetes-audit")
        .replace("{path}", "console.css")
    )
    params = {"cluster": "c1"} if "ingest" in path else None
    body = SAMPLE_BODIES.get(path)
    response = service.client.request(
        method, url, headers=headers, json=body, params=params, follow_redirects=False
    )
    return response.status_code


API = sorted(k for k, v in ROUTES.items() if isinstance(v, Role))


@pytest.mark.parametrize(("method", "path"), API)
def test_api_routes_need_a_token(service: Service, method: str, path: str) -> None:
    assert _call(service, method, path, {}) == 401
    assert (
        _call(service, method, path, {"authorization": "Bearer cw_000000000000_" + "x" * 43}) == 401
    )
    assert _call(service, method, path, {"authorization": "Basic dXNlcjpwYXNz"}) == 401


@pytest.mark.parametrize(("method", "path"), API)
def test_api_routes_refuse_lower_roles_and_admit_the_needed_one(
    service: Service, method: str, path: str
) -> None:
    needed = ROUTES[(method, path)]
    assert isinstance(needed, Role)
    for role in Role:
        status = _call(service, method, path, service.auth(role))
        if role.allows(needed):
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)


def test_a_revoked_token_is_refused(service: Service) -> None:
    token, record = service.state.review.tokens.create(
        name="short-lived", role=Role.ADMIN, created_by="test"
    )
    headers = {"authorization": f"Bearer {token}"}
    assert service.client.get("/v1/runs", headers=headers).status_code == 200

    service.state.review.tokens.revoke(record.id)

    assert service.client.get("/v1/runs", headers=headers).status_code == 401


def test_unauthenticated_answers_say_how_to_authenticate(service: Service) -> None:
    response = service.client.get("/v1/findings")

    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "missing bearer token"


def test_recording_an_evaluation_needs_the_reviewer_role(service: Service) -> None:
    body = {"source_ip": "203.0.113.9", "record": True}

    assert (
        service.client.post(
            "/v1/evaluate", json=body, headers=service.auth(Role.VIEWER)
        ).status_code
        == 403
    )
    assert (
        service.client.post(
            "/v1/evaluate", json=body, headers=service.auth(Role.REVIEWER)
        ).status_code
        == 200
    )


@pytest.mark.parametrize(("method", "path"), sorted(k for k, v in ROUTES.items() if v == CONSOLE))
def test_console_pages_redirect_to_the_login_without_a_session(
    service: Service, method: str, path: str
) -> None:
    service.client.cookies.clear()
    response = service.client.request(
        method,
        path.replace("{finding_id}", "f" * 32)
        .replace("{exception_id}", "exc_x")
        .replace("{path}", "console.css"),
        follow_redirects=False,
        data={"csrf": "x"} if method == "POST" else None,
    )

    assert response.status_code == 303
    assert response.headers["location"].endswith("/console/login")


def test_health_endpoints_are_open(service: Service) -> None:
    assert service.client.get("/healthz").json() == {"status": "ok"}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
