"""Bounded exponential back-off with jitter that honours a server's ``Retry-After`` (SDK-free).

``client.py`` says which errors are transient (``classify``); this module only decides how
long to wait and when to give up: after ``RetrySettings.attempts`` tries, or when the next
wait would end past ``RetrySettings.deadline``. The last error is then re-raised unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from providers.gcp.config import RetrySettings

__all__ = ["Backoff", "Transient"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Transient:
    """Verdict on a retryable error: ``kind`` for logs, ``retry_after`` from the server (s),
    ``attempts`` a tighter cap for this kind of error (e.g. a listed object answering 404)."""

    kind: str
    retry_after: float | None = None
    attempts: int | None = None


Classify = Callable[[BaseException], Transient | None]


@dataclass(frozen=True)
class Backoff:
    """Retry loop for one call; ``sleep``/``clock``/``jitter`` are injectable for tests."""

    settings: RetrySettings
    classify: Classify
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Wait before try ``attempt + 1``: capped exponential with equal jitter, never less
        than the server's ``Retry-After``."""
        cfg = self.settings
        step = min(cfg.maximum, cfg.initial * cfg.multiplier ** (attempt - 1))
        wait = step / 2 + self.jitter() * step / 2
        return max(wait, retry_after or 0.0)

    def call(self, fn: Callable[[], T], *, operation: str = "call") -> T:
        """``fn()``, retried while its errors are transient and the budget lasts."""
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:
                verdict = self.classify(exc)
                if verdict is None:
                    raise
                cap = min(self.settings.attempts, verdict.attempts or self.settings.attempts)
                wait = self.delay(attempt, verdict.retry_after)
                spent = self.clock() - started
                if attempt >= cap or spent + wait > self.settings.deadline:
                    log.warning(
                        "gcp_retry_exhausted",
                        operation=operation,
                        kind=verdict.kind,
                        attempts=attempt,
                        seconds=round(spent, 3),
                    )
                    raise
                log.info(
                    "gcp_call_retry",
                    operation=operation,
                    kind=verdict.kind,
                    attempt=attempt,
                    wait=round(wait, 3),
                )
                self.sleep(wait)
