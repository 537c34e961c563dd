"""Detection conditions: tag families, context facts with explanations, risk scores, and the
bundled packs judging real enricher tags."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.enrich.reputation import BUNDLED_DATA_DIR, Reputation
from agent.errors import PolicyError
from agent.models import EvaluationInput, IpIntel, IpKind, Severity
from policies.engine import YamlPolicyEngine

MakeInput = Callable[..., EvaluationInput]
MakeEngine = Callable[..., YamlPolicyEngine]
MakePolicy = Callable[..., dict[str, Any]]
NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)

RISK = {
    "type": "risk-score",
    "min": 3,
    "signals": [
        {"when": {"type": "source-tag-in", "values": ["tor"]}, "weight": 2, "says": "Tor exit"},
        {
            "when": {
                "type": "context-equals",
                "key": "history.new_network",
                "value": "true",
                "explain": "history.new_network.reason",
            },
            "weight": 1,
            "says": "first session from this network",
        },
    ],
}


def test_a_tag_family_matches_its_members_and_the_reason_cites_the_list(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", {"type": "source-tag-in", "values": ["cn-cloud"]})])
    item = make_input(
        country="SG",
        tags=("cn-cloud:alibaba", "hosting"),
        sources=("iptocc", "cn-cloud:alibaba <- AS134963 (Alibaba.com Singapore) in ASN list [S]"),
    )

    [decision] = engine.evaluate(item)

    assert decision.reasons[0] == (
        "source IP 1.2.4.8 is tagged cn-cloud:alibaba (AS134963 (Alibaba.com Singapore) in "
        "ASN list [S])"
    )
    assert engine.evaluate(make_input(tags=("cloud:aws",))) == []


def test_context_country_in_uses_dated_lists_and_the_explanation(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    cond = {
        "type": "context-country-in",
        "key": "parent_hq_country",
        "lists": ["macau-or-d5"],
        "explain": "ownership",
    }
    engine = make_engine([make_policy("p", cond)])
    ctx = {"parent_hq_country": "NI", "ownership": "account 1 (aws) belongs to Lago SA"}

    before = engine.evaluate(make_input(context=ctx, started_at=datetime(2024, 3, 1, tzinfo=UTC)))
    [after] = engine.evaluate(make_input(context=ctx, started_at=datetime(2024, 4, 1, tzinfo=UTC)))

    assert before == []  # Nicaragua joined D:5 on 2024-03-15
    assert after.reasons[0].startswith("account 1 (aws) belongs to Lago SA; NI is in Macau or D:5")


def test_an_unknown_list_in_a_context_condition_names_file_and_line(
    make_engine: MakeEngine, make_policy: MakePolicy
) -> None:
    cond = {"type": "context-country-in", "key": "parent_hq_country", "lists": ["ear-d9"]}

    with pytest.raises(PolicyError) as caught:
        make_engine([make_policy("p", cond)])

    assert "unknown jurisdiction list 'ear-d9'" in caught.value.problems[0]
    assert ".yaml:" in caught.value.problems[0].split(": ")[0]


def test_a_risk_score_adds_the_weights_and_says_why_in_plain_words(
    make_engine: MakeEngine, make_policy: MakePolicy, make_input: MakeInput
) -> None:
    engine = make_engine([make_policy("p", RISK)])
    ctx = {"history.new_network": "true", "history.new_network.reason": "first session from NL"}

    [hit] = engine.evaluate(make_input(tags=("tor-exit",), context=ctx))
    miss = engine.evaluate(make_input(tags=("tor-exit",)))

    assert hit.reasons[0] == (
        "risk score 3 (at least 3 needed): Tor exit (+2); first session from this network (+1)"
    )
    assert "first session from NL" in hit.reasons
    assert miss == []


def test_the_bundled_hygiene_pack_still_fires_on_the_enricher_tor_tag(
    make_input: MakeInput,
) -> None:
    engine = YamlPolicyEngine.from_refs(["builtin:hygiene"], base_dir=Path.cwd(), clock=lambda: NOW)
    rep = Reputation.load([BUNDLED_DATA_DIR])
    ip = "101.99.92.179"  # in the bundled 2024-02-27 bulk list
    [intel] = rep.tag(
        [IpIntel(ip=ip, kind=IpKind.PUBLIC, normalized=ip, country="MY")],
        [datetime(2024, 2, 28, tzinfo=UTC)],
    )
    item = make_input(ip=ip, country="MY", tags=intel.tags, sources=intel.sources)

    [decision] = engine.evaluate(item)

    assert decision.policy_id == "hy-tor-exit-to-accelerator"
    assert "tagged tor-exit (listed 2024-02-27" in decision.reasons[0]


@pytest.mark.parametrize(
    ("tags", "context", "expected"),
    [
        ((), {}, None),
        (("hosting",), {}, Severity.LOW),
        (("vpn",), {"history.new_network": "true"}, Severity.LOW),
        (("tor-exit",), {}, Severity.MEDIUM),
        (("cn-cloud:tencent",), {}, Severity.MEDIUM),
        (("vpn",), {"history.impossible_travel": "true"}, Severity.MEDIUM),
        (("tor-exit",), {"history.restricted_hours": "true"}, Severity.HIGH),
        (
            (),
            {"history.impossible_travel": "true", "history.restricted_hours": "true"},
            Severity.MEDIUM,
        ),
        ((), {"history.new_network": "true"}, None),
    ],
)
def test_bundled_pack_severity_grows_with_the_evasion_signals(
    bundled_engine: YamlPolicyEngine,
    make_input: MakeInput,
    tags: tuple[str, ...],
    context: dict[str, str],
    expected: Severity | None,
) -> None:
    decisions = bundled_engine.evaluate(make_input(country="US", tags=tags, context=context))

    assert (decisions[0].severity if decisions else None) == expected
