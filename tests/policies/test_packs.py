"""Bundled packs: their policy cases pass, cover every policy, and the stated invariants hold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import PolicyError
from agent.models import EvaluationInput, IpKind, Outcome, Severity
from policies.cases import load_cases
from policies.engine import YamlPolicyEngine
from policies.jurisdictions import Jurisdictions
from policies.loader import BUILTIN_PACKS_DIR, builtin_pack_names, load_packs
from policies.testing import run_cases

MakeInput = Callable[..., EvaluationInput]
NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)

PACKS_WITH_CASES = [
    n for n in builtin_pack_names() if (BUILTIN_PACKS_DIR / f"{n}.cases.yaml").is_file()
]


def engine_for(name: str) -> YamlPolicyEngine:
    return YamlPolicyEngine.from_refs([f"builtin:{name}"], base_dir=Path.cwd(), clock=lambda: NOW)


def test_every_bundled_pack_ships_policy_cases() -> None:
    assert set(PACKS_WITH_CASES) == set(builtin_pack_names())


@pytest.mark.parametrize("name", PACKS_WITH_CASES)
def test_all_cases_of_the_bundled_pack_pass(name: str) -> None:
    results = run_cases(engine_for(name), BUILTIN_PACKS_DIR / f"{name}.cases.yaml")
    assert results
    failed = [str(r) for r in results if not r.passed]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", PACKS_WITH_CASES)
def test_every_policy_has_pass_fail_and_indeterminate_cases(name: str) -> None:
    engine = engine_for(name)
    cases, _ = load_cases(BUILTIN_PACKS_DIR / f"{name}.cases.yaml")
    for row in engine.describe():
        kinds = {c.kind for c in cases if c.covers == row["id"]}
        assert kinds == {"pass", "fail", "indeterminate"}, (row["id"], kinds)


@pytest.mark.parametrize("name", PACKS_WITH_CASES)
def test_case_kinds_agree_with_their_expectations(name: str) -> None:
    cases, _ = load_cases(BUILTIN_PACKS_DIR / f"{name}.cases.yaml")
    policy_ids = {row["id"] for row in engine_for(name).describe()}
    for case in cases:
        if case.covers is None:
            continue
        assert case.covers in policy_ids, case.name
        if case.kind == "pass":
            assert case.expect.policy == case.covers, case.name
        elif case.kind == "fail":
            assert case.expect.policy != case.covers, case.name
        else:
            assert case.expect.indeterminate is True, case.name


@pytest.mark.parametrize("name", builtin_pack_names())
def test_every_bundled_policy_cites_its_basis(name: str) -> None:
    packs, problems = load_packs(
        [BUILTIN_PACKS_DIR / f"{name}.yaml"], jurisdictions=Jurisdictions.load()
    )
    assert problems == []
    for pol in packs[0].pack.policies:
        assert pol.citations, pol.id
        assert pol.description, pol.id


def test_export_controls_policies_run_from_critical_down_to_info() -> None:
    ranks = [Severity(row["severity"]).rank for row in engine_for("export-controls").describe()]
    assert ranks == sorted(ranks, reverse=True)


def test_run_cases_reports_a_wrong_expectation(tmp_path: Path) -> None:
    path = tmp_path / "export-controls.cases.yaml"
    path.write_text(
        "- name: china-to-h100-claimed-low\n"
        "  instance: {instance_type: p5.48xlarge, accelerators: [{model: nvidia-h100, count: 8}]}\n"
        "  intel: {country: CN}\n"
        "  expect: {policy: ec-high-d5-or-macau-to-controlled, severity: low}\n"
        "- name: us-claimed-flagged\n"
        "  instance: null\n"
        "  intel: {country: US}\n"
        "  expect: {policy: ec-medium-restricted-source-unknown-target}\n",
        encoding="utf-8",
    )
    results = run_cases(engine_for("export-controls"), path)
    assert [r.passed for r in results] == [False, False]
    assert results[0].problems == ("expected severity low, got high",)
    assert results[0].location == f"{path}:1"
    assert results[1].problems == (
        "expected policy ec-medium-restricted-source-unknown-target, got no decision",
    )
    assert str(results[0]).startswith("FAIL china-to-h100-claimed-low")


def test_malformed_cases_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.cases.yaml"
    path.write_text(
        "- name: ok\n  instance: null\n  intel: {country: CN}\n  expect: {policy: null}\n"
        "- name: bad\n  instance: null\n  intel: {country: CN, colour: red}\n"
        "  expect: {policy: null}\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as info:
        run_cases(engine_for("export-controls"), path)
    assert info.value.problems == [f"{path}:7: [1].intel.colour: unknown key"]


# --- invariants of the export-controls pack, over generated sessions ------------------------

COUNTRIES = [
    "US",
    "DE",
    "JP",
    "GB",
    "IL",
    "TW",
    "CN",
    "HK",
    "MO",
    "RU",
    "IR",
    "KP",
    "CU",
    "SY",
    "VN",
    "AE",
    "SA",
    "BY",
    "NI",
    "KH",
    "UA",
    "IN",
    "BR",
    None,
]
ALLIED = {"US", "DE", "JP", "GB", "IL", "TW", "IN", "BR"}
TARGETS: list[tuple[tuple[str, float], ...]] = [
    (),
    (("nvidia-h100", 8),),
    (("nvidia-l4", 1),),
    (("nvidia-a10", 1),),
    (("nvidia-t4", 4),),
    (("google-tpu-v4", 4),),
    (("habana-gaudi", 8),),
    (("nvidia-h20", 8),),
]

sessions = st.fixed_dictionaries(
    {
        "country": st.sampled_from(COUNTRIES),
        "subdivision": st.sampled_from([None, None, "UA-43", "UA-14"]),
        "accelerators": st.sampled_from(TARGETS),
        "in_inventory": st.booleans(),
        "outcome": st.sampled_from(list(Outcome)),
        "kind": st.sampled_from([IpKind.PUBLIC, IpKind.PUBLIC, IpKind.PRIVATE]),
        "started_at": st.datetimes(
            min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31)
        ).map(lambda d: d.replace(tzinfo=UTC)),
    }
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=sessions)
def test_export_controls_invariants_hold_for_any_session(
    bundled_engine: YamlPolicyEngine, make_input: MakeInput, spec: dict[str, object]
) -> None:
    if spec["subdivision"] is not None:
        spec = {**spec, "country": "UA"}
    item = make_input(**spec)
    decisions = bundled_engine.evaluate(item)
    assert len(decisions) <= 1  # match_mode first
    if not decisions:
        return
    d = decisions[0]
    if item.instance is not None and not item.instance.has_accelerators:
        assert d.severity <= Severity.LOW, "non-GPU targets never rate above low"
    if item.session.outcome in (Outcome.DENIED, Outcome.FAILED):
        assert d.severity <= Severity.MEDIUM, "attempts are capped at medium"
    if item.intel.country in ALLIED and item.intel.subdivision is None:
        raise AssertionError(f"allied source {item.intel.country} got {d.policy_id}")
    if item.intel.kind is IpKind.PRIVATE and item.intel.country is None:
        raise AssertionError("a private address with no country is never flagged")
    assert d.reasons and d.citations
