"""Jurisdiction lists: dated membership, HK->CN aliasing, subdivisions, derived lists."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.errors import PolicyError
from policies.jurisdictions import DEFAULT_JURISDICTIONS_PATH, Jurisdictions

AS_OF = date(2026, 7, 8)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def j() -> Jurisdictions:
    return Jurisdictions.load()


def write_lists(tmp_path: Path, lists: dict[str, Any]) -> Path:
    path = tmp_path / "jurisdictions.yaml"
    doc = {"schema_version": 1, "as_of": "2026-07-08", "lists": lists}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def simple_list(members: list[Any], *, alias: bool) -> dict[str, Any]:
    return {
        "label": "Test list",
        "citations": ["test"],
        "as_of": "2026-07-08",
        "alias_hk_to_cn": alias,
        "confidence": "S",
        "members": members,
    }


def test_hong_kong_counts_as_china_for_ear_d5(j: Jurisdictions) -> None:
    assert j.contains("ear-d5", country="HK", at=AS_OF)
    assert j.contains("macau-or-d5", country="HK", at=AS_OF)
    assert "HK" not in j.members("ear-d5", at=AS_OF)


def test_hong_kong_is_not_aliased_on_ofac_lists(j: Jurisdictions, tmp_path: Path) -> None:
    assert not any(n.startswith("ofac") for n in j.lists_for(country="HK", at=AS_OF))
    path = write_lists(
        tmp_path,
        {
            "ofac-like": simple_list(["CN"], alias=False),
            "ear-like": simple_list(["CN"], alias=True),
        },
    )
    custom = Jurisdictions.load(path)
    assert custom.lists_for(country="HK", at=AS_OF) == ("ear-like",)
    assert custom.lists_for(country="CN", at=AS_OF) == ("ofac-like", "ear-like")


def test_macau_is_its_own_destination_not_china(j: Jurisdictions) -> None:
    assert j.contains("macau-or-d5", country="MO", at=AS_OF)
    assert not j.contains("ear-d5", country="MO", at=AS_OF)


def test_macau_joins_the_strict_tier_on_2023_01_17(j: Jurisdictions) -> None:
    start = date(2023, 1, 17)
    assert not j.contains("macau-or-d5", country="MO", at=start - DAY)
    assert j.contains("macau-or-d5", country="MO", at=start)


def test_nicaragua_enters_d5_on_2024_03_15(j: Jurisdictions) -> None:
    start = date(2024, 3, 15)
    for name in ("ear-d1", "ear-d5", "ac-license-scope", "macau-or-d5"):
        assert not j.contains(name, country="NI", at=start - DAY), name
        assert j.contains(name, country="NI", at=start), name


def test_cambodia_leaves_d5_on_2026_02_03_but_stays_in_d1(j: Jurisdictions) -> None:
    end = date(2026, 2, 3)
    assert j.contains("ear-d5", country="KH", at=end - DAY)
    assert not j.contains("ear-d5", country="KH", at=end)
    assert not j.contains("macau-or-d5", country="KH", at=end)
    assert j.contains("ear-d1", country="KH", at=end)
    assert j.contains("ac-license-scope", country="KH", at=end)


def test_syria_is_ofac_comprehensive_only_before_2025_07_01(j: Jurisdictions) -> None:
    end = date(2025, 7, 1)
    assert j.contains("ofac-comprehensive-former", country="SY", at=end - DAY)
    assert not j.contains("ofac-comprehensive-former", country="SY", at=end)
    assert not j.contains("ofac-comprehensive", country="SY", at=end - DAY)
    assert j.contains("ear-e1", country="SY", at=end)


def test_crimea_matches_ofac_only_when_the_subdivision_is_known(j: Jurisdictions) -> None:
    assert j.contains("ofac-comprehensive", country="UA", subdivision="UA-43", at=AS_OF)
    assert j.contains("ofac-comprehensive", country="UA", subdivision="UA-40", at=AS_OF)
    assert not j.contains("ofac-comprehensive", country="UA", subdivision=None, at=AS_OF)
    assert not j.contains("ofac-comprehensive", country="UA", subdivision="UA-30", at=AS_OF)


def test_donetsk_and_luhansk_are_only_possible_covered_regions(j: Jurisdictions) -> None:
    for code in ("UA-14", "UA-09"):
        assert j.lists_for(country="UA", subdivision=code, at=AS_OF) == ("ofac-possible-regions",)


def test_israel_is_the_only_d1_d4_d5_member_outside_the_ac_licence_scope(
    j: Jurisdictions,
) -> None:
    union = {c for n in ("ear-d1", "ear-d4", "ear-d5") for c in j.members(n, at=AS_OF)}
    assert "IL" in union
    assert not j.contains("ac-license-scope", country="IL", at=AS_OF)
    assert union - set(j.members("ac-license-scope", at=AS_OF)) == {"IL"}


def test_derived_list_counts_equal_domain_reference(j: Jurisdictions) -> None:
    assert len(j.members("ac-license-scope", at=AS_OF)) == 46
    assert len(j.members("macau-or-d5", at=AS_OF)) == 23


def test_every_stated_reference_count_matches_the_data(j: Jurisdictions) -> None:
    checked = [n for n in j.names() if j.info(n).reference_count is not None]
    assert len(checked) >= 8
    for name in checked:
        info = j.info(name)
        assert len(j.members(name, at=info.as_of)) == info.reference_count, name


def test_every_list_carries_a_label_citations_and_confidence(j: Jurisdictions) -> None:
    for name in j.names():
        info = j.info(name)
        assert j.label(name) and j.citations(name), name
        assert info.confidence in {"V", "S", "C", "E", "U"}
        for m in info.members:
            assert m.confidence in {None, "V", "S", "C", "E", "U"}


def test_ear_lists_alias_hong_kong_and_ofac_lists_do_not(j: Jurisdictions) -> None:
    for name in j.names():
        expected = not name.startswith("ofac")
        assert j.info(name).alias_hk_to_cn is expected, name


def test_lists_for_returns_every_matching_list_in_file_order(j: Jurisdictions) -> None:
    found = j.lists_for(country="IR", at=AS_OF)
    assert {"ear-d5", "ear-e1", "ac-license-scope", "macau-or-d5", "ofac-comprehensive"} <= set(
        found
    )
    order = list(j.names())
    assert list(found) == sorted(found, key=order.index)
    assert j.lists_for(country="US", at=AS_OF) == ()
    assert j.lists_for(country=None, at=AS_OF) == ()


def test_membership_accepts_datetimes_and_lowercase_codes(j: Jurisdictions) -> None:
    at = datetime(2024, 3, 15, 0, 0, tzinfo=UTC)
    assert j.contains("ear-d5", country="ni", at=at)


def test_member_citation_is_preferred_over_the_list_citation(j: Jurisdictions) -> None:
    assert "89 FR 18780" in j.citation_for("ear-d5", "NI")
    assert j.citation_for("ear-d5", "CN") == j.citations("ear-d5")[0]


def test_unknown_list_name_raises_policy_error(j: Jurisdictions) -> None:
    with pytest.raises(PolicyError, match="unknown jurisdiction list 'ear-d9'"):
        j.contains("ear-d9", country="CN", at=AS_OF)
    with pytest.raises(PolicyError):
        j.label("nope")


def test_derived_list_naming_an_unknown_source_is_rejected_with_its_line(tmp_path: Path) -> None:
    derived = simple_list(["CN"], alias=True)
    del derived["members"]
    derived["derived"] = {"union_of": ["missing-list"]}
    path = write_lists(tmp_path, {"derived": derived})
    with pytest.raises(PolicyError) as info:
        Jurisdictions.load(path)
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "- missing-list")
    assert f"{path}:{line}: lists.derived.derived.union_of[0]: unknown list 'missing-list'" in str(
        info.value
    )


def test_malformed_member_code_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = write_lists(tmp_path, {"bad": simple_list(["CN", "china"], alias=True)})
    with pytest.raises(PolicyError) as info:
        Jurisdictions.load(path)
    assert f"{path}:" in str(info.value)
    assert "lists.bad.members[1]" in str(info.value)


def test_member_dates_must_be_ordered(tmp_path: Path) -> None:
    member = {"code": "CN", "from": "2025-01-01", "until": "2024-01-01"}
    path = write_lists(tmp_path, {"bad": simple_list([member], alias=True)})
    with pytest.raises(PolicyError, match="must be before"):
        Jurisdictions.load(path)


def test_bundled_file_is_the_default(j: Jurisdictions) -> None:
    assert j.path == DEFAULT_JURISDICTIONS_PATH
