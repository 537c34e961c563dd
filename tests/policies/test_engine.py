"""YamlPolicyEngine: every condition type, combinators, caps, exceptions, match modes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.contracts import PolicyEngine
from agent.models import (
    AccessMethod,
    Decision,
    EvaluationInput,
    ExportClassification,
    IpKind,
    Outcome,
    Severity,
)
from policies.engine import YamlPolicyEngine

MakeInput = Callable[..., EvaluationInput]
MakeEngine = Callable[..., YamlPolicyEngine]
MakePolicy = Callable[..., dict[str, Any]]

# (condition, input that matches, input that does not): one row per condition type.
CONDITION_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "source-country-in lists",
        {"type": "source-country-in", "lists": ["ear-d5"]},
        {"country": "CN"},
        {"country": "FR"},
    ),
    (
        "source-country-in countries",
        {"type": "source-country-in", "countries": ["BR", "AR"]},
        {"country": "BR"},
        {"country": "CN"},
    ),
    (
        "source-subdivision-in lists",
        {"type": "source-subdivision-in", "lists": ["ofac-comprehensive"]},
        {"country": "UA", "subdivision": "UA-43"},
        {"country": "UA", "subdivision": None},
    ),
    (
        "source-subdivision-in codes",
        {"type": "source-subdivision-in", "codes": ["UA-23"]},
        {"country": "UA", "subdivision": "UA-23"},
        {"country": "UA", "subdivision": "UA-30"},
    ),
    (
        "source-country-known",
        {"type": "source-country-known", "value": False},
        {"country": None},
        {"country": "US"},
    ),
    (
        "source-ip-kind-in",
        {"type": "source-ip-kind-in", "values": ["private", "loopback"]},
        {"kind": IpKind.PRIVATE, "ip": "10.1.2.3", "country": None},
        {"kind": IpKind.PUBLIC},
    ),
    (
        "source-ip-in-cidr",
        {"type": "source-ip-in-cidr", "cidrs": ["35.235.240.0/20", "2001:db8::/32"]},
        {"ip": "35.235.241.7"},
        {"ip": "35.235.224.1"},
    ),
    (
        "source-tag-in",
        {"type": "source-tag-in", "values": ["tor"]},
        {"tags": ("hosting", "tor")},
        {"tags": ("hosting",)},
    ),
    (
        "target-in-inventory",
        {"type": "target-in-inventory", "value": False},
        {"in_inventory": False},
        {"in_inventory": True},
    ),
    (
        "target-has-accelerator",
        {"type": "target-has-accelerator", "value": True},
        {"accelerators": (("nvidia-t4", 1),)},
        {"accelerators": (), "instance_type": "t3.micro"},
    ),
    (
        "target-export-class-in",
        {"type": "target-export-class-in", "values": ["3A090.b"]},
        {"accelerators": (("google-tpu-v5e", 4),), "provider": "gcp"},
        {"accelerators": (("nvidia-h100", 8),)},
    ),
    (
        "outcome-in",
        {"type": "outcome-in", "values": ["denied", "failed"]},
        {"outcome": Outcome.DENIED},
        {"outcome": Outcome.SUCCESS},
    ),
    (
        "method-in",
        {"type": "method-in", "values": ["ec2-serial-console"]},
        {"method": AccessMethod.EC2_SERIAL_CONSOLE},
        {"method": AccessMethod.SSM_SESSION},
    ),
    (
        "provider-in",
        {"type": "provider-in", "values": ["gcp", "azure"]},
        {"provider": "azure"},
        {"provider": "aws"},
    ),
    (
        "account-in",
        {"type": "account-in", "values": ["999988887777"]},
        {"account": "999988887777"},
        {"account": "111122223333"},
    ),
    (
        "principal-matches",
        {"type": "principal-matches", "patterns": ["arn:aws:iam::*:role/Admin*"]},
        {"principal": "arn:aws:iam::111122223333:role/AdminBreakGlass"},
        {"principal": "arn:aws:iam::111122223333:role/admin"},
    ),
    (
        "attribute-equals",
        {"type": "attribute-equals", "key": "documentName", "value": "AWS-StartSSHSession"},
        {"attributes": {"documentName": "AWS-StartSSHSession"}},
        {"attributes": {"documentName": "AWS-StartPortForwardingSession"}},
    ),
    (
        "context-equals",
        {"type": "context-equals", "key": "owner_hq_country", "value": "CN"},
        {"context": {"owner_hq_country": "CN"}},
        {"context": {}},
    ),
    (
        "context-in",
        {"type": "context-in", "key": "history.new_country", "values": ["true"]},
        {"context": {"history.new_country": "true"}},
        {"context": {"history.new_country": "false"}},
    ),
    (
        "context-country-in",
        {"type": "context-country-in", "key": "parent_hq_country", "lists": ["macau-or-d5"]},
        {"context": {"parent_hq_country": "MO"}},
        {"context": {"parent_hq_country": "SG"}},
    ),
    (
        "risk-score",
        {
            "type": "risk-score",
            "min": 2,
            "signals": [
                {
                    "when": {"type": "source-tag-in", "values": ["tor-exit"]},
                    "weight": 2,
                    "says": "Tor exit",
                },
            ],
        },
        {"tags": ("tor-exit",)},
        {"tags": ("hosting",)},
    ),
]


def one(engine: YamlPolicyEngine, item: EvaluationInput) -> Decision | None:
    decisions = engine.evaluate(item)
    assert len(decisions) <= 1
    return decisions[0] if decisions else None


@pytest.mark.parametrize(
    ("cond", "hit", "miss"),
    [row[1:] for row in CONDITION_CASES],
    ids=[row[0] for row in CONDITION_CASES],
)
def test_each_condition_type_matches_only_its_evidence(
    make_engine: MakeEngine,
    make_policy: MakePolicy,
    make_input: MakeInput,
    cond: dict[str, Any],
    hit: dict[str, Any],
    miss: dict[str, Any],
) -> None:
    engine = make_engine([make_policy("p", cond)])
    decision = one(engine, make_input(**hit))
    assert decision is not None and decision.policy_id == "p"
    assert decision.reasons and all(isinstance(r, str) and r for r in decision.reasons)
    assert one(engine, make_input(**miss)) is None


def test_condition_table_covers_every_condition_type() -> None:
    from policies.schema import CONDITION_TYPES

    assert {row[1]["type"] for row in CONDITION_CASES} == set(CONDITION_TYPES)


def test_reasons_are_sentences_with_the_evidence(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine(
        [
            make_policy(
                "p",
                {
                    "all": [
                        {"type": "source-country-in", "lists": ["ear-d5"]},
                        {"type": "target-export-class-in", "values": ["3A090.a"]},
                    ]
                },
            )
        ]
    )
    decision = one(engine, make_input())
    assert decision is not None
    assert decision.reasons == (
        "source IP 1.2.4.8 is registered to CN (iptocc 3.3.170 (RIR registry country)); "
        "CN is in EAR Country Group D:5 (15 CFR 740 Supp. No. 1)",
        "target i-0abc (p5.48xlarge) carries 8 x nvidia-h100, classified 3A090.a "
        "(TPP 15832 >= 4800)",
    )
    assert decision.jurisdictions == ("EAR Country Group D:5",)


def test_jurisdiction_membership_is_judged_at_the_session_start_date(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", {"type": "source-country-in", "lists": ["ear-d5"]})])
    before = make_input(country="NI", started_at=datetime(2024, 3, 14, 23, 59, tzinfo=UTC))
    after = make_input(country="NI", started_at=datetime(2024, 3, 15, 0, 1, tzinfo=UTC))
    assert one(engine, before) is None
    assert one(engine, after) is not None


def test_hong_kong_reason_says_it_is_treated_as_china(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", {"type": "source-country-in", "lists": ["ear-d5"]})])
    decision = one(engine, make_input(country="HK"))
    assert decision is not None
    assert (
        "HK is treated as CN for EAR lists; CN is in EAR Country Group D:5" in decision.reasons[0]
    )


def test_target_named_by_the_event_stands_in_for_a_missing_inventory_record(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine(
        [make_policy("p", {"type": "target-export-class-in", "values": ["3A090.a"]})]
    )
    item = make_input(
        in_inventory=False,
        session_instance_type="p5.48xlarge",
        session_accelerators=(("nvidia-h100", 8),),
    )
    decision = one(engine, item)
    assert decision is not None
    assert "named by the event; not in the inventory" in decision.reasons[0]
    assert one(engine, make_input(in_inventory=False)) is None


def test_classification_supplied_with_the_input_wins_over_the_catalog(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine(
        [make_policy("p", {"type": "target-export-class-in", "values": ["unknown"]})]
    )
    override = {"nvidia-h100": ExportClassification(model="nvidia-h100", export_class="unknown")}
    assert one(engine, make_input()) is None
    assert one(engine, make_input(classes=override)) is not None


def test_all_any_and_not_combine_conditions(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    cond = {
        "all": [
            {
                "any": [
                    {"type": "source-country-in", "countries": ["CN"]},
                    {"type": "source-tag-in", "values": ["tor"]},
                ]
            },
            {"not": {"type": "outcome-in", "values": ["denied"]}},
        ]
    }
    engine = make_engine([make_policy("p", cond)])
    assert one(engine, make_input(country="CN")) is not None
    assert one(engine, make_input(country="FR", tags=("tor",))) is not None
    assert one(engine, make_input(country="FR")) is None
    assert one(engine, make_input(country="CN", outcome=Outcome.DENIED)) is None


def test_empty_all_always_matches(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", {"all": []})])
    assert one(engine, make_input(country="US")) is not None


def test_cap_lowers_severity_and_says_why(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    caps = [
        {
            "when": {"type": "outcome-in", "values": ["denied", "failed"]},
            "max": "medium",
            "reason": "no access was granted",
        }
    ]
    engine = make_engine([make_policy("p", {"all": []}, severity="critical", caps=caps)])
    denied = one(engine, make_input(outcome=Outcome.DENIED))
    allowed = one(engine, make_input(outcome=Outcome.SUCCESS))
    assert denied is not None and denied.severity is Severity.MEDIUM
    assert any("capped at medium: no access was granted" in r for r in denied.reasons)
    assert allowed is not None and allowed.severity is Severity.CRITICAL


def test_cap_never_raises_severity(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    caps = [{"when": {"all": []}, "max": "high", "reason": "r"}]
    engine = make_engine([make_policy("p", {"all": []}, severity="low", caps=caps)])
    decision = one(engine, make_input())
    assert decision is not None and decision.severity is Severity.LOW
    assert not any("capped" in r for r in decision.reasons)


def test_indeterminate_when_flags_the_decision(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine(
        [
            make_policy(
                "p",
                {"all": []},
                indeterminate_when={"type": "target-in-inventory", "value": False},
            )
        ]
    )
    missing = one(engine, make_input(in_inventory=False))
    present = one(engine, make_input())
    assert missing is not None and missing.indeterminate
    assert any("not in the inventory" in r for r in missing.reasons)
    assert present is not None and not present.indeterminate


def _exception(expires: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "EXC-7",
            "owner": "ml-platform@example.com",
            "approver": "compliance@example.com",
            "reason": "licensed partner lab",
            "expires": expires,
            "match": {"type": "account-in", "values": ["999988887777"]},
        }
    ]


@pytest.mark.parametrize(
    ("now", "excepted"),
    [
        (datetime(2026, 6, 30, 12, tzinfo=UTC), True),
        (datetime(2026, 6, 30, 23, 59, tzinfo=UTC), True),  # the expiry day itself counts
        (datetime(2026, 7, 1, 0, 0, tzinfo=UTC), False),
    ],
)
def test_exception_applies_until_its_expiry_date(
    make_engine: MakeEngine,
    make_policy: MakePolicy,
    make_input: MakeInput,
    now: datetime,
    excepted: bool,
) -> None:
    engine = make_engine(
        [make_policy("p", {"all": []}, exceptions=_exception("2026-06-30"))], now=now
    )
    decision = one(engine, make_input(account="999988887777"))
    assert decision is not None, "an excepted decision is still returned"
    assert (decision.excepted_by == "EXC-7") is excepted
    if excepted:
        assert any(
            "excepted by EXC-7" in r and "licensed partner lab" in r for r in decision.reasons
        )
    else:
        assert "exception EXC-7 expired on 2026-06-30" in decision.reasons


def test_exception_only_covers_sessions_it_matches(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", {"all": []}, exceptions=_exception("2099-01-01"))])
    decision = one(engine, make_input(account="111122223333"))
    assert decision is not None and decision.excepted_by is None
    assert not any("EXC-7" in r for r in decision.reasons)


def test_first_match_mode_returns_only_the_first_matching_policy(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    policies = [
        make_policy("never", {"type": "source-country-in", "countries": ["AQ"]}),
        make_policy("second", {"all": []}, severity="medium"),
        make_policy("third", {"all": []}, severity="low"),
    ]
    first = make_engine(policies, match_mode="first")
    every = make_engine(policies, match_mode="all")
    assert [d.policy_id for d in first.evaluate(make_input())] == ["second"]
    assert [d.policy_id for d in every.evaluate(make_input())] == ["second", "third"]


def test_each_pack_decides_independently(
    write_pack: Callable[..., Path],
    make_policy: MakePolicy,
    make_input: MakeInput,
    tmp_path: Path,
) -> None:
    a = write_pack([make_policy("a1", {"all": []})], name="pack-a")
    b = write_pack([make_policy("b1", {"all": []})], name="pack-b")
    engine = YamlPolicyEngine.from_refs(
        [str(a), str(b)], base_dir=tmp_path, clock=lambda: datetime.now(UTC)
    )
    assert [(d.pack, d.policy_id) for d in engine.evaluate(make_input())] == [
        ("pack-a", "a1"),
        ("pack-b", "b1"),
    ]


def test_decision_carries_pack_version_revision_title_and_citations(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", {"all": []}, severity="info")])
    decision = one(engine, make_input())
    assert decision is not None
    assert (decision.pack, decision.pack_version) == ("test-pack", "1.0.0")
    assert decision.bundle_revision == engine.revision
    assert decision.title == "policy p"
    assert decision.citations == ("test citation",)
    assert decision.severity is Severity.INFO


def test_revision_is_a_content_hash_of_packs_and_data(
    make_engine: MakeEngine, make_policy: MakePolicy
) -> None:
    one_pack = [make_policy("p", {"all": []})]
    first = make_engine(one_pack)
    again = make_engine(one_pack)
    changed = make_engine([make_policy("p", {"all": []}, severity="low")])
    assert len(first.revision) == 16 and int(first.revision, 16) >= 0
    assert first.revision == again.revision
    assert first.revision != changed.revision


def test_describe_lists_every_policy(make_engine: MakeEngine, make_policy: MakePolicy) -> None:
    engine = make_engine(
        [
            make_policy("p1", {"all": []}, severity="high"),
            make_policy("p2", {"all": []}, severity="low"),
        ]
    )
    assert engine.describe() == [
        {
            "pack": "test-pack",
            "version": "1.0.0",
            "id": "p1",
            "severity": "high",
            "title": "policy p1",
        },
        {
            "pack": "test-pack",
            "version": "1.0.0",
            "id": "p2",
            "severity": "low",
            "title": "policy p2",
        },
    ]


def test_engine_exposes_its_classifier_and_jurisdiction_lookup(
    bundled_engine: YamlPolicyEngine, make_input: MakeInput
) -> None:
    port: PolicyEngine = bundled_engine  # the pipeline sees only the port
    assert port.revision == bundled_engine.revision
    assert bundled_engine.classifier.classify("nvidia-l4").export_class == "3A090.a"
    intel = make_input(country="HK").intel
    found = bundled_engine.lists_for(intel, date(2026, 7, 8))
    assert "EAR Country Group D:5" in found and "Macau or D:5" in found
    assert not any("OFAC" in label for label in found)
    names = bundled_engine.jurisdictions.lists_for(country="HK", at=date(2026, 7, 8))
    assert found == tuple(bundled_engine.jurisdictions.label(n) for n in names)


def test_many_evaluations_reuse_compiled_predicates(
    bundled_engine: YamlPolicyEngine, make_input: MakeInput
) -> None:
    items = [
        make_input(country=c, ip=f"1.2.3.{i}")
        for i, c in enumerate(["CN", "US", "IR", "VN", "DE"] * 200)
    ]
    decisions = [bundled_engine.evaluate(item) for item in items]
    assert sum(1 for d in decisions if d) == 600  # CN, IR and VN flagged; US and DE not
