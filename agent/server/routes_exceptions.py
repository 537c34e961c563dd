"""Exceptions: list (viewer), create and expire (admin); every change is trailed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from agent.review.exceptions import ExceptionRequest
from agent.review.models import Role
from agent.server.auth import Caller, get_state, require
from agent.server.routes_api import BAD_REQUEST, ERRORS, NOT_FOUND
from agent.server.schemas import ExceptionList, ExceptionResult
from agent.server.state import ServiceState

__all__ = ["router"]

router = APIRouter(tags=["exceptions"])
State = Annotated[ServiceState, Depends(get_state)]
ExceptionIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/v1/exceptions", response_model=ExceptionList, responses=ERRORS)
def list_exceptions(
    state: State,
    _caller: Annotated[Caller, Depends(require(Role.VIEWER))],
    active: Annotated[bool, Query(description="only exceptions in force now")] = False,
) -> ExceptionList:
    """Exceptions, soonest expiry first."""
    return ExceptionList(items=state.review.exceptions.list(active_only=active))


@router.post(
    "/v1/exceptions",
    response_model=ExceptionResult,
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, **BAD_REQUEST},
)
def create_exception(
    body: ExceptionRequest,
    state: State,
    caller: Annotated[Caller, Depends(require(Role.ADMIN))],
) -> ExceptionResult:
    """Create an exception (``expires_at`` required and bounded); open findings it matches
    become ``excepted`` and each change is trailed."""
    outcome = state.review.exceptions.create(body, actor=caller.actor, origin="api")
    return ExceptionResult(exception=outcome.record, finding_ids=outcome.finding_ids)


@router.post(
    "/v1/exceptions/{exception_id}/expire",
    response_model=ExceptionResult,
    responses={**ERRORS, **BAD_REQUEST, **NOT_FOUND},
)
def expire_exception(
    exception_id: ExceptionIdPath,
    state: State,
    caller: Annotated[Caller, Depends(require(Role.ADMIN))],
) -> ExceptionResult:
    """End an exception now; the findings it covered are flagged again (trailed)."""
    outcome = state.review.exceptions.expire_now(exception_id, actor=caller.actor)
    return ExceptionResult(exception=outcome.record, finding_ids=outcome.finding_ids)
