"""Screen owner names against a Consolidated Screening List export (trade.gov CSV or JSON).

Names are compared with rapidfuzz ``token_set_ratio`` after case folding, punctuation removal
and dropping corporate suffixes (``co``, ``ltd``, ``inc`` ...); a one-word name is compared
whole (``ratio``) so that "Beijing" does not match every entry containing it. A match is a
lead for a human, never a verdict: the score goes into the reasons.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from agent.errors import ConfigError

__all__ = ["CslEntry", "Screener", "ScreeningHit", "load_csl", "normalize_name"]

log = structlog.get_logger(__name__)

_SUFFIXES: Final = frozenset(
    {
        "co",
        "company",
        "corp",
        "corporation",
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "llc",
        "plc",
        "pte",
        "pty",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "srl",
        "bv",
        "nv",
        "oy",
        "ab",
        "kk",
        "the",
        "and",
        "of",
        "holding",
        "holdings",
        "group",
    }
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_HINT = (
    "give the Consolidated Screening List as published by trade.gov (CSV with a 'name' column, "
    "or the JSON export with a 'results' list); see docs/detection.md"
)


def normalize_name(name: str) -> str:
    """Lowercase words without punctuation or corporate suffixes (``"Acme Co., Ltd."`` -> acme)."""
    words = [w for w in _WORD.findall(name.casefold()) if w not in _SUFFIXES]
    return " ".join(words)


@dataclass(frozen=True)
class CslEntry:
    """One screening-list party: its names and the list(s) it comes from."""

    name: str
    alt_names: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class ScreeningHit:
    """Best match of a name: the entry, which of its names matched, and the score (0-100)."""

    name: str
    entry: CslEntry
    matched: str
    score: float

    def describe(self) -> str:
        alias = f" (as {self.matched!r})" if self.matched != self.entry.name else ""
        return (
            f"{self.name!r} matches {self.entry.name!r}{alias} on the Consolidated Screening "
            f"List ({self.entry.source}) with score {self.score:.0f}/100 (fuzzy name match)"
        )


def _split_alt(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value or "").split(";") if v.strip())


def _entries(rows: Sequence[dict[str, Any]], path: Path) -> list[CslEntry]:
    out = []
    for i, row in enumerate(rows):
        name = str(row.get("name") or "").strip()
        if not name:
            continue
        source = row.get("source") or row.get("source_list") or "CSL"
        if isinstance(source, dict):
            source = source.get("name") or source.get("code") or "CSL"
        out.append(
            CslEntry(name=name, alt_names=_split_alt(row.get("alt_names")), source=str(source))
        )
        if i and i % 50_000 == 0:
            log.debug("csl_loading", path=str(path), rows=i)
    return out


def load_csl(path: Path) -> list[CslEntry]:
    """Read a CSL CSV (``name``, ``alt_names`` separated by ``;``, ``source``) or JSON export."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the screening list ({exc})", hint=_HINT) from exc
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not JSON ({exc.msg})", hint=_HINT) from exc
        rows = data.get("results", []) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ConfigError(f"{path}: expected a 'results' list", hint=_HINT)
        entries = _entries([r for r in rows if isinstance(r, dict)], path)
    else:
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip().lower() for f in reader.fieldnames or ()]
        if "name" not in fields:
            raise ConfigError(f"{path}:1: no 'name' column (got {','.join(fields)})", hint=_HINT)
        entries = _entries(
            [{(k or "").strip().lower(): v for k, v in r.items()} for r in reader], path
        )
    log.info("csl_loaded", path=str(path), entries=len(entries))
    return entries


class Screener:
    """Fuzzy matcher over CSL names; results are cached per queried name."""

    def __init__(self, entries: Sequence[CslEntry], *, threshold: float = 90.0) -> None:
        try:
            from rapidfuzz import fuzz, process
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "screening needs rapidfuzz", hint="pip install 'chipwarden[screening]'"
            ) from exc
        self._fuzz = fuzz
        self._process = process
        self.threshold = threshold
        self._names: list[str] = []
        self._owners: list[tuple[CslEntry, str]] = []
        for entry in entries:
            for name in (entry.name, *entry.alt_names):
                norm = normalize_name(name)
                if norm:
                    self._names.append(norm)
                    self._owners.append((entry, name))
        self._cache: dict[str, ScreeningHit | None] = {}

    def _score(self, query: str, choice: str, **_: Any) -> float:
        if " " not in query or " " not in choice:
            return float(self._fuzz.ratio(query, choice))
        return float(self._fuzz.token_set_ratio(query, choice))

    def screen(self, name: str) -> ScreeningHit | None:
        """Best match at or above the threshold, or ``None``."""
        if name in self._cache:
            return self._cache[name]
        query = normalize_name(name)
        hit = None
        if query and self._names:
            best = self._process.extractOne(
                query, self._names, scorer=self._score, score_cutoff=self.threshold
            )
            if best is not None:
                _, score, index = best
                entry, matched = self._owners[index]
                hit = ScreeningHit(name=name, entry=entry, matched=matched, score=float(score))
        self._cache[name] = hit
        return hit
