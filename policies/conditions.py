"""Compile DSL conditions into predicate closures, once per pack load.

A predicate takes a ``Subject`` (one session being evaluated) and returns ``(matched,
reasons)``: human sentences with the evidence, written whether or not it matched so that
``not`` can reuse them. Compilers are registered per condition model (no name switch).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from datetime import date
from fnmatch import translate
from typing import Any, TypeVar

from pydantic import BaseModel

from agent.models import Accelerator, EvaluationInput, ExportClassification, IpIntel
from policies import schema as s
from policies.jurisdictions import Jurisdictions, Membership

__all__ = ["Compiler", "Predicate", "Reasons", "Subject", "compiles", "tag_matches"]

Reasons = tuple[str, ...]
Predicate = Callable[["Subject"], tuple[bool, Reasons]]
CompileFn = Callable[[Any, "Compiler"], Predicate]
M = TypeVar("M", bound=BaseModel)

_COMPILERS: dict[type[BaseModel], CompileFn] = {}


def compiles(model: type[M]) -> Callable[[Callable[[M, Compiler], Predicate]], CompileFn]:
    """Register the compiler for one condition model."""

    def register(fn: Callable[[M, Compiler], Predicate]) -> CompileFn:
        _COMPILERS[model] = fn
        return fn

    return register


class Subject:
    """One session under evaluation, with lazily computed, shared facts."""

    __slots__ = ("_classify", "_jurisdictions", "_membership", "_whence", "at", "item")

    def __init__(
        self,
        item: EvaluationInput,
        *,
        jurisdictions: Jurisdictions,
        classify: Callable[[str], ExportClassification],
    ) -> None:
        self.item = item
        self.at: date = item.session.started_at.date()
        self._jurisdictions = jurisdictions
        self._classify = classify
        self._membership: Membership | None = None
        self._whence: str | None = None

    @property
    def whence(self) -> str:
        """ "source IP x is registered to CC (sources)", built once per subject."""
        if self._whence is None:
            self._whence = _whence(self.item.intel)
        return self._whence

    def membership(self) -> Membership:
        """Lists the source is in at the session's start date (cached per subject and globally)."""
        if self._membership is None:
            intel = self.item.intel
            self._membership = self._jurisdictions.membership(
                country=intel.country, subdivision=intel.subdivision, at=self.at
            )
        return self._membership

    def export_class(self, model: str) -> ExportClassification:
        """Classification supplied with the input, else the engine's own catalog."""
        return self.item.classes.get(model) or self._classify(model)


class Compiler:
    """Turns validated condition models into predicates; knows the jurisdiction lists."""

    def __init__(self, jurisdictions: Jurisdictions) -> None:
        self.jurisdictions = jurisdictions

    def compile(self, cond: BaseModel) -> Predicate:
        return _COMPILERS[type(cond)](cond, self)

    def list_ref(self, name: str, code: str) -> str:
        """``"Label (citation)"`` for a reason, citing the member's own source if it has one."""
        j = self.jurisdictions
        return f"{j.label(name)} ({j.citation_for(name, code)})"


# --- evidence phrasing -------------------------------------------------------------------


def _ip(intel: IpIntel) -> str:
    return intel.normalized or intel.ip or "<none>"


def _whence(intel: IpIntel) -> str:
    verb = "is located in" if intel.subdivision or intel.city else "is registered to"
    src = f" ({', '.join(intel.sources)})" if intel.sources else ""
    return f"source IP {_ip(intel)} {verb} {intel.country}{src}"


def _target(item: EvaluationInput) -> str:
    inst = item.instance
    ident = item.session.instance_id or (inst.instance_id if inst else None) or "<unnamed>"
    itype = (inst.instance_type if inst else None) or item.session.instance_type
    return f"target {ident} ({itype})" if itype else f"target {ident}"


def _carried(item: EvaluationInput) -> tuple[Accelerator, ...]:
    return tuple(a for a in item.accelerators if a.count > 0)


def _accs(accs: tuple[Accelerator, ...]) -> str:
    return ", ".join(f"{a.count:g} x {a.model}" for a in accs)


def _named_by_event(item: EvaluationInput) -> str:
    return "" if item.instance else " (named by the event; not in the inventory)"


# --- source conditions -------------------------------------------------------------------


@compiles(s.SourceCountryIn)
def _source_country_in(cond: s.SourceCountryIn, c: Compiler) -> Predicate:
    lists = cond.lists
    lists_set = frozenset(lists)
    countries = frozenset(cond.countries)
    wanted = ", ".join([*(c.jurisdictions.label(n) for n in lists), *cond.countries])

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        intel = sub.item.intel
        cc = intel.country
        if cc is None:
            why = intel.unknown_reason or "no country data"
            return False, (f"source IP {_ip(intel)} has no known country ({why})",)
        m = sub.membership()
        if lists_set.isdisjoint(m.country_set) and cc.upper() not in countries:
            return False, (f"{sub.whence}; {cc} is in none of: {wanted}",)
        direct = [c.list_ref(n, cc) for n in lists if n in m.country_set and n not in m.aliased]
        via_cn = [c.list_ref(n, "CN") for n in lists if n in m.aliased]
        parts = []
        if via_cn:
            parts.append(f"{cc} is treated as CN for EAR lists; CN is in {', '.join(via_cn)}")
        if direct:
            parts.append(f"{cc} is in {', '.join(direct)}")
        if cc.upper() in countries:
            parts.append(f"{cc} is in the policy's country list")
        if parts:
            return True, (f"{sub.whence}; {'; '.join(parts)}",)
        return False, (f"{sub.whence}; {cc} is in none of: {wanted}",)

    return pred


@compiles(s.SourceSubdivisionIn)
def _source_subdivision_in(cond: s.SourceSubdivisionIn, c: Compiler) -> Predicate:
    lists = cond.lists
    codes = frozenset(cond.codes)
    for name in lists:
        c.jurisdictions.info(name)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        intel = sub.item.intel
        code = intel.subdivision
        if code is None:
            return False, (f"source IP {_ip(intel)} has no known subdivision",)
        m = sub.membership()
        hits = [c.list_ref(n, code.upper()) for n in lists if n in m.subdivision_lists]
        if code.upper() in codes:
            hits.append("the policy's subdivision list")
        src = f" ({', '.join(intel.sources)})" if intel.sources else ""
        where = f"source IP {_ip(intel)} is located in {code}{src}"
        if hits:
            return True, (f"{where}; {code} is in {', '.join(hits)}",)
        return False, (f"{where}; not a listed subdivision",)

    return pred


@compiles(s.SourceCountryKnown)
def _source_country_known(cond: s.SourceCountryKnown, _c: Compiler) -> Predicate:
    def pred(sub: Subject) -> tuple[bool, Reasons]:
        intel = sub.item.intel
        if intel.country is None:
            why = intel.unknown_reason or "no country data"
            return (not cond.value), (f"source IP {_ip(intel)} has no known country ({why})",)
        return cond.value, (sub.whence,)

    return pred


@compiles(s.SourceIpKindIn)
def _source_ip_kind_in(cond: s.SourceIpKindIn, _c: Compiler) -> Predicate:
    kinds = frozenset(cond.values)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        intel = sub.item.intel
        return intel.kind in kinds, (f"source IP {_ip(intel)} is a {intel.kind.value} address",)

    return pred


@compiles(s.SourceIpInCidr)
def _source_ip_in_cidr(cond: s.SourceIpInCidr, _c: Compiler) -> Predicate:
    nets = [ipaddress.ip_network(x, strict=False) for x in cond.cidrs]

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        intel = sub.item.intel
        try:
            addr = ipaddress.ip_address(_ip(intel))
        except ValueError:
            return False, (f"source {_ip(intel)} is not an IP address",)
        for net in nets:
            if addr.version == net.version and addr in net:
                return True, (f"source IP {addr} is in {net}",)
        return False, (f"source IP {addr} is in none of {', '.join(cond.cidrs)}",)

    return pred


def tag_matches(wanted: str, tag: str) -> bool:
    """``wanted`` is ``tag`` or its family (``cn-cloud`` ~ ``cn-cloud:alibaba``, ``tor`` ~
    ``tor-exit``)."""
    return tag == wanted or (tag.startswith(wanted) and tag[len(wanted)] in ":-")


def _tag_sources(intel: IpIntel, tags: list[str]) -> str:
    """The ``"<tag> <- <why>"`` source lines the enricher wrote for ``tags``."""
    why = [
        src.split(" <- ", 1)[1]
        for src in intel.sources
        if " <- " in src and src.split(" <- ", 1)[0] in tags
    ]
    return f" ({'; '.join(why)})" if why else ""


@compiles(s.SourceTagIn)
def _source_tag_in(cond: s.SourceTagIn, _c: Compiler) -> Predicate:
    wanted = tuple(cond.values)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        intel = sub.item.intel
        hits = [t for t in intel.tags if any(tag_matches(w, t) for w in wanted)]
        if hits:
            why = _tag_sources(intel, hits)
            return True, (f"source IP {_ip(intel)} is tagged {', '.join(hits)}{why}",)
        return False, (f"source IP {_ip(intel)} has none of the tags {', '.join(cond.values)}",)

    return pred


# --- target conditions -------------------------------------------------------------------


@compiles(s.TargetInInventory)
def _target_in_inventory(cond: s.TargetInInventory, _c: Compiler) -> Predicate:
    def pred(sub: Subject) -> tuple[bool, Reasons]:
        item = sub.item
        if item.instance is None:
            return (not cond.value), (f"{_target(item)} is not in the inventory",)
        inst = item.instance
        return cond.value, (
            f"{_target(item)} is in the {inst.provider} inventory ({inst.account})",
        )

    return pred


@compiles(s.TargetHasAccelerator)
def _target_has_accelerator(cond: s.TargetHasAccelerator, _c: Compiler) -> Predicate:
    def pred(sub: Subject) -> tuple[bool, Reasons]:
        item = sub.item
        accs = _carried(item)
        if accs:
            return cond.value, (f"{_target(item)}{_named_by_event(item)} carries {_accs(accs)}",)
        if item.instance is None:
            why = f"{_target(item)} is not in the inventory and the event named no accelerators"
            return (not cond.value), (why,)
        return (not cond.value), (f"{_target(item)} has no accelerators",)

    return pred


@compiles(s.TargetExportClassIn)
def _target_export_class_in(cond: s.TargetExportClassIn, _c: Compiler) -> Predicate:
    wanted = frozenset(cond.values)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        item = sub.item
        accs = _carried(item)
        if not accs:
            return False, (f"{_target(item)} carries no accelerators we know of",)
        hits: list[str] = []
        misses: list[str] = []
        for a in accs:
            ec = sub.export_class(a.model)
            text = f"{a.count:g} x {a.model}, classified {ec.export_class} ({ec.basis})"
            if ec.notes and ec.export_class != "3A090.a":
                text += f"; note: {ec.notes[0]}"
            (hits if ec.export_class in wanted else misses).append(text)
        head = f"{_target(item)}{_named_by_event(item)} carries "
        if hits:
            return True, (head + "; ".join(hits),)
        return False, (head + "; ".join(misses),)

    return pred


# --- session conditions ------------------------------------------------------------------


def _membership(
    values: Iterable[object], get: Callable[[EvaluationInput], Any], say: Callable[[Any], str]
) -> Predicate:
    """``get(item) in values``, explained by ``say(value)`` either way."""
    wanted = frozenset(values)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        value = get(sub.item)
        return value in wanted, (say(value),)

    return pred


@compiles(s.OutcomeIn)
def _outcome_in(cond: s.OutcomeIn, _c: Compiler) -> Predicate:
    return _membership(
        cond.values, lambda i: i.session.outcome, lambda v: f"session outcome is {v.value}"
    )


@compiles(s.MethodIn)
def _method_in(cond: s.MethodIn, _c: Compiler) -> Predicate:
    return _membership(
        cond.values, lambda i: i.session.method, lambda v: f"access method is {v.value}"
    )


@compiles(s.ProviderIn)
def _provider_in(cond: s.ProviderIn, _c: Compiler) -> Predicate:
    return _membership(cond.values, lambda i: i.session.provider, lambda v: f"provider is {v}")


@compiles(s.AccountIn)
def _account_in(cond: s.AccountIn, _c: Compiler) -> Predicate:
    return _membership(
        cond.values,
        lambda i: i.session.account or (i.instance.account if i.instance else None),
        lambda v: f"target account is {v or '<unknown>'}",
    )


@compiles(s.PrincipalMatches)
def _principal_matches(cond: s.PrincipalMatches, _c: Compiler) -> Predicate:
    compiled = [(p, re.compile(translate(p))) for p in cond.patterns]

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        principal = sub.item.session.principal
        if principal is None:
            return False, ("session has no principal",)
        for pattern, rx in compiled:
            if rx.match(principal):
                return True, (f"principal {principal} matches {pattern!r}",)
        return False, (f"principal {principal} matches none of {', '.join(cond.patterns)}",)

    return pred


@compiles(s.AttributeEquals)
def _attribute_equals(cond: s.AttributeEquals, _c: Compiler) -> Predicate:
    def pred(sub: Subject) -> tuple[bool, Reasons]:
        got = sub.item.session.attributes.get(cond.key)
        return got == cond.value, (f"session attribute {cond.key} is {got!r}",)

    return pred


def _explained(sub: Subject, key: str, explain: str | None, fallback: str) -> str:
    text = sub.item.context.get(explain) if explain else None
    return text or fallback


@compiles(s.ContextEquals)
def _context_equals(cond: s.ContextEquals, _c: Compiler) -> Predicate:
    def pred(sub: Subject) -> tuple[bool, Reasons]:
        got = sub.item.context.get(cond.key)
        plain = f"context {cond.key} is {got!r}"
        if got == cond.value:
            return True, (_explained(sub, cond.key, cond.explain, plain),)
        return False, (plain,)

    return pred


@compiles(s.ContextIn)
def _context_in(cond: s.ContextIn, _c: Compiler) -> Predicate:
    values = frozenset(cond.values)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        got = sub.item.context.get(cond.key)
        plain = f"context {cond.key} is {got!r}"
        if got in values:
            return True, (_explained(sub, cond.key, cond.explain, plain),)
        return False, (f"{plain}, not one of {', '.join(cond.values)}",)

    return pred


@compiles(s.ContextCountryIn)
def _context_country_in(cond: s.ContextCountryIn, c: Compiler) -> Predicate:
    lists = cond.lists
    for name in lists:
        c.jurisdictions.info(name)
    countries = frozenset(cond.countries)
    wanted = ", ".join([*(c.jurisdictions.label(n) for n in lists), *cond.countries])

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        raw = sub.item.context.get(cond.key)
        if not raw:
            return False, (f"context has no {cond.key}",)
        cc = raw.strip().upper()
        head = _explained(sub, cond.key, cond.explain, f"{cond.key} is {cc}")
        m = c.jurisdictions.membership(country=cc, subdivision=None, at=sub.at)
        direct = [c.list_ref(n, cc) for n in lists if n in m.country_set and n not in m.aliased]
        via_cn = [c.list_ref(n, "CN") for n in lists if n in m.aliased]
        parts = []
        if via_cn:
            parts.append(f"{cc} is treated as CN for EAR lists; CN is in {', '.join(via_cn)}")
        if direct:
            parts.append(f"{cc} is in {', '.join(direct)}")
        if cc in countries:
            parts.append(f"{cc} is in the policy's country list")
        if parts:
            return True, (f"{head}; {'; '.join(parts)}",)
        return False, (f"{head}; {cc} is in none of: {wanted}",)

    return pred


@compiles(s.RiskScore)
def _risk_score(cond: s.RiskScore, c: Compiler) -> Predicate:
    signals = tuple((c.compile(sig.when), sig.weight, sig.says) for sig in cond.signals)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        score = 0
        said: list[str] = []
        evidence: list[str] = []
        for check, weight, says in signals:
            ok, why = check(sub)
            if ok:
                score += weight
                said.append(f"{says} (+{weight})")
                evidence += [w for w in why if w not in evidence]
        summary = "; ".join(said) if said else "no risk signal"
        if score >= cond.min:
            head = f"risk score {score} (at least {cond.min} needed): {summary}"
            return True, (head, *evidence)
        return False, (f"risk score {score} is below {cond.min}: {summary}",)

    return pred


# --- combinators -------------------------------------------------------------------------


@compiles(s.AllOf)
def _all(cond: s.AllOf, c: Compiler) -> Predicate:
    parts = tuple(c.compile(x) for x in cond.all_)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        reasons: Reasons = ()
        for part in parts:
            ok, why = part(sub)
            if not ok:
                return False, why
            reasons += why
        return True, reasons

    return pred


@compiles(s.AnyOf)
def _any(cond: s.AnyOf, c: Compiler) -> Predicate:
    parts = tuple(c.compile(x) for x in cond.any_)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        reasons: Reasons = ()
        for part in parts:
            ok, why = part(sub)
            if ok:
                return True, why
            reasons += why
        return False, reasons

    return pred


@compiles(s.NotOf)
def _not(cond: s.NotOf, c: Compiler) -> Predicate:
    inner = c.compile(cond.not_)

    def pred(sub: Subject) -> tuple[bool, Reasons]:
        ok, why = inner(sub)
        return (not ok), why

    return pred
