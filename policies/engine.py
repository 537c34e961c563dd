"""``YamlPolicyEngine``: compiled YAML policy packs that turn one session into decisions.

Packs are validated and compiled once (``from_refs``); ``evaluate`` then only calls predicate
closures. In ``first`` mode a pack yields at most one decision per session (file order wins).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from agent.errors import PolicyError
from agent.models import Decision, EvaluationInput, IpIntel, Severity, ensure_utc
from policies.cases import load_cases
from policies.catalog import ChipCatalog
from policies.conditions import Compiler, Predicate, Reasons, Subject
from policies.jurisdictions import Jurisdictions
from policies.loader import LoadedPack, is_cases_file, load_packs, resolve_refs
from policies.schema import (
    AllOf,
    AnyOf,
    Policy,
    PolicyException,
    SourceCountryIn,
    SourceSubdivisionIn,
)

__all__ = ["YamlPolicyEngine"]

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
_FIX_HINT = "fix the lines listed; the pack format is in policies/packs/README.md"


@dataclass(frozen=True)
class _Cap:
    when: Predicate
    max: Severity
    reason: str


@dataclass(frozen=True)
class _Exception:
    spec: PolicyException
    match: Predicate


@dataclass(frozen=True)
class _Policy:
    spec: Policy
    match: Predicate
    caps: tuple[_Cap, ...]
    indeterminate: Predicate | None
    exceptions: tuple[_Exception, ...]
    lists: tuple[str, ...]


@dataclass(frozen=True)
class _Pack:
    name: str
    version: str
    first: bool
    policies: tuple[_Policy, ...]
    path: Path


def _positive_lists(cond: BaseModel) -> list[str]:
    """List names referenced outside any ``not`` (those can explain a match)."""
    if isinstance(cond, SourceCountryIn | SourceSubdivisionIn):
        return list(cond.lists)
    subs: tuple[BaseModel, ...] = ()
    if isinstance(cond, AllOf):
        subs = cond.all_
    elif isinstance(cond, AnyOf):
        subs = cond.any_
    return [name for sub in subs for name in _positive_lists(sub)]


def _compile_pack(loaded: LoadedPack, compiler: Compiler) -> _Pack:
    policies = []
    for pol in loaded.pack.policies:
        policies.append(
            _Policy(
                spec=pol,
                match=compiler.compile(pol.match),
                caps=tuple(_Cap(compiler.compile(c.when), c.max, c.reason) for c in pol.caps),
                indeterminate=(
                    compiler.compile(pol.indeterminate_when) if pol.indeterminate_when else None
                ),
                exceptions=tuple(_Exception(e, compiler.compile(e.match)) for e in pol.exceptions),
                lists=tuple(dict.fromkeys(_positive_lists(pol.match))),
            )
        )
    pack = loaded.pack
    return _Pack(pack.pack, pack.version, pack.match_mode == "first", tuple(policies), loaded.path)


class YamlPolicyEngine:
    """Implements ``agent.contracts.PolicyEngine`` over YAML packs; build with ``from_refs``."""

    def __init__(
        self,
        *,
        packs: list[LoadedPack],
        catalog: ChipCatalog,
        jurisdictions: Jurisdictions,
        clock: Clock,
    ) -> None:
        self._catalog = catalog
        self._jurisdictions = jurisdictions
        self._clock = clock
        compiler = Compiler(jurisdictions)
        self._packs = tuple(_compile_pack(p, compiler) for p in packs)
        digest = hashlib.sha256()
        extra = [p for p in (catalog.path, jurisdictions.path) if p is not None]
        for blob in [p.raw for p in packs] + [p.read_bytes() for p in extra]:
            digest.update(len(blob).to_bytes(8, "big"))
            digest.update(blob)
        self.revision: str = digest.hexdigest()[:16]

    @classmethod
    def from_refs(cls, refs: list[str], *, base_dir: Path, clock: Clock) -> YamlPolicyEngine:
        """Load ``builtin:<name>`` / file / directory refs; ``PolicyError`` lists every problem."""
        paths, problems = resolve_refs(refs, base_dir=base_dir)
        jurisdictions = Jurisdictions.load()
        packs, found = load_packs(paths, jurisdictions=jurisdictions)
        problems += found
        if problems:
            raise PolicyError(problems, hint=_FIX_HINT)
        engine = cls(packs=packs, catalog=ChipCatalog(), jurisdictions=jurisdictions, clock=clock)
        log.info(
            "policy_packs_loaded",
            revision=engine.revision,
            packs=[f"{p.name}@{p.version}" for p in engine._packs],
            policies=sum(len(p.policies) for p in engine._packs),
        )
        return engine

    @staticmethod
    def validate_files(paths: list[Path]) -> list[str]:
        """Every problem in ``paths`` as ``file:line: key.path: message`` (empty = valid).

        ``*.cases.yaml`` files are checked as policy-case files, the rest as packs.
        """
        packs = [p for p in paths if not is_cases_file(p)]
        problems = load_packs(packs, jurisdictions=Jurisdictions.load())[1]
        for path in paths:
            if is_cases_file(path):
                try:
                    load_cases(path)
                except PolicyError as exc:
                    problems += exc.problems
        return problems

    @property
    def classifier(self) -> ChipCatalog:
        """The chip catalog the engine classifies accelerators with."""
        return self._catalog

    @property
    def jurisdictions(self) -> Jurisdictions:
        """The jurisdiction lists the engine evaluates against."""
        return self._jurisdictions

    @property
    def pack_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._packs)

    def with_clock(self, clock: Clock) -> YamlPolicyEngine:
        """A copy that judges exception expiry by ``clock`` (policy tests pin "now")."""
        clone = object.__new__(YamlPolicyEngine)
        clone.__dict__.update(self.__dict__)
        clone._clock = clock
        return clone

    def lists_for(self, intel: IpIntel, at: date | datetime) -> tuple[str, ...]:
        """Human labels of the lists ``intel``'s place is in at ``at`` (``chipwarden ip lookup``).

        Stable list names: ``engine.jurisdictions.lists_for(country=..., subdivision=..., at=...)``.
        """
        names = self._jurisdictions.lists_for(
            country=intel.country, subdivision=intel.subdivision, at=at
        )
        return tuple(self._jurisdictions.label(n) for n in names)

    def describe(self) -> list[dict[str, Any]]:
        """One row per policy: pack, version, id, severity, title (file order)."""
        return [
            {
                "pack": pack.name,
                "version": pack.version,
                "id": pol.spec.id,
                "severity": pol.spec.severity.value,
                "title": pol.spec.title,
            }
            for pack in self._packs
            for pol in pack.policies
        ]

    def evaluate(self, item: EvaluationInput) -> list[Decision]:
        """Decisions of every pack for one session (``first`` packs give at most one)."""
        subject = Subject(item, jurisdictions=self._jurisdictions, classify=self._catalog.classify)
        out: list[Decision] = []
        for pack in self._packs:
            for pol in pack.policies:
                matched, reasons = pol.match(subject)
                if not matched:
                    continue
                out.append(self._decide(pack, pol, subject, reasons))
                if pack.first:
                    break
        return out

    def _decide(self, pack: _Pack, pol: _Policy, subject: Subject, why: Reasons) -> Decision:
        reasons = list(why)
        severity = pol.spec.severity
        indeterminate = False
        if pol.indeterminate is not None:
            indeterminate, extra = pol.indeterminate(subject)
            if indeterminate:
                reasons += [r for r in extra if r not in reasons]
        for cap in pol.caps:
            hit, cap_why = cap.when(subject)
            if hit and severity > cap.max:
                severity = cap.max
                reasons.append(
                    f"severity capped at {cap.max.value}: {cap.reason} ({'; '.join(cap_why)})"
                )
        excepted_by = None
        if pol.exceptions:
            today = ensure_utc(self._clock()).date()
            for exc in pol.exceptions:
                hit, _ = exc.match(subject)
                if not hit:
                    continue
                spec = exc.spec
                if today > spec.expires:
                    reasons.append(f"exception {spec.id} expired on {spec.expires.isoformat()}")
                    continue
                excepted_by = spec.id
                reasons.append(
                    f"excepted by {spec.id} (owner {spec.owner}, expires "
                    f"{spec.expires.isoformat()}): {spec.reason}"
                )
                break
        in_lists = set(subject.membership().all) if pol.lists else set()
        return Decision(
            policy_id=pol.spec.id,
            pack=pack.name,
            pack_version=pack.version,
            bundle_revision=self.revision,
            severity=severity,
            title=pol.spec.title,
            reasons=_dedupe(reasons),
            jurisdictions=tuple(self._jurisdictions.label(n) for n in pol.lists if n in in_lists),
            indeterminate=indeterminate,
            citations=pol.spec.citations,
            excepted_by=excepted_by,
        )


def _dedupe(reasons: list[str]) -> tuple[str, ...]:
    """Drop repeats and sentences another reason already contains."""
    out: list[str] = []
    for i, r in enumerate(reasons):
        if r in out or any(r != o and r in o for o in reasons[i + 1 :] + out):
            continue
        out.append(r)
    return tuple(out)
