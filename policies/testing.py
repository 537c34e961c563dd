"""Run policy cases (like ``opa test``) against an engine and report what differed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.contracts import PolicyEngine
from agent.models import Decision
from policies.cases import Case, load_cases
from policies.engine import YamlPolicyEngine

__all__ = ["CaseResult", "run_cases"]


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one case: ``problems`` is empty when it passed."""

    name: str
    location: str
    decision: Decision | None
    problems: tuple[str, ...]
    case: Case

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"{'PASS' if self.passed else 'FAIL'} {self.name} ({self.location})"
        return head if self.passed else "\n  ".join([head, *self.problems])


def _check(case: Case, decision: Decision | None, count: int) -> list[str]:
    want = case.expect
    if want.policy is None:
        return [] if decision is None else [f"expected no decision, got {decision.policy_id}"]
    if decision is None or decision.policy_id != want.policy:
        got = decision.policy_id if decision else "no decision"
        return [f"expected policy {want.policy}, got {got}"]
    problems = []
    if count > 1:
        problems.append(f"expected one decision from the pack, got {count}")
    if want.severity is not None and decision.severity != want.severity:
        problems.append(f"expected severity {want.severity.value}, got {decision.severity.value}")
    if want.excepted is not None and (decision.excepted_by is not None) != want.excepted:
        problems.append(f"expected excepted={want.excepted}, got {decision.excepted_by!r}")
    if want.indeterminate is not None and decision.indeterminate != want.indeterminate:
        problems.append(f"expected indeterminate={want.indeterminate}")
    if want.jurisdictions is not None and set(decision.jurisdictions) != set(want.jurisdictions):
        problems.append(
            f"expected jurisdictions {list(want.jurisdictions)}, got {list(decision.jurisdictions)}"
        )
    text = " | ".join(decision.reasons)
    problems += [f"no reason contains {s!r}: {text}" for s in want.reasons_contain if s not in text]
    return problems


def _fixed_clock(now: datetime) -> Callable[[], datetime]:
    return lambda: now


def run_cases(engine: PolicyEngine, path: Path) -> list[CaseResult]:
    """Evaluate every case in ``path``; decisions of pack ``<name>`` for ``<name>.cases.yaml``."""
    cases, where = load_cases(path)
    pack = path.name.split(".cases.")[0]
    own_pack = isinstance(engine, YamlPolicyEngine) and pack in engine.pack_names
    results = []
    for case, location in zip(cases, where, strict=True):
        runner = engine
        if case.now is not None:
            if not isinstance(engine, YamlPolicyEngine):
                results.append(
                    CaseResult(case.name, location, None, ("engine cannot pin 'now'",), case)
                )
                continue
            runner = engine.with_clock(_fixed_clock(case.now))
        decisions = runner.evaluate(case.to_input())
        if own_pack:
            decisions = [d for d in decisions if d.pack == pack]
        first = decisions[0] if decisions else None
        problems = tuple(_check(case, first, len(decisions)))
        results.append(CaseResult(case.name, location, first, problems, case))
    return results
