"""The web console through the real app: token login to a signed session, CSRF on every
form, the queue, a finding page with review actions, exceptions, and strict headers."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from agent.review.models import Role
from tests.agent.server.conftest import Service


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture
def browser(service: Service) -> Iterator[TestClient]:
    """A separate cookie jar on the same app."""
    with TestClient(service.app, base_url="http://127.0.0.1") as client:
        yield client


def _login(client: TestClient, token: str) -> None:
    form = client.get("/console/login")
    response = client.post(
        "/console/login", data={"token": token, "csrf": _csrf(form.text)}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def test_login_with_a_token_starts_a_session_without_keeping_the_token(
    service: Service, browser: TestClient
) -> None:
    _login(browser, service.tokens[Role.VIEWER])

    cookie = browser.cookies.get("chipwarden_console") or ""
    page = browser.get("/console/")
    assert page.status_code == 200 and "Dashboard" in page.text
    assert service.tokens[Role.VIEWER] not in cookie
    assert service.tokens[Role.VIEWER].split("_", 2)[2] not in page.text


def test_a_wrong_token_or_missing_csrf_is_refused(service: Service, browser: TestClient) -> None:
    form = browser.get("/console/login")
    wrong = browser.post("/console/login", data={"token": "cw_nope", "csrf": _csrf(form.text)})
    no_csrf = browser.post("/console/login", data={"token": service.tokens[Role.ADMIN]})

    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert no_csrf.status_code == 403
    assert browser.get("/console/", follow_redirects=False).status_code == 303


def test_the_queue_lists_open_findings_and_sorts_by_any_column(
    service: Service, browser: TestClient
) -> None:
    who = f"queue-{uuid.uuid4().hex[:8]}"
    first = service.finding(principal=who + "-a")
    second = service.finding(principal=who + "-b", country="IR")
    _login(browser, service.tokens[Role.VIEWER])

    page = browser.get("/console/findings", params={"q": who, "sort": "principal", "dir": "asc"})
    desc = browser.get("/console/findings", params={"q": who, "sort": "principal", "dir": "desc"})

    assert page.text.index(first.id) < page.text.index(second.id)
    assert desc.text.index(second.id) < desc.text.index(first.id)
    assert (
        browser.get("/console/findings", params={"q": who, "country": "IR"}).text.count(
            "finding-link"
        )
        == 1
    )


def test_a_reviewer_resolves_a_finding_from_its_page_and_sees_the_trail_entry(
    service: Service, browser: TestClient
) -> None:
    finding = service.finding()
    _login(browser, service.tokens[Role.REVIEWER])
    page = browser.get(f"/console/findings/{finding.id}")
    assert 'id="finding-map"' in page.text and "nvidia-h100" in page.text

    response = browser.post(
        f"/console/findings/{finding.id}/review",
        data={
            "action": "resolve",
            "reason": "false-positive",
            "note": "VPN exit",
            "csrf": _csrf(page.text),
        },
    )

    assert response.status_code == 200
    assert 'id="status">resolved' in response.text
    assert re.search(r'class="trail-action">resolve<.*reason=false-positive', response.text, re.S)


def test_review_forms_need_the_csrf_token_and_the_reviewer_role(
    service: Service, browser: TestClient
) -> None:
    finding = service.finding()
    _login(browser, service.tokens[Role.VIEWER])
    page = browser.get(f"/console/findings/{finding.id}")
    assert "review-form" not in page.text  # viewers see no review form

    as_viewer = browser.post(
        f"/console/findings/{finding.id}/review",
        data={"action": "acknowledge", "csrf": _csrf(page.text)},
    )
    assert as_viewer.status_code == 403
    _login(browser, service.tokens[Role.REVIEWER])
    no_csrf = browser.post(f"/console/findings/{finding.id}/review", data={"action": "acknowledge"})
    assert no_csrf.status_code == 403


def test_an_invalid_action_is_shown_on_the_page_not_applied(
    service: Service, browser: TestClient
) -> None:
    finding = service.finding()
    _login(browser, service.tokens[Role.REVIEWER])
    page = browser.get(f"/console/findings/{finding.id}")

    response = browser.post(
        f"/console/findings/{finding.id}/review",
        data={"action": "resolve", "csrf": _csrf(page.text)},
    )

    assert 'id="error"' in response.text and "needs a reason" in response.text
    assert service.state.store.get_finding(finding.id).status.value == "open"  # type: ignore[union-attr]


def test_admins_create_and_expire_exceptions_from_the_exceptions_page(
    service: Service, browser: TestClient
) -> None:
    who = f"exc-{uuid.uuid4().hex[:8]}"
    finding = service.finding(principal=who)
    _login(browser, service.tokens[Role.ADMIN])
    page = browser.get("/console/exceptions")
    expires = (service.clock() + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")

    created = browser.post(
        "/console/exceptions",
        data={
            "csrf": _csrf(page.text),
            "scope_principal": who,
            "owner": "o",
            "approver": "a",
            "justification": "partner",
            "expires_at": expires,
        },
    )
    assert created.status_code == 200 and "1 finding(s) excepted" in created.text
    assert service.state.store.get_finding(finding.id).status.value == "excepted"  # type: ignore[union-attr]
    exc_id = re.findall(r"<code>(exc_[0-9a-f]+)</code>", created.text)[-1]

    expired = browser.post(
        f"/console/exceptions/{exc_id}/expire", data={"csrf": _csrf(created.text)}
    )
    assert expired.status_code == 200 and "flagged again" in expired.text


def test_console_pages_get_a_strict_content_security_policy(
    service: Service, browser: TestClient
) -> None:
    login = browser.get("/console/login")
    _login(browser, service.tokens[Role.VIEWER])
    page = browser.get("/console/")

    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    assert re.search(r"style-src 'self' 'nonce-[\w-]+'", login.headers["content-security-policy"])
    assert page.headers["x-frame-options"] == "DENY"
    cookie = login.headers.get("set-cookie", "")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert (
        browser.get("/console/static/console.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert browser.get("/console/static/other.txt").status_code == 404
