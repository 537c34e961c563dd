"""Fixtures of the watch tests (helpers live in watchbed.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.agent.watch.watchbed import WatchBed


@pytest.fixture()
def bed(tmp_path: Path) -> Iterator[WatchBed]:
    yield WatchBed(root=tmp_path)


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """``chipwarden watch`` configures structlog for the process; give it back afterwards."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
