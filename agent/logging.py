"""structlog configuration: console for humans, JSON for machines; run_id via contextvars.

stdlib ``logging`` records are rendered by the same chain, so secret redaction covers both."""

from __future__ import annotations

import base64
import logging
import re
import sys
from collections.abc import Callable
from typing import Literal

import structlog

__all__ = ["LogFormat", "StderrLogger", "configure_logging", "redact_secrets"]

LogFormat = Literal["console", "json"]
_NOISY = ("botocore", "boto3", "urllib3", "azure", "google", "kubernetes")


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


def _basic_credentials(match: re.Match[str]) -> str:
    """``Basic <base64 of user:password>`` -> ``Basic [redacted]``; other text is kept."""
    try:
        decoded = base64.b64decode(match.group(2), validate=True)
    except ValueError:
        return match.group(0)
    return f"{match.group(1)} [redacted]" if b":" in decoded else match.group(0)


_SECRET_VALUES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)\b(basic)\s+([A-Za-z0-9+/]{4,}={0,2})"), _basic_credentials),
    (re.compile(r"\bcw_([a-z0-9]{12})_[A-Za-z0-9_-]{20,}"), r"cw_\1_[redacted]"),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/_-]+"), r"\1[redacted]"),
    # A Slack webhook path without its host (urllib3 retry warnings log only the path).
    (re.compile(r"(/services/T[A-Z0-9]+/B[A-Z0-9]+/)[A-Za-z0-9]+"), r"\1[redacted]"),
    (re.compile(r"([a-z][a-z0-9+.-]*://[^/@\s:]+:)[^/@\s]+@"), r"\1[redacted]@"),
    # Credentials in query strings: ?token=..., &sig=... (SAS), X-Amz-Signature=..., etc.
    (
        re.compile(
            r"(?i)([?&;](?:[a-z0-9_-]*(?:token|secret|password|passwd|signature|api_?key)"
            r"|sig|key|code|x-amz-credential)=)[^&;#\s\"']+"
        ),
        r"\1[redacted]",
    ),
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


class _StdlibHandler(logging.Handler):
    """Root handler for stdlib ``logging`` (SDKs, uvicorn, alembic): the same renderer and
    redaction as structlog, written to the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def _stdlib_handler(renderer: structlog.typing.Processor, numeric: int) -> logging.Handler:
    handler = _StdlibHandler(level=numeric)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                renderer,
            ],
        )
    )
    return handler


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
    # stdlib records go through the same redaction and renderer (one handler, replaced on
    # every call); the lastResort handler would print them raw.
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(_stdlib_handler(renderer, numeric))
    # SDK loggers stay quiet unless we are debugging; httpx/httpcore log full request URLs
    # (webhook paths and query strings are secrets) at INFO, so they are capped too.
    for noisy in (*_NOISY, "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
