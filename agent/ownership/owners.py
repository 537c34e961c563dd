"""Account ownership CSV (``provider,account,owner,ultimate_parent,parent_hq_country``).

``account`` is an AWS account, a GCP project or an Azure subscription id; ``provider`` may be
``*`` to match any provider. ``parent_hq_country`` is the ISO alpha-2 country where the
ultimate parent (or, without one, the owner) is headquartered: the input of the EAR
headquarters test (domain.md 1.4). Problems raise ``ConfigError`` listing every ``file:line``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from agent.errors import ConfigError

__all__ = ["HEADER", "OwnershipIndex", "OwnershipRecord", "load_ownership"]

log = structlog.get_logger(__name__)

HEADER: Final = ("provider", "account", "owner", "ultimate_parent", "parent_hq_country")
_CC = re.compile(r"^[A-Z]{2}$")
_HINT = (
    "the ownership CSV needs the header provider,account,owner,ultimate_parent,"
    "parent_hq_country (ISO alpha-2 countries); see docs/detection.md"
)


@dataclass(frozen=True)
class OwnershipRecord:
    """Who owns one cloud account, and where its ultimate parent is headquartered."""

    provider: str
    account: str
    owner: str
    ultimate_parent: str
    parent_hq_country: str | None
    location: str

    def describe(self) -> str:
        """Plain words for reasons: ``account 1 (aws) belongs to X; ultimate parent Y, ...``."""
        text = f"account {self.account} ({self.provider}) belongs to {self.owner}"
        if self.ultimate_parent and self.ultimate_parent != self.owner:
            text += f"; ultimate parent {self.ultimate_parent}"
        if self.parent_hq_country:
            text += f", headquartered in {self.parent_hq_country}"
        return f"{text} (ownership file {self.location})"


class OwnershipIndex:
    """Lookup by (provider, account); ``*`` rows match any provider."""

    def __init__(self, records: Sequence[OwnershipRecord]) -> None:
        self._exact: dict[tuple[str, str], OwnershipRecord] = {}
        self._any: dict[str, OwnershipRecord] = {}
        for rec in records:
            if rec.provider == "*":
                self._any.setdefault(rec.account, rec)
            else:
                self._exact.setdefault((rec.provider, rec.account), rec)

    def __len__(self) -> int:
        return len(self._exact) + len(self._any)

    def get(self, provider: str, account: str | None) -> OwnershipRecord | None:
        if not account:
            return None
        return self._exact.get((provider.lower(), account)) or self._any.get(account)

    def names(self) -> list[str]:
        """Every distinct owner and ultimate-parent name (for screening)."""
        seen: dict[str, None] = {}
        for rec in [*self._exact.values(), *self._any.values()]:
            for name in (rec.owner, rec.ultimate_parent):
                if name:
                    seen.setdefault(name, None)
        return list(seen)


def _read(path: Path, problems: list[str]) -> list[OwnershipRecord]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read the ownership file ({exc})")
        return []
    reader = csv.DictReader(text.splitlines())
    names = tuple(n.strip().lower() for n in reader.fieldnames or ())
    if names[: len(HEADER)] != HEADER:
        problems.append(f"{path}:1: header must be {','.join(HEADER)} (got {','.join(names)})")
        return []
    out = []
    for n, raw in enumerate(reader, 2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        where = f"{path.name}:{n}"
        missing = [k for k in ("provider", "account", "owner") if not row.get(k)]
        country = row.get("parent_hq_country", "").upper() or None
        if missing:
            problems.append(f"{path}:{n}: {', '.join(missing)}: required")
            continue
        if country is not None and not _CC.match(country):
            problems.append(f"{path}:{n}: parent_hq_country: {country!r} is not ISO alpha-2")
            continue
        out.append(
            OwnershipRecord(
                provider=row["provider"].lower(),
                account=row["account"],
                owner=row["owner"],
                ultimate_parent=row.get("ultimate_parent", "") or row["owner"],
                parent_hq_country=country,
                location=where,
            )
        )
    return out


def load_ownership(paths: Sequence[Path]) -> OwnershipIndex:
    """Read every ownership file; all problems are reported together (ConfigError)."""
    problems: list[str] = []
    records: list[OwnershipRecord] = []
    for path in paths:
        records.extend(_read(path, problems))
    if problems:
        raise ConfigError("\n".join(problems), hint=_HINT)
    index = OwnershipIndex(records)
    log.info("ownership_loaded", files=len(paths), accounts=len(index))
    return index
