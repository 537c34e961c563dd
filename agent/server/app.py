"""``create_app(settings)``: the FastAPI application factory (no import-time globals).

Everything expensive (store + migrations, policies, geo databases, inventory) is built once
here; requests reuse it. ``/healthz`` and ``/readyz`` are open; everything else needs a bearer
token (API, ``/metrics``, ``/openapi.json``) or a console session made from one, and answers
429 to a client locked out after repeated failed authentications (agent/server/ratelimit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.sessions import SessionMiddleware

from agent.errors import ChipwardenError, StoreError, UsageError
from agent.review.models import Role
from agent.review.workflow import TransitionError
from agent.server import console, routes_api, routes_evaluate, routes_exceptions
from agent.server.auth import Caller, ConsoleLogin, csrf_token, require
from agent.server.metrics import ServerMetrics
from agent.server.middleware import (
    BodyLimitMiddleware,
    ObservabilityMiddleware,
    SecurityHeadersMiddleware,
)
from agent.server.ratelimit import (
    AuthFailureLimiter,
    AuthGuard,
    AuthRateLimitMiddleware,
    parse_networks,
)
from agent.server.settings import ServerSettings
from agent.server.state import ServiceState, build_state

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

API_DESCRIPTION = """Review service of chipwarden: findings, review workflow with a hash-chained
trail, exceptions with expiry, exports, a gateway decision endpoint and webhook ingestion.
Authenticate with `Authorization: Bearer <token>` (`chipwarden token create`); roles are
viewer < reviewer < admin."""


def _status_for(exc: ChipwardenError) -> int:
    if getattr(exc, "code", "") == "not_found":
        return 404
    if isinstance(exc, TransitionError):
        return 409
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, UsageError):
        return 400
    return 500


async def _chipwarden_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChipwardenError)  # noqa: S101 - type narrowing for mypy; not a runtime check
    status = _status_for(exc)
    if status >= 500:
        log.warning("request_failed", path=request.url.path, code=exc.code, error=exc.message)
    return JSONResponse(
        {"detail": exc.message, "code": exc.code, "hint": exc.hint}, status_code=status
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - type narrowing for mypy; not a runtime check
    if request.url.path.startswith("/console") and exc.status_code in (403, 404):
        caller = getattr(request.state, "caller", None)
        if caller is not None:
            return console.templates.TemplateResponse(
                request,
                "error.html",
                {
                    "caller": caller,
                    "csrf": csrf_token(request),
                    "status_code": exc.status_code,
                    "message": exc.detail,
                    "error": None,
                    "notice": None,
                },
                status_code=exc.status_code,
            )
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _console_login(request: Request, _exc: Exception) -> Response:
    return RedirectResponse(request.url_for("console_login"), status_code=303)


async def _sweep_exceptions(state: ServiceState, every: float) -> None:
    """Expire due exceptions periodically (re-flagging their findings)."""
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(state.review.exceptions.expire_due, actor="service")
        except ChipwardenError as exc:
            log.warning("exception_sweep_failed", error=exc.message)


def _auth_guard(settings: ServerSettings, app: FastAPI, clock: Callable[[], float]) -> AuthGuard:
    metrics: ServerMetrics = app.state.metrics
    limiter = AuthFailureLimiter(
        limit=settings.auth_failure_limit,
        window=settings.auth_failure_window_seconds,
        lockout=settings.auth_lockout_seconds,
        max_clients=settings.auth_limiter_max_clients,
        clock=clock,
        on_evict=metrics.auth_limiter_evictions.inc,
    )
    metrics.auth_tracked_clients.set_function(lambda: len(limiter))
    return AuthGuard(
        limiter,
        proxies=parse_networks(settings.trusted_proxies),
        metrics=lambda: app.state.metrics,
    )


def create_app(
    settings: ServerSettings | None = None,
    *,
    state: ServiceState | None = None,
    clock: Callable[[], datetime] | None = None,
    auth_clock: Callable[[], float] | None = None,
) -> FastAPI:
    """Build the app: state (unless given), routes, auth, middleware, metrics.

    ``auth_clock`` (seconds, monotonic by default) times the auth-failure lockouts."""
    settings = settings or ServerSettings()
    state = state or build_state(settings, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sweeper = None
        if settings.expiry_sweep_seconds > 0:
            sweeper = asyncio.create_task(_sweep_exceptions(state, settings.expiry_sweep_seconds))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            state.close()

    app = FastAPI(
        title="chipwarden review service",
        version="1",
        description=API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.services = state
    app.state.metrics = ServerMetrics(lambda: state)
    app.state.auth_guard = _auth_guard(settings, app, auth_clock or time.monotonic)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_caller: Annotated[Caller, Depends(require(Role.VIEWER))]) -> dict[str, Any]:
        """The OpenAPI document (any token)."""
        document: dict[str, Any] = jsonable_encoder(app.openapi())
        return document

    app.include_router(routes_api.router)
    app.include_router(routes_exceptions.router)
    app.include_router(routes_evaluate.router)
    app.include_router(console.router)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        """Browsers land on the console."""
        return RedirectResponse(request.url_for("console_dashboard"), status_code=303)

    app.add_exception_handler(ChipwardenError, _chipwarden_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ConsoleLogin, _console_login)

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.cookie_key(),
        session_cookie="chipwarden_console",
        max_age=settings.session_max_age_seconds,
        same_site="strict",
        https_only=settings.cookie_secure,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_bytes,
        overrides={"/v1/ingest/": settings.max_ingest_bytes},
    )
    app.add_middleware(AuthRateLimitMiddleware, guard=lambda: app.state.auth_guard)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ObservabilityMiddleware, metrics=lambda: app.state.metrics)
    return app
