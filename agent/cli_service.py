"""Service-side commands (serve, tokens, reviews, exports); registered on the main CLI."""

from __future__ import annotations

import typer

__all__ = ["register_commands"]


def register_commands(app: typer.Typer) -> None:
    """Add the service commands to ``app`` (filled in by the review-service work)."""
