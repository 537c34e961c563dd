"""Real records from tests/data as fuzzing seeds (mutated by ``hostile.mutated``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"


def json_records(*patterns: str, key: str | None = None) -> list[dict[str, Any]]:
    """Every JSON object in the matching files: JSON Lines, a list, or ``{key: [...]}``."""
    out: list[dict[str, Any]] = []
    for pattern in patterns:
        for path in sorted(DATA.glob(pattern)):
            text = path.read_text(encoding="utf-8")
            try:
                docs = [json.loads(text)]
            except json.JSONDecodeError:
                docs = [json.loads(line) for line in text.splitlines() if line.strip()]
            for doc in docs:
                items = doc.get(key, doc) if key and isinstance(doc, dict) else doc
                items = items if isinstance(items, list) else [items]
                out.extend(i for i in items if isinstance(i, dict))
    if not out:
        raise AssertionError(f"no seed records in {patterns}")
    return out
