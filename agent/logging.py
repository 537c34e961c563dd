"""structlog configuration: console for humans, JSON for machines; run_id via contextvars."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

__all__ = ["LogFormat", "StderrLogger", "configure_logging"]

LogFormat = Literal["console", "json"]


class StderrLogger:
    """Writes each rendered event to whatever ``sys.stderr`` is *now* (not at configure time),
    so redirected or replaced streams (pytest capture, daemons) keep working."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger_factory(*_args: object) -> StderrLogger:
    return StderrLogger()


def configure_logging(*, fmt: LogFormat = "console", level: str = "warning") -> None:
    """Configure structlog once per process (called by the CLI and the server factory)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=False,
    )
    # SDK loggers stay quiet unless we are debugging.
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
