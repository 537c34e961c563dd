"""Fixtures for the notifier specs: a store with findings and a local HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store import SqlStore, open_store
from tests.agent.review.reviewkit import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlStore]:
    with open_store(f"sqlite:///{tmp_path / 'notify.db'}", clock=clock) as opened:
        yield opened
