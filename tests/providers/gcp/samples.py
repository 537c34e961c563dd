"""Loaders for the recorded and own-shape fixtures in tests/data/gcp."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "data" / "gcp"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def load_json(name: str) -> Any:
    """A fixture file from tests/data/gcp."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def load_jsonl(name: str) -> list[Any]:
    """Every line of a JSON-lines fixture."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def sample(name: str, test_name: str) -> dict[str, Any]:
    """The ``log`` of the ``{test_name, log}`` line named ``test_name``."""
    for row in load_jsonl(name):
        if row["test_name"] == test_name:
            log: dict[str, Any] = row["log"]
            return log
    raise KeyError(test_name)


def own_entry(insert_id: str) -> dict[str, Any]:
    """One entry of own__gpu-prod__log-entries.jsonl by insertId."""
    for entry in load_jsonl("own__gpu-prod__log-entries.jsonl"):
        if entry.get("insertId") == insert_id:
            found: dict[str, Any] = entry
            return found
    raise KeyError(insert_id)
