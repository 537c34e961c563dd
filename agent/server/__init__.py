"""The review service: FastAPI app factory ``create_app(settings)``, routes, auth, console."""

from agent.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy alias of :func:`agent.server.app.create_app` (keeps FastAPI out of CLI start-up)."""
    from agent.server.app import create_app as factory

    return factory(*args, **kwargs)
