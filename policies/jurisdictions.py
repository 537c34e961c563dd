"""Named jurisdiction lists (EAR country groups, AC-rule tiers, OFAC programmes) with dates.

The lists are data (``policies/data/jurisdictions.yaml``); this module validates them, resolves
derived lists (union/minus/plus) and answers dated membership questions, with HK looked up as
CN where a list says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from agent.config import format_validation_error
from agent.errors import PolicyError, UsageError
from agent.models import ensure_utc
from agent.yamlio import YamlDocument, load_yaml

__all__ = [
    "DEFAULT_JURISDICTIONS_PATH",
    "JurisdictionList",
    "Jurisdictions",
    "Member",
    "Membership",
]

log = structlog.get_logger(__name__)

DEFAULT_JURISDICTIONS_PATH = Path(__file__).parent / "data" / "jurisdictions.yaml"
CODE_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"
_MEMO_LIMIT = 65_536

Confidence = Literal["V", "S", "C", "E", "U"]
Interval = tuple[date | None, date | None]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _coerce_member(value: Any) -> Any:
    return {"code": value} if isinstance(value, str) else value


class Member(_Strict):
    """A country (alpha-2) or subdivision (ISO 3166-2) with optional [from, until) dates."""

    code: str = Field(pattern=CODE_PATTERN)
    from_: date | None = Field(default=None, alias="from")
    until: date | None = None
    citation: str | None = None
    confidence: Confidence | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _dates_ordered(self) -> Member:
        if self.from_ and self.until and self.from_ >= self.until:
            raise ValueError(f"'from' ({self.from_}) must be before 'until' ({self.until})")
        return self

    @property
    def is_subdivision(self) -> bool:
        return "-" in self.code

    def active(self, at: date) -> bool:
        return (self.from_ is None or at >= self.from_) and (self.until is None or at < self.until)


MemberField = Annotated[Member, BeforeValidator(_coerce_member)]


class Derived(_Strict):
    """A list computed from others: union (dates inherited), minus codes, plus members."""

    union_of: tuple[str, ...] = Field(min_length=1)
    minus: tuple[Annotated[str, Field(pattern=CODE_PATTERN)], ...] = ()
    plus: tuple[MemberField, ...] = ()


class JurisdictionList(_Strict):
    """One named list: label for humans, citations, snapshot date and members (or a derivation)."""

    label: str
    description: str = ""
    citations: tuple[str, ...] = Field(min_length=1)
    as_of: date
    alias_hk_to_cn: bool
    confidence: Confidence
    reference_count: int | None = None
    members: tuple[MemberField, ...] = ()
    derived: Derived | None = None

    @model_validator(mode="after")
    def _members_or_derived(self) -> JurisdictionList:
        if bool(self.members) == bool(self.derived):
            raise ValueError("give exactly one of 'members' or 'derived'")
        return self


class _JurisdictionFile(_Strict):
    schema_version: Literal[1]
    as_of: date
    lists: dict[str, JurisdictionList] = Field(min_length=1)


@dataclass(frozen=True)
class Membership:
    """Which lists a source matches at a date: by country, by subdivision, and via HK->CN."""

    country_lists: tuple[str, ...]
    subdivision_lists: tuple[str, ...]
    aliased: frozenset[str]
    country_set: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "country_set", frozenset(self.country_lists))

    @property
    def all(self) -> tuple[str, ...]:
        return self.country_lists + tuple(
            n for n in self.subdivision_lists if n not in self.country_lists
        )


def _as_date(at: date | datetime) -> date:
    return ensure_utc(at).date() if isinstance(at, datetime) else at


class Jurisdictions:
    """Dated membership over the named lists; build with ``Jurisdictions.load()``."""

    def __init__(self, lists: dict[str, JurisdictionList], *, path: Path | None = None) -> None:
        self.path = path
        self._lists = lists
        self._tables: dict[str, dict[str, tuple[Interval, ...]]] = {}
        for name in lists:
            self._resolve(name, ())
        self._memo: dict[tuple[str | None, str | None, date], Membership] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> Jurisdictions:
        """Load and validate the bundled (or given) YAML; ``PolicyError`` names file:line."""
        path = path or DEFAULT_JURISDICTIONS_PATH
        try:
            doc = load_yaml(path)
        except UsageError as exc:
            raise PolicyError([exc.message], hint="fix the jurisdictions YAML") from exc
        try:
            data = _JurisdictionFile.model_validate(doc.data)
        except ValidationError as exc:
            problems = format_validation_error(exc, name=str(path), lines=doc.lines)
            raise PolicyError(problems, hint="fix the jurisdictions YAML") from exc
        _check_references(data, doc)
        out = cls(dict(data.lists), path=path)
        log.debug("jurisdictions_loaded", path=str(path), lists=len(data.lists))
        return out

    def _resolve(self, name: str, stack: tuple[str, ...]) -> dict[str, tuple[Interval, ...]]:
        if name in self._tables:
            return self._tables[name]
        if name in stack:
            raise PolicyError([f"derived jurisdiction lists form a cycle: {' -> '.join(stack)}"])
        spec = self.info(name)
        table: dict[str, list[Interval]] = {}
        if spec.derived is None:
            for m in spec.members:
                table.setdefault(m.code, []).append((m.from_, m.until))
        else:
            for source in spec.derived.union_of:
                for code, intervals in self._resolve(source, (*stack, name)).items():
                    table.setdefault(code, []).extend(intervals)
            for code in spec.derived.minus:
                table.pop(code, None)
            for m in spec.derived.plus:
                table.setdefault(m.code, []).append((m.from_, m.until))
        resolved = {code: tuple(iv) for code, iv in table.items()}
        self._tables[name] = resolved
        return resolved

    def names(self) -> tuple[str, ...]:
        """Every list name, in file order."""
        return tuple(self._lists)

    def info(self, name: str) -> JurisdictionList:
        """The list's full record; ``PolicyError`` if the name is unknown."""
        spec = self._lists.get(name)
        if spec is None:
            raise PolicyError(
                [f"unknown jurisdiction list {name!r}; known: {', '.join(self._lists)}"],
                hint="see policies/data/jurisdictions.yaml for the list names",
            )
        return spec

    def label(self, name: str) -> str:
        """Human label, e.g. "EAR Country Group D:5"."""
        return self.info(name).label

    def citations(self, name: str) -> tuple[str, ...]:
        """The list's citations, most specific first."""
        return self.info(name).citations

    def citation_for(self, name: str, code: str) -> str:
        """The member's own citation if it has one, else the list's first citation."""
        spec = self.info(name)
        for m in spec.members if spec.derived is None else spec.derived.plus:
            if m.code == code and m.citation:
                return m.citation
        return spec.citations[0]

    def members(self, name: str, *, at: date | datetime) -> tuple[str, ...]:
        """Sorted codes (countries and subdivisions) in the list at ``at``."""
        day = _as_date(at)
        self.info(name)
        return tuple(sorted(c for c, iv in self._tables[name].items() if _active(iv, day)))

    def contains(
        self,
        list_name: str,
        *,
        country: str | None,
        subdivision: str | None = None,
        at: date | datetime,
    ) -> bool:
        """Is the source in ``list_name`` at ``at`` (by country, or by subdivision if known)?"""
        self.info(list_name)
        return list_name in self.membership(country=country, subdivision=subdivision, at=at).all

    def lists_for(
        self, *, country: str | None, subdivision: str | None = None, at: date | datetime
    ) -> tuple[str, ...]:
        """Names of every list the source is in at ``at``, in file order."""
        found = set(self.membership(country=country, subdivision=subdivision, at=at).all)
        return tuple(n for n in self._lists if n in found)

    def membership(
        self, *, country: str | None, subdivision: str | None, at: date | datetime
    ) -> Membership:
        """Cached per (country, subdivision, date)."""
        key = (
            country.upper() if country else None,
            subdivision.upper() if subdivision else None,
            _as_date(at),
        )
        hit = self._memo.get(key)
        if hit is None:
            hit = self._compute(*key)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _compute(self, country: str | None, subdivision: str | None, day: date) -> Membership:
        by_country: list[str] = []
        by_subdivision: list[str] = []
        aliased: set[str] = set()
        for name, table in self._tables.items():
            if country:
                if _active(table.get(country), day):
                    by_country.append(name)
                elif (
                    country == "HK"
                    and self._lists[name].alias_hk_to_cn
                    and _active(table.get("CN"), day)
                ):
                    by_country.append(name)
                    aliased.add(name)
            if subdivision and _active(table.get(subdivision), day):
                by_subdivision.append(name)
        return Membership(tuple(by_country), tuple(by_subdivision), frozenset(aliased))


def _active(intervals: tuple[Interval, ...] | None, day: date) -> bool:
    if not intervals:
        return False
    return any((lo is None or day >= lo) and (hi is None or day < hi) for lo, hi in intervals)


def _check_references(data: _JurisdictionFile, doc: YamlDocument) -> None:
    problems = []
    for name, spec in data.lists.items():
        if spec.derived is None:
            continue
        for i, ref in enumerate(spec.derived.union_of):
            if ref not in data.lists:
                where = doc.where(("lists", name, "derived", "union_of", i))
                problems.append(
                    f"{where}: lists.{name}.derived.union_of[{i}]: unknown list {ref!r}"
                )
    if problems:
        raise PolicyError(problems, hint="fix the jurisdictions YAML")
