"""structlog configuration: console for humans, JSON for machines; run_id via contextvars."""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal

import structlog

__all__ = ["LogFormat", "StderrLogger", "configure_logging", "redact_secrets"]

LogFormat = Literal["console", "json"]


class StderrLogger:
    """Writes each rendered event to whatever ``sys.stderr`` is *now* (not at configure time),
    so redirected or replaced streams (pytest capture, daemons) keep working."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


# -- secret redaction (review service) --------------------------------------------------
# Last line of defence: no token, pepper, cookie or webhook secret reaches a log line, even
# if a future call site passes one by mistake.

_SECRET_KEY = re.compile(
    r"(token(?!_id)|secret|password|passwd|pepper|authorization|cookie|api_key|webhook_url)",
    re.IGNORECASE,
)
_SECRET_VALUES = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"\bcw_([a-z0-9]{12})_[A-Za-z0-9_-]{20,}"), r"cw_\1_[redacted]"),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/_-]+"), r"\1[redacted]"),
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/@\s:]+:)[^/@\s]+@"), r"\1[redacted]@"),
)


def _scrub(value: object) -> object:
    if isinstance(value, str):
        for pattern, replacement in _SECRET_VALUES:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {
            k: "[redacted]" if _SECRET_KEY.search(str(k)) else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_secrets(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """structlog processor: mask secret-named fields and token/URL secrets inside values."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


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
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=False,
    )
    # SDK loggers stay quiet unless we are debugging.
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
