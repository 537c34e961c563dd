"""Fixtures for the review specs: a fresh SQLite store, a movable clock, the service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.review.service import ReviewService
from agent.store import SqlStore, open_store
from tests.agent.review.reviewkit import PEPPER, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'review.db'}"


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[SqlStore]:
    with open_store(store_url, clock=clock) as opened:
        yield opened


@pytest.fixture
def service(store: SqlStore, clock: FakeClock) -> ReviewService:
    return ReviewService(store, clock=clock, pepper=PEPPER, exception_max_days=90)
