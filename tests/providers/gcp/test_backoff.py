"""Backoff: bounded, growing waits that honour Retry-After; the last error is re-raised."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from providers.gcp.backoff import Backoff, Transient
from providers.gcp.config import RetrySettings


class Flaky(Exception):
    """A transient failure carrying the server's Retry-After (seconds), if any."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


def _classify(exc: BaseException) -> Transient | None:
    if isinstance(exc, Flaky):
        return Transient("flaky", retry_after=exc.retry_after)
    return None


def _failing(times: int, error: Callable[[], Exception] = Flaky) -> Callable[[], str]:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error()
        return f"answer after {calls['n']} calls"

    return fn


class Clock:
    """Time that moves only when the back-off sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _backoff(clock: Clock, jitter: float = 1.0, **settings: float) -> Backoff:
    return Backoff(
        RetrySettings(**settings),
        _classify,
        sleep=clock.sleep,
        clock=lambda: clock.now,
        jitter=lambda: jitter,
    )


def test_transient_errors_are_retried_with_exponential_waits_capped_at_maximum() -> None:
    clock = Clock()
    backoff = _backoff(clock, initial=1, multiplier=2, maximum=5, deadline=100, attempts=6)
    assert backoff.call(_failing(5)) == "answer after 6 calls"
    assert clock.sleeps == [1, 2, 4, 5, 5]


def test_jitter_waits_between_half_and_all_of_the_step() -> None:
    clock = Clock()
    backoff = _backoff(clock, jitter=0.0, initial=2, multiplier=2, maximum=8, deadline=100)
    backoff.call(_failing(3))
    assert clock.sleeps == [1, 2, 4]


def test_a_retry_after_longer_than_the_step_is_waited_in_full() -> None:
    clock = Clock()
    backoff = _backoff(clock, initial=0.01, maximum=0.01, deadline=100)
    assert backoff.call(_failing(1, lambda: Flaky(retry_after=7))) == "answer after 2 calls"
    assert clock.sleeps == [7]


def test_it_gives_up_after_the_attempts_and_re_raises_the_last_error() -> None:
    clock = Clock()
    fn = _failing(10)
    with pytest.raises(Flaky):
        _backoff(clock, initial=0.01, deadline=100, attempts=3).call(fn)
    assert len(clock.sleeps) == 2  # three tries, two waits


def test_it_gives_up_rather_than_wait_past_the_deadline() -> None:
    clock = Clock()
    with pytest.raises(Flaky):
        _backoff(clock, initial=0.01, deadline=5, attempts=50).call(
            _failing(10, lambda: Flaky(retry_after=60))
        )
    assert clock.sleeps == []  # a 60 s Retry-After does not fit a 5 s deadline


def test_a_tighter_cap_for_one_kind_of_error_wins() -> None:
    clock = Clock()

    def classify(exc: BaseException) -> Transient | None:
        return Transient("missing", attempts=2) if isinstance(exc, Flaky) else None

    backoff = Backoff(RetrySettings(initial=0.01, attempts=8), classify, sleep=clock.sleep)
    with pytest.raises(Flaky):
        backoff.call(_failing(5))
    assert len(clock.sleeps) == 1


def test_other_errors_are_raised_at_once() -> None:
    clock = Clock()
    with pytest.raises(KeyError):
        _backoff(clock).call(_failing(1, lambda: KeyError("x")))
    assert clock.sleeps == []


def test_the_production_defaults_fit_every_attempt_in_the_deadline() -> None:
    cfg = RetrySettings()
    clock = Clock()
    with pytest.raises(Flaky):
        _backoff(clock, **cfg.model_dump()).call(_failing(100))
    assert len(clock.sleeps) == cfg.attempts - 1  # the deadline did not cut the budget short
    assert sum(clock.sleeps) <= cfg.deadline
    assert cfg.attempts > 3  # above a FaultPlan's max_consecutive: transient means transient
