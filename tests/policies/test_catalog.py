"""Chip catalog: ECCN 3A090 (Oct 2023) classification computed from the recorded inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.contracts import AcceleratorClassifier
from agent.errors import PolicyError
from policies.catalog import DEFAULT_CHIPS_PATH, ChipCatalog

BRIEF_IDS = [
    "nvidia-v100",
    "nvidia-t4",
    "nvidia-t4g",
    "nvidia-a10",
    "nvidia-a10g",
    "nvidia-l4",
    "nvidia-l40s",
    "nvidia-a100",
    "nvidia-a800",
    "nvidia-h100",
    "nvidia-h100-pcie",
    "nvidia-h100-nvl",
    "nvidia-h800",
    "nvidia-h20",
    "nvidia-h200",
    "nvidia-b200",
    "nvidia-gb200",
    "nvidia-b300",
    "nvidia-rtx-pro-6000",
    "nvidia-p100",
    "nvidia-p4",
    "amd-mi300x",
    "amd-radeon-pro-v520",
    "google-tpu-v4",
    "google-tpu-v5e",
    "google-tpu-v5p",
    "google-tpu-v6e",
    "aws-trainium",
    "aws-trainium2",
    "aws-trainium3",
    "aws-inferentia",
    "aws-inferentia2",
    "habana-gaudi",
    "qualcomm-ai100",
]

CLASSES = {"3A090.a", "3A090.b", "not-controlled", "unknown"}


@pytest.fixture(scope="module")
def catalog() -> ChipCatalog:
    return ChipCatalog()


def _rule() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CHIPS_PATH.read_text(encoding="utf-8"))
    rule: dict[str, Any] = data["rule"]
    return rule


def synthetic_catalog(tmp_path: Path, chips: dict[str, dict[str, Any]]) -> ChipCatalog:
    """A catalog with the bundled rule and made-up chips (tpp, die, datacenter)."""
    entries = {}
    for cid, spec in chips.items():
        entries[cid] = {
            "vendor": "Test",
            "name": cid,
            "datacenter": spec.get("datacenter", True),
            "formats": [{"format": "INT8", "dense_tops": spec["tpp"] / 8, "bits": 8}]
            if spec["tpp"]
            else [],
            "die_area_mm2": spec.get("die"),
            "sources": ["synthetic test chip"],
            "verified": True,
            "confidence": "C",
        }
    path = tmp_path / "chips.yaml"
    doc = {"schema_version": 1, "rule": _rule(), "chips": entries}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return ChipCatalog(path)


def test_catalog_serves_the_classifier_port(catalog: ChipCatalog) -> None:
    port: AcceleratorClassifier = catalog  # checked by mypy; the port is not runtime-checkable
    assert port.classify(port.models()[0]).model == port.models()[0]


def test_catalog_holds_every_chip_id_the_providers_emit(catalog: ChipCatalog) -> None:
    assert set(BRIEF_IDS) <= set(catalog.models())


def test_every_bundled_chip_classifies_without_error(catalog: ChipCatalog) -> None:
    for model in catalog.models():
        ec = catalog.classify(model)
        entry = catalog.entry(model)
        assert entry is not None
        assert ec.export_class in CLASSES, model
        assert ec.basis, model
        assert ec.sources, model
        assert ec.tpp == entry.tpp
        if ec.tpp is not None and entry.die_area_mm2:
            assert ec.performance_density == pytest.approx(ec.tpp / entry.die_area_mm2)


def test_computed_class_matches_the_class_domain_reference_states(catalog: ChipCatalog) -> None:
    checked = 0
    for model in catalog.models():
        entry = catalog.entry(model)
        assert entry is not None
        if entry.reference_class:
            assert catalog.classify(model).export_class == entry.reference_class, model
            checked += 1
    assert checked >= 25


def test_tpp_is_the_maximum_over_formats_of_dense_tops_times_bits(catalog: ChipCatalog) -> None:
    entry = catalog.entry("nvidia-h20")
    assert entry is not None and len(entry.formats) > 1
    assert catalog.classify("nvidia-h20").tpp == max(f.dense_tops * f.bits for f in entry.formats)


def test_l4_is_3a090a_through_performance_density_not_tpp(catalog: ChipCatalog) -> None:
    ec = catalog.classify("nvidia-l4")
    assert ec.export_class == "3A090.a"
    assert ec.tpp is not None and 1600 <= ec.tpp < 4800
    assert ec.performance_density == pytest.approx(6.59, abs=0.01)
    assert "PD 6.59 >= 5.92" in ec.basis


def test_a10_is_not_controlled_with_density_just_under_3_2(catalog: ChipCatalog) -> None:
    ec = catalog.classify("nvidia-a10")
    assert ec.export_class == "not-controlled"
    assert ec.performance_density is not None
    assert 3.15 < ec.performance_density < 3.2
    assert "PD 3.18 < 3.2" in ec.basis


def test_h20_is_not_controlled_by_tpp_or_density_but_notes_its_licence(
    catalog: ChipCatalog,
) -> None:
    ec = catalog.classify("nvidia-h20")
    assert ec.export_class == "not-controlled"
    assert ec.performance_density == pytest.approx(2.91, abs=0.01)
    assert any("separate licence requirement" in n and "8-K" in n for n in ec.notes)
    assert not ec.controlled


@pytest.mark.parametrize(
    "model", ["nvidia-h100", "nvidia-a100", "nvidia-l40s", "amd-mi300x", "nvidia-b200"]
)
def test_flagship_accelerators_are_3a090a(catalog: ChipCatalog, model: str) -> None:
    ec = catalog.classify(model)
    assert ec.export_class == "3A090.a"
    assert ec.controlled
    assert ec.tpp is not None and ec.tpp >= 4800
    assert ec.basis.startswith("TPP ") and ec.basis.endswith(">= 4800")


@pytest.mark.parametrize("model", ["nvidia-v100", "nvidia-t4", "nvidia-t4g"])
def test_older_gpus_are_not_controlled(catalog: ChipCatalog, model: str) -> None:
    assert catalog.classify(model).export_class == "not-controlled"


def test_tpu_v4_is_at_least_3a090b_with_the_die_size_that_would_make_it_a(
    catalog: ChipCatalog,
) -> None:
    ec = catalog.classify("google-tpu-v4")
    assert ec.export_class == "3A090.b"
    assert ec.performance_density is None
    limit = round(ec.tpp / 5.92) if ec.tpp else None
    assert f".a if die <= {limit} mm2" in ec.basis


def test_unknown_model_is_classified_unknown_with_a_note(catalog: ChipCatalog) -> None:
    ec = catalog.classify("acme-warp-9")
    assert ec.export_class == "unknown"
    assert "not in the chip catalog" in ec.basis
    assert ec.notes and "chips.yaml" in ec.notes[0]


def test_chip_without_figures_is_unknown_and_marked_unverified(catalog: ChipCatalog) -> None:
    ec = catalog.classify("habana-gaudi")
    assert ec.export_class == "unknown"
    assert ec.tpp is None
    assert any("not verified" in n for n in ec.notes)


def test_unverified_inputs_still_classify_but_say_so(catalog: ChipCatalog) -> None:
    ec = catalog.classify("nvidia-rtx-pro-6000")
    entry = catalog.entry("nvidia-rtx-pro-6000")
    assert entry is not None and entry.verified is False
    assert ec.export_class == "3A090.a"
    assert any("not verified" in n for n in ec.notes)


def test_lookup_ignores_case_and_surrounding_space(catalog: ChipCatalog) -> None:
    assert catalog.classify(" NVIDIA-H100 ").export_class == "3A090.a"


@pytest.mark.parametrize(
    ("spec", "expected", "basis_part"),
    [
        ({"tpp": 4800, "die": 5000}, "3A090.a", ">= 4800"),
        ({"tpp": 4799, "die": 1000}, "3A090.b", "1.6 <= PD 4.80 < 5.92"),
        ({"tpp": 4799, "die": 5000}, "not-controlled", "PD 0.96 < 1.6"),
        ({"tpp": 1600, "die": 1600 / 5.93}, "3A090.a", "PD 5.93 >= 5.92"),
        ({"tpp": 1599, "die": 10}, "not-controlled", "TPP 1599 < 1600"),
        ({"tpp": 2400, "die": 2400 / 1.6}, "3A090.b", "1.6 <= PD 1.60"),
        ({"tpp": 2400, "die": 2400 / 1.59}, "not-controlled", "PD 1.59 < 1.6"),
        ({"tpp": 2000, "die": 2000 / 3.2}, "3A090.b", "3.2 <= PD 3.20"),
        ({"tpp": 2000, "die": 2000 / 3.19}, "not-controlled", "PD 3.19 < 3.2"),
        ({"tpp": 4000, "die": 2000, "datacenter": False}, "not-controlled", "Note 2"),
        ({"tpp": 6000, "die": 2000, "datacenter": False}, "3A090.a", ">= 4800"),
        ({"tpp": 3000, "die": None}, "3A090.b", "3A090.a if die <= 507 mm2"),
        ({"tpp": 2000, "die": None}, "unknown", "die area unknown"),
        ({"tpp": 1000, "die": None}, "not-controlled", "< 1600"),
        ({"tpp": 0, "die": None}, "unknown", "no dense performance figures"),
    ],
)
def test_rule_boundaries_follow_the_oct_2023_thresholds(
    tmp_path: Path, spec: dict[str, Any], expected: str, basis_part: str
) -> None:
    ec = synthetic_catalog(tmp_path, {"chip-x": spec}).classify("chip-x")
    assert ec.export_class == expected
    assert basis_part in ec.basis


def test_a_malformed_catalog_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "chips.yaml"
    text = DEFAULT_CHIPS_PATH.read_text(encoding="utf-8").replace(
        "    datacenter: true\n", "    datacenter: true\n    colour: green\n", 1
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        ChipCatalog(path)
    line = text.splitlines().index("    colour: green") + 1
    assert f"{path}:{line}:" in str(info.value)
    assert "unknown key" in str(info.value)
