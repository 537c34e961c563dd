"""Errors of the review service (mapped to HTTP statuses by the server)."""

from __future__ import annotations

from agent.errors import UsageError

__all__ = ["NotFoundError"]


class NotFoundError(UsageError):
    """The finding, exception or token does not exist (HTTP 404)."""

    code = "not_found"
