"""Fuzz specs: write the (target, outcome) tally to ``$CW_FUZZ_TALLY`` when the session ends
(scripts/reliability_report.py reads it for docs/reliability.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fuzz.hostile import TALLY


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = os.environ.get("CW_FUZZ_TALLY")
    if out and TALLY:
        rows = [{"target": t, "outcome": o, "inputs": n} for (t, o), n in sorted(TALLY.items())]
        Path(out).write_text(json.dumps(rows, indent=1), encoding="utf-8")
