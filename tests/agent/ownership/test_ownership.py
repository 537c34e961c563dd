"""Ownership CSV, Consolidated Screening List matching and the context they give a session."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.models import AccessMethod, EvaluationInput, IpIntel, IpKind, Session
from agent.ownership import (
    CslEntry,
    OwnershipContext,
    Screener,
    load_csl,
    load_ownership,
    normalize_name,
)

OWNERS = (
    "provider,account,owner,ultimate_parent,parent_hq_country\n"
    'aws,111122223333,"Acme Cloud SG Pte. Ltd.","Acme Holdings Co., Ltd.",CN\n'
    "gcp,research-prj,Plain Labs Inc,,US\n"
    '*,sub-0001,"Huawei Technologies Co., Ltd.",,cn\n'
)
CSL_CSV = (
    "name,alt_names,source,programs\n"
    '"Huawei Technologies Co., Ltd.","Huawei; Huawei Tech","Entity List (EL) - Bureau of '
    'Industry and Security",EAR\n'
    '"Beijing Institute of Technology","BIT","Entity List (EL) - Bureau of Industry and '
    'Security",EAR\n'
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def item(provider: str, account: str | None) -> EvaluationInput:
    session = Session(
        key="k",
        provider=provider,
        source="t",
        account=account,
        method=AccessMethod.SSH,
        started_at=datetime(2026, 7, 1, tzinfo=UTC),
    )
    return EvaluationInput(
        session=session, instance=None, intel=IpIntel(ip="8.8.8.8", kind=IpKind.PUBLIC)
    )


def test_ownership_rows_are_found_by_provider_and_account(tmp_path: Path) -> None:
    index = load_ownership([write(tmp_path, "owners.csv", OWNERS)])

    rec = index.get("aws", "111122223333")
    assert rec is not None and rec.parent_hq_country == "CN"
    assert rec.describe() == (
        "account 111122223333 (aws) belongs to Acme Cloud SG Pte. Ltd.; ultimate parent "
        "Acme Holdings Co., Ltd., headquartered in CN (ownership file owners.csv:2)"
    )
    assert index.get("azure", "111122223333") is None
    star = index.get("azure", "sub-0001")
    assert star is not None and star.parent_hq_country == "CN"
    plain = index.get("gcp", "research-prj")
    assert plain is not None and plain.ultimate_parent == "Plain Labs Inc"  # defaults to owner


def test_every_bad_row_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "owners.csv",
        "provider,account,owner,ultimate_parent,parent_hq_country\n"
        "aws,,Nobody,,US\n"
        "aws,1,Somebody,,China\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_ownership([path])

    assert caught.value.message.splitlines() == [
        f"{path}:2: account: required",
        f"{path}:3: parent_hq_country: 'CHINA' is not ISO alpha-2",
    ]


def test_a_wrong_header_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "owners.csv", "account,owner\n1,x\n")

    with pytest.raises(ConfigError, match=r"owners\.csv:1: header must be provider,account"):
        load_ownership([path])


def test_context_carries_ownership_facts_for_the_target_account(tmp_path: Path) -> None:
    provider = OwnershipContext(index=load_ownership([write(tmp_path, "o.csv", OWNERS)]))

    known, unknown, missing = provider.contexts(
        [item("aws", "111122223333"), item("aws", "999"), item("aws", None)]
    )

    assert known["parent_hq_country"] == "CN"
    assert known["owner"] == "Acme Cloud SG Pte. Ltd."
    assert known["ownership"].endswith("(ownership file o.csv:2)")
    assert "csl_match" not in known
    assert unknown == missing == {}


def test_corporate_suffixes_and_punctuation_are_ignored_when_matching() -> None:
    assert normalize_name("Huawei Technologies Co., Ltd.") == "huawei technologies"
    assert normalize_name("The ACME Group, Inc.") == "acme"


def test_screening_matches_names_and_aliases_with_a_score(tmp_path: Path) -> None:
    screener = Screener(load_csl(write(tmp_path, "csl.csv", CSL_CSV)), threshold=90)

    exact = screener.screen("HUAWEI TECHNOLOGIES CO LTD")
    alias = screener.screen("Huawei Tech Limited")

    assert exact is not None and exact.score == 100
    assert exact.entry.source.startswith("Entity List (EL)")
    assert alias is not None and alias.matched == "Huawei Tech"
    assert "score 100/100 (fuzzy name match)" in alias.describe()


def test_one_word_names_must_match_whole_not_as_a_subset() -> None:
    screener = Screener([CslEntry("Beijing Institute of Technology", (), "EL")], threshold=90)

    assert screener.screen("Beijing") is None
    assert screener.screen("Acme Cloud SG Pte Ltd") is None


def test_the_threshold_decides_near_misses() -> None:
    entries = [CslEntry("Sugon Information Industry Co., Ltd.", (), "EL")]

    loose = Screener(entries, threshold=80).screen("Sugon Informaton Industries")
    strict = Screener(entries, threshold=98).screen("Sugon Informaton Industries")

    assert loose is not None and 80 <= loose.score < 98
    assert strict is None


def test_the_trade_gov_json_export_is_read(tmp_path: Path) -> None:
    export = {
        "results": [
            {
                "name": "Example Supercomputing Center",
                "alt_names": ["ESC"],
                "source": "Entity List (EL) - Bureau of Industry and Security",
            },
            {"name": "", "source": "SDN"},
        ]
    }
    entries = load_csl(write(tmp_path, "csl.json", json.dumps(export)))

    assert [(e.name, e.alt_names) for e in entries] == [("Example Supercomputing Center", ("ESC",))]


def test_a_csl_csv_without_a_name_column_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"csl\.csv:1: no 'name' column"):
        load_csl(write(tmp_path, "csl.csv", "entity,country\nx,CN\n"))


def test_context_carries_the_best_screening_match(tmp_path: Path) -> None:
    screener = Screener(load_csl(write(tmp_path, "csl.csv", CSL_CSV)), threshold=90)
    provider = OwnershipContext(
        index=load_ownership([write(tmp_path, "o.csv", OWNERS)]), screener=screener
    )

    flagged, clean = provider.contexts([item("azure", "sub-0001"), item("gcp", "research-prj")])

    assert flagged["csl_match"] == "true"
    assert flagged["csl_score"] == "100"
    assert flagged["csl_entry"] == "Huawei Technologies Co., Ltd."
    assert "on the Consolidated Screening List" in flagged["csl.reason"]
    assert clean["csl_match"] == "false"
