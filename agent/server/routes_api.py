"""Health, readiness, metrics, findings, runs, reviews, exports and trail verification."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from agent.errors import ChipwardenError
from agent.export import EXPORTERS, export_findings
from agent.models import FindingStatus, Severity
from agent.review.models import ResolveReason, ReviewAction, Role, TrailReport
from agent.review.workflow import ReviewRequest
from agent.server.auth import Caller, get_state, require
from agent.server.schemas import (
    ErrorBody,
    FindingDetail,
    FindingList,
    HealthBody,
    ReadyBody,
    ReviewBody,
    ReviewResult,
    RunList,
)
from agent.server.state import ServiceState
from agent.store.service_queries import FindingQuery

__all__ = ["ERRORS", "router"]

router = APIRouter()

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, invalid or revoked token"},
    403: {"model": ErrorBody, "description": "the token's role is too low"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such id"}
}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the request is not acceptable (message says why)"}
}
FindingIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
State = Annotated[ServiceState, Depends(get_state)]
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Reviewer = Annotated[Caller, Depends(require(Role.REVIEWER))]


@router.get("/healthz", response_model=HealthBody, tags=["health"])
async def healthz() -> HealthBody:
    """The process is up (no token)."""
    return HealthBody(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyBody,
    tags=["health"],
    responses={503: {"model": ReadyBody, "description": "not ready"}},
)
def readyz(state: State) -> Any:
    """Policies loaded, store reachable and geo data loaded (no token)."""
    problems = []
    store_ok = True
    try:
        state.review.queries.ping()
    except ChipwardenError as exc:
        store_ok = False
        problems.append(f"store: {exc.message}")
    policies = len(state.engine.describe())
    if policies == 0:
        problems.append("no policies loaded")
    geo = list(state.enricher.describe())
    if not geo:
        problems.append("no geo database loaded")
    problems.extend(f"inventory: {e}" for e in state.inventory_errors)
    ready = store_ok and policies > 0 and bool(geo)
    body = ReadyBody(
        ready=ready,
        policies=policies,
        bundle_revision=state.engine.revision,
        store=store_ok,
        geo=geo,
        instances=len(state.inventory),
        problems=problems,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    tags=["health"],
    responses={**ERRORS, 200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    response_class=Response,
)
def metrics(request: Request, _caller: Viewer) -> Response:
    """Prometheus metrics (any token; give Prometheus a viewer token)."""
    body = request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


class FindingFilters:
    """Query parameters shared by the list and the export endpoints."""

    def __init__(
        self,
        status: Annotated[FindingStatus | None, Query(description="review status")] = None,
        severity: Annotated[Severity | None, Query(description="minimum severity")] = None,
        policy: Annotated[str | None, Query(max_length=200, description="policy id")] = None,
        provider: Annotated[str | None, Query(max_length=40)] = None,
        account: Annotated[str | None, Query(max_length=200)] = None,
        country: Annotated[
            str | None, Query(pattern=r"^[A-Za-z]{2}$", description="source country (ISO)")
        ] = None,
        since: Annotated[datetime | None, Query(description="session start >= since")] = None,
        until: Annotated[datetime | None, Query(description="session start <= until")] = None,
        q: Annotated[
            str | None, Query(max_length=200, description="text in title/principal/IP/...")
        ] = None,
    ) -> None:
        self.query = FindingQuery(
            status=status,
            severity=severity,
            policy=policy,
            provider=provider,
            account=account,
            country=country,
            since=since,
            until=until,
            text=q,
        )


Filters = Annotated[FindingFilters, Depends()]


@router.get(
    "/v1/findings",
    response_model=FindingList,
    tags=["findings"],
    responses={**ERRORS, **BAD_REQUEST},
)
def list_findings(
    state: State,
    _caller: Viewer,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> FindingList:
    """Findings, most severe and most recent first, with cursor pagination."""
    page = state.review.queries.page(filters.query, limit=limit, cursor=cursor)
    return FindingList(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/v1/findings/export",
    tags=["findings"],
    response_class=Response,
    responses={
        **ERRORS,
        **BAD_REQUEST,
        200: {
            "content": {e.media_type.split(";")[0]: {} for e in EXPORTERS.values()},
            "description": "the export file",
        },
    },
)
def export(
    state: State,
    _caller: Viewer,
    filters: Filters,
    format: Annotated[Literal["csv", "jsonl", "ocsf", "html"], Query()] = "jsonl",
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """Findings as CSV, JSON Lines, OCSF Detection Finding JSON or an HTML report."""
    query = dataclasses.replace(filters.query, run_id=run_id)
    findings = state.review.queries.page(query, limit=limit).items
    run = state.store.get_run(run_id) if run_id else None
    buffer = io.StringIO()
    export_findings(findings, format, buffer, run=run, generated_at=state.clock())
    exporter = EXPORTERS[format]
    name = f"chipwarden-{run_id or 'findings'}{exporter.suffix}"
    return Response(
        buffer.getvalue(),
        media_type=exporter.media_type,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/v1/findings/{finding_id}",
    response_model=FindingDetail,
    tags=["findings"],
    responses={**ERRORS, **NOT_FOUND},
)
def get_finding(finding_id: FindingIdPath, state: State, _caller: Viewer) -> FindingDetail:
    """One finding with its full evidence and review history."""
    finding = state.review.finding(finding_id)
    return FindingDetail(
        finding=finding,
        session_id=finding.session.session_id,
        history=state.review.history(finding_id),
    )


@router.post(
    "/v1/findings/{finding_id}/review",
    response_model=ReviewResult,
    tags=["review"],
    responses={
        **ERRORS,
        **NOT_FOUND,
        **BAD_REQUEST,
        409: {"model": ErrorBody, "description": "not allowed from the current status"},
    },
)
def review_finding(
    finding_id: FindingIdPath, body: ReviewBody, state: State, caller: Reviewer
) -> ReviewResult:
    """Acknowledge, assign, comment, escalate, resolve (with a reason) or reopen a finding."""
    request = ReviewRequest(
        action=ReviewAction(body.action.value),
        actor=caller.actor,
        at=state.clock(),
        note=body.note,
        reason=ResolveReason(body.reason) if body.reason else None,
        assignee=body.assignee,
    )
    finding, entry = state.review.review(finding_id, request)
    return ReviewResult(finding=finding, entry=entry)


@router.get("/v1/runs", response_model=RunList, tags=["runs"], responses=ERRORS)
def list_runs(
    state: State, _caller: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> RunList:
    """Audit runs, newest first, with their ScopeErrors and counters."""
    return RunList(items=state.store.list_runs(limit=limit))


@router.get("/v1/trail/verify", response_model=TrailReport, tags=["review"], responses=ERRORS)
def verify_trail(state: State, _caller: Viewer) -> TrailReport:
    """Recompute the review trail's hash chain (``ok`` false names the first bad entry)."""
    return state.review.verify_trail()
