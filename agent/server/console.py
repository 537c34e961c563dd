"""The web console: server-rendered Jinja2 pages over the same services as the API.

Login exchanges an API token for a signed session cookie (the token is not kept); every form
carries the session's CSRF token; pages get a strict Content-Security-Policy (the login page
adds a nonce for its inline style). JavaScript only enhances (row links, field toggles).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from agent.errors import UsageError
from agent.export.worldmap import render_timeline, render_world_map
from agent.models import FindingStatus, Severity, ensure_utc
from agent.review.exceptions import ExceptionRequest
from agent.review.models import USER_ACTIONS, ExceptionScope, ResolveReason, ReviewAction, Role
from agent.review.workflow import ReviewRequest
from agent.server.auth import (
    Caller,
    check_csrf,
    console_caller,
    console_login,
    csrf_token,
    get_state,
)
from agent.server.middleware import CONSOLE_CSP
from agent.server.ratelimit import record_auth_failure
from agent.store.service_queries import FindingQuery

__all__ = ["router", "templates"]

log = structlog.get_logger(__name__)

_HERE = resources.files("agent.server")
templates = Jinja2Templates(directory=str(_HERE / "templates"))
router = APIRouter(prefix="/console", include_in_schema=False)

Viewer = Annotated[Caller, Depends(console_caller(Role.VIEWER))]
Reviewer = Annotated[Caller, Depends(console_caller(Role.REVIEWER))]
Admin = Annotated[Caller, Depends(console_caller(Role.ADMIN))]
SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
STATUSES = [s.value for s in FindingStatus]
QUEUE_COLUMNS = (
    ("severity", "Severity"),
    ("time", "When (UTC)"),
    ("country", "Country"),
    ("ip", "Source IP"),
    ("principal", "Principal"),
    ("provider", "Provider"),
    ("instance", "Target"),
    ("policy", "Policy"),
    ("status", "Status"),
)
_SORT_KEYS: dict[str, Any] = {
    "severity": lambda f: (f.severity.rank, f.last_seen),
    "time": lambda f: f.session.started_at,
    "country": lambda f: f.ip.country or "",
    "ip": lambda f: f.session.source_ip or "",
    "principal": lambda f: f.session.principal or "",
    "provider": lambda f: f.session.provider,
    "instance": lambda f: f.instance.id or "",
    "policy": lambda f: f.policy_id,
    "status": lambda f: f.status.value,
}
MAX_SORTED = 500


def _page(
    request: Request, name: str, caller: Caller, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    context = {"caller": caller, "csrf": csrf_token(request), "error": None, "notice": None}
    context.update(ctx)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


# -- login / logout -------------------------------------------------------------------


def _login_page(
    request: Request, *, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": csrf_token(request), "error": error, "nonce": nonce},
        status_code=status_code,
    )
    response.headers["content-security-policy"] = CONSOLE_CSP.replace(
        "style-src 'self'", f"style-src 'self' 'nonce-{nonce}'"
    )
    return response


@router.get("/login", name="console_login")
def login_form(request: Request) -> HTMLResponse:
    """The token login form."""
    return _login_page(request)


@router.post("/login", name="console_login_submit")
def login_submit(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Exchange a token for a session cookie."""
    check_csrf(request, csrf)
    found = get_state(request).review.tokens.verify(token.strip())
    if found is None:
        log.info("console_login_failed")
        if token.strip():  # like the API, only presented credentials count
            record_auth_failure(request.app.state, request.scope, reason="console_login")
        return _login_page(request, error="That token is not valid.", status_code=401)
    console_login(request, found)
    log.info("console_login", token_id=found.id, role=found.role.value)
    return RedirectResponse(request.url_for("console_dashboard"), status_code=303)


@router.post("/logout", name="console_logout")
def logout(
    request: Request, _caller: Viewer, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """End the console session."""
    check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse(request.url_for("console_login"), status_code=303)


@router.get("/static/{path}", name="console_static")
def static(path: str, _caller: Viewer) -> Response:
    """The console's CSS and JS (logged-in sessions only)."""
    allowed = {"console.css": "text/css", "console.js": "text/javascript"}
    if path not in allowed:
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(str(_HERE / "static" / path), media_type=allowed[path])


# -- pages ----------------------------------------------------------------------------


@router.get("/", name="console_dashboard")
def dashboard(request: Request, caller: Viewer) -> HTMLResponse:
    """Counts by severity, country, provider and day, and the world map."""
    q = get_state(request).review.queries
    open_query = FindingQuery(status=FindingStatus.OPEN)
    by_country = q.counts("country")
    return _page(
        request,
        "dashboard.html",
        caller,
        severities=SEVERITIES,
        open_count=sum(q.counts("status", open_query).values()),
        by_severity=q.counts("severity", open_query),
        by_country=by_country,
        by_provider=q.counts("provider"),
        by_status=q.counts("status"),
        active_exceptions=len(get_state(request).review.exceptions.list(active_only=True)),
        world_map=render_world_map(
            {k: v for k, v in by_country.items() if k != "unknown"},
            worst=q.worst_by_country(),
            title="Findings by source country",
        ),
        timeline=render_timeline(q.daily()),
        runs=get_state(request).store.list_runs(limit=5),
    )


@router.get("/findings", name="console_findings")
def queue(
    request: Request,
    caller: Viewer,
    status: FindingStatus | None = None,
    severity: Severity | None = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
    provider: str | None = None,
    policy: str | None = None,
    q: str | None = None,
    sort: str = "severity",
    dir: str = "desc",
    cursor: str | None = None,
) -> HTMLResponse:
    """The queue: filterable, sortable by any column (default: open, worst first)."""
    params = dict(request.query_params)
    if "status" not in params:
        status = FindingStatus.OPEN
    sort = sort if sort in _SORT_KEYS else "severity"
    direction = "asc" if dir == "asc" else "desc"
    query = FindingQuery(
        status=status,
        severity=severity,
        country=(country or None) and country.upper(),
        provider=provider or None,
        policy=policy or None,
        text=q or None,
    )
    queries = get_state(request).review.queries
    default_order = sort == "severity" and direction == "desc"
    if default_order:
        page = queries.page(query, limit=100, cursor=cursor)
        items, next_cursor, truncated = page.items, page.next_cursor, False
    else:
        page = queries.page(query, limit=MAX_SORTED)
        items = sorted(page.items, key=_SORT_KEYS[sort], reverse=direction == "desc")
        next_cursor, truncated = None, page.next_cursor is not None
    shown = {
        "status": status.value if status else "",
        "severity": severity.value if severity else "",
        "country": country or "",
        "provider": provider or "",
        "policy": policy or "",
        "q": q or "",
    }

    def sort_link(key: str) -> str:
        flip = "asc" if sort == key and direction == "desc" else "desc"
        return "?" + urlencode({**shown, "sort": key, "dir": flip})

    return _page(
        request,
        "findings.html",
        caller,
        items=items,
        f=shown,
        statuses=STATUSES,
        severities=SEVERITIES,
        columns=QUEUE_COLUMNS,
        sort=sort,
        direction=direction,
        sort_link=sort_link,
        next_cursor=next_cursor,
        next_link="?" + urlencode({**shown, "cursor": next_cursor or ""}),
        truncated=truncated,
    )


def _finding_page(request: Request, caller: Caller, finding_id: str, **ctx: Any) -> HTMLResponse:
    state = get_state(request)
    finding = state.review.finding(finding_id)
    country = finding.ip.country
    return _page(
        request,
        "finding.html",
        caller,
        x=finding,
        history=state.review.history(finding_id),
        mini_map=render_world_map(
            {country: 1} if country else {},
            worst={country: finding.severity.value} if country else {},
            title=f"Source: {country or 'unknown'}",
            element_id="finding-map",
        ),
        can_review=caller.role.allows(Role.REVIEWER),
        actions=[a.value for a in USER_ACTIONS],
        reasons=[r.value for r in ResolveReason],
        **ctx,
    )


@router.get("/findings/{finding_id}", name="console_finding")
def finding_page(request: Request, finding_id: str, caller: Viewer) -> HTMLResponse:
    """Evidence, map position, review actions and the trail of one finding."""
    return _finding_page(request, caller, finding_id)


@router.post("/findings/{finding_id}/review", name="console_review")
def review(
    request: Request,
    finding_id: str,
    caller: Reviewer,
    action: Annotated[str, Form(max_length=40)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=40)] = "",
    assignee: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Record one review action from the finding page."""
    check_csrf(request, csrf)
    state = get_state(request)
    try:
        chosen = ReviewAction(action)
        if chosen not in USER_ACTIONS:
            raise ValueError(action)
        req = ReviewRequest(
            action=chosen,
            actor=caller.actor,
            at=state.clock(),
            note=note.strip(),
            reason=ResolveReason(reason) if reason and chosen is ReviewAction.RESOLVE else None,
            assignee=assignee.strip() if chosen is ReviewAction.ASSIGN else None,
        )
        state.review.review(finding_id, req)
    except (UsageError, ValueError) as exc:
        message = exc.message if isinstance(exc, UsageError) else f"unknown value {exc}"
        if getattr(exc, "code", "") == "not_found":
            raise HTTPException(status_code=404, detail=message) from exc
        return _finding_page(request, caller, finding_id, error=message)
    url = request.url_for("console_finding", finding_id=finding_id)
    return RedirectResponse(f"{url}#trail", status_code=303)


@router.get("/exceptions", name="console_exceptions")
def exceptions_page(request: Request, caller: Viewer) -> HTMLResponse:
    """Exceptions with their scope and expiry; admins can create and expire them."""
    return _exceptions(request, caller)


def _exceptions(
    request: Request, caller: Caller, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    state = get_state(request)
    return _page(
        request,
        "exceptions.html",
        caller,
        status_code=status_code,
        items=state.review.exceptions.list(),
        now=state.clock(),
        is_admin=caller.role.allows(Role.ADMIN),
        scope_fields=["principal", "instance", "account", "cidr", "country", "policy"],
        max_days=state.review.exceptions.max_days,
        **ctx,
    )


@router.post("/exceptions", name="console_exception_create")
async def exception_create(request: Request, caller: Admin) -> Response:
    """Create an exception from the form."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    state = get_state(request)
    scope = {
        k: str(form.get(f"scope_{k}", "")).strip() or None
        for k in ("principal", "instance", "account", "cidr", "country", "policy")
    }
    try:
        expires = ensure_utc(datetime.fromisoformat(str(form.get("expires_at", ""))))
        body = ExceptionRequest(
            scope=ExceptionScope(**scope),
            owner=str(form.get("owner", "")),
            approver=str(form.get("approver", "")),
            justification=str(form.get("justification", "")),
            expires_at=expires,
        )
        outcome = state.review.exceptions.create(body, actor=caller.actor, origin="console")
    except (UsageError, ValidationError, ValueError) as exc:
        message = exc.message if isinstance(exc, UsageError) else str(exc).splitlines()[0]
        if isinstance(exc, ValidationError):
            message = "; ".join(e["msg"] for e in exc.errors())
        return _exceptions(request, caller, status_code=400, error=message)
    return _exceptions(
        request,
        caller,
        notice=f"Exception {outcome.record.id} created; "
        f"{len(outcome.finding_ids)} finding(s) excepted.",
    )


@router.post("/exceptions/{exception_id}/expire", name="console_exception_expire")
def exception_expire(
    request: Request,
    exception_id: str,
    caller: Admin,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """End an exception now."""
    check_csrf(request, csrf)
    try:
        outcome = get_state(request).review.exceptions.expire_now(exception_id, actor=caller.actor)
    except UsageError as exc:
        return _exceptions(request, caller, status_code=400, error=exc.message)
    return _exceptions(
        request,
        caller,
        notice=f"Exception {exception_id} expired; "
        f"{len(outcome.finding_ids)} finding(s) flagged again.",
    )
