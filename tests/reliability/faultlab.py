"""Seeded cloud-fault plans shared by the AWS, GCP and Azure fault specs.

A ``FaultPlan`` decides, call by call, whether the network seam (botocore's before-send hook,
the fake GCP/Azure servers) answers with a fault instead of the real reply. Transient plans
fail ``rate`` of all calls with a kind drawn from ``kinds``, but never more than
``max_consecutive`` times in a row for one request identity (method + path + body), so a
client with a retry budget above that always gets through: "transient" means exactly that.
Permanent plans fail every matching call from a given call on.

The tally (calls, faults by kind) is what scripts/reliability_report.py prints.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TRANSIENT_KINDS", "FaultPlan", "fault_figures", "seeds"]

# throttle: 429 / ThrottlingException / SlowDown; server-error: 500/503; timeout: the call
# does not answer within the client's read timeout; reset: the connection is dropped;
# truncated: a body shorter than its Content-Length; missing: a listed object answers 404.
TRANSIENT_KINDS: tuple[str, ...] = ("throttle", "server-error", "timeout", "reset")


@dataclass
class FaultPlan:
    """Which calls fail, and how; thread-safe (fan-outs call from worker threads)."""

    rate: float = 0.3
    seed: int = 0
    kinds: Sequence[str] = TRANSIENT_KINDS
    max_consecutive: int = 3
    permanent_after: int | None = None
    """Fail every matching call from this call number on (a permanent outage)."""
    permanent_kind: str = "server-error"
    matches: Callable[[str], bool] = lambda _identity: True
    cover: bool = False
    """Give each kind to the first call that can take it before drawing at random, so every
    kind is injected at least once whatever order threads make their calls in."""
    tally: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    _rng: random.Random = field(init=False)
    _streak: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible test faults

    def draw(self, identity: str, kinds: Sequence[str] | None = None) -> str | None:
        """The fault for this call of ``identity``, or ``None`` to let it through.

        ``kinds`` narrows the choice for this call (a fake that cannot time out a given route
        passes the kinds it can produce)."""
        with self._lock:
            self.calls += 1
            if not self.matches(identity):
                return None
            if self.permanent_after is not None:
                if self.calls >= self.permanent_after:
                    self.tally[self.permanent_kind] += 1
                    return self.permanent_kind
                return None
            choices = list(self.kinds if kinds is None else kinds)
            streak = self._streak.get(identity, 0)
            fresh = [k for k in choices if self.cover and not self.tally[k]]
            if not choices or streak >= self.max_consecutive:
                self._streak.pop(identity, None)
                return None
            if fresh:
                kind = fresh[0]
            elif self._rng.random() < self.rate:
                kind = self._rng.choice(choices)
            else:
                self._streak.pop(identity, None)
                return None
            self._streak[identity] = streak + 1
            self.tally[kind] += 1
            return kind

    @property
    def faults(self) -> int:
        with self._lock:
            return sum(self.tally.values())


def fault_figures(plan: FaultPlan, **extra: Any) -> dict[str, Any]:
    """The figures of one fault scenario, for ``$CW_RELIABILITY_OUT/faults-*.json``."""
    return {
        "rate": plan.rate if plan.permanent_after is None else None,
        "calls": plan.calls,
        "faults": plan.faults,
        "by_kind": dict(sorted(plan.tally.items())),
        "max_consecutive": plan.max_consecutive,
        **extra,
    }


def seeds(first: int) -> range:
    """The seeds of the transient fault runs: ``CW_FAULT_TRIALS`` of them (default 1)."""
    return range(first, first + int(os.environ.get("CW_FAULT_TRIALS", "1")))
