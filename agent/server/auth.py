"""Authentication and authorisation: bearer API tokens with roles for the API, a signed
session cookie (after a token login) plus a CSRF token for the console.

``require(Role.REVIEWER)`` is a FastAPI dependency: no or bad token -> 401 with
``WWW-Authenticate: Bearer``; a token whose role is too low -> 403. Every route but
``/healthz`` and ``/readyz`` depends on one of these. A presented token that is refused counts
towards the client's auth-failure lockout (agent/server/ratelimit.py).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.review.models import ApiToken, Role
from agent.server.ratelimit import record_auth_failure
from agent.server.state import ServiceState

__all__ = [
    "Caller",
    "ConsoleLogin",
    "check_csrf",
    "console_caller",
    "csrf_token",
    "get_state",
    "require",
]

log = structlog.get_logger(__name__)

_bearer = HTTPBearer(auto_error=False, description="API token from `chipwarden token create`")
SESSION_TOKEN_KEY = "tid"  # noqa: S105 (a session key name, not a secret)
SESSION_CSRF_KEY = "csrf"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's id, name and role (never the token itself)."""

    token_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the caller appears in the review trail."""
        return f"{self.name} (token {self.token_id})"


def get_state(request: Request) -> ServiceState:
    """The app's ``ServiceState``."""
    state: ServiceState = request.app.state.services
    return state


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _caller(token: ApiToken) -> Caller:
    return Caller(token_id=token.id, name=token.name, role=token.role)


def require(role: Role) -> Callable[..., Awaitable[Caller]]:
    """Dependency: a valid bearer token with at least ``role``.

    Async on purpose: verification is a cached hash compare, so the login-path endpoint
    (``/v1/evaluate``) never waits for a thread-pool hop."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorised("missing bearer token")
        state = get_state(request)
        token = state.review.tokens.verify(credentials.credentials)
        if token is None:
            log.info("auth_rejected", path=request.url.path, reason="invalid_token")
            record_auth_failure(request.app.state, request.scope, reason="invalid_token")
            raise _unauthorised("invalid or revoked token")
        caller = _caller(token)
        request.state.caller = caller
        if not caller.role.allows(role):
            log.info(
                "auth_forbidden", path=request.url.path, token_id=caller.token_id, role=caller.role
            )
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"this needs the {role.value} role; the token has {caller.role.value}",
            )
        return caller

    dependency.__name__ = f"require_{role.value}"
    return dependency


# -- console --------------------------------------------------------------------------


class ConsoleLogin(Exception):
    """Raised by console dependencies when the browser must (re-)login; redirects there."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    session: dict[str, Any] = request.session
    token = session.get(SESSION_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        session[SESSION_CSRF_KEY] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 unless ``submitted`` equals the session's CSRF token."""
    expected = request.session.get(SESSION_CSRF_KEY)
    if not (isinstance(expected, str) and submitted and hmac.compare_digest(expected, submitted)):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="bad or missing CSRF token"
        )


def console_login(request: Request, token: ApiToken) -> None:
    """Start a console session for ``token`` (new CSRF token, token id in the cookie)."""
    request.session.clear()
    request.session[SESSION_TOKEN_KEY] = token.id
    request.session[SESSION_CSRF_KEY] = secrets.token_urlsafe(24)


def console_caller(role: Role = Role.VIEWER) -> Callable[..., Caller]:
    """Dependency for console pages: the logged-in token (still active) with ``role``."""

    def dependency(request: Request) -> Caller:
        token_id = request.session.get(SESSION_TOKEN_KEY)
        if not isinstance(token_id, str):
            raise ConsoleLogin()
        found = get_state(request).review.reviews.get_token(token_id)
        if found is None or not found[0].active:
            request.session.clear()
            raise ConsoleLogin()
        caller = _caller(found[0])
        request.state.caller = caller
        if not caller.role.allows(role):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"this needs the {role.value} role; you are {caller.role.value}",
            )
        return caller

    dependency.__name__ = f"console_{role.value}"
    return dependency
