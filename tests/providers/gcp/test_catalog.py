"""The bundled GCP catalog: accelerator names -> chip ids, machine types, Cloud TPU types."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.registry import instance_catalogs
from providers.gcp.catalog import GcpMachineCatalog, canonical_accelerator


@pytest.mark.parametrize(
    ("api_name", "chip"),
    [
        ("nvidia-h100-80gb", "nvidia-h100"),
        ("nvidia-h100-mega-80gb", "nvidia-h100"),
        ("nvidia-tesla-a100", "nvidia-a100"),
        ("nvidia-a100-80gb", "nvidia-a100"),
        ("nvidia-h200-141gb", "nvidia-h200"),
        ("nvidia-b200", "nvidia-b200"),
        ("nvidia-gb200", "nvidia-gb200"),
        ("nvidia-l4", "nvidia-l4"),
        ("nvidia-l4-vws", "nvidia-l4"),
        ("nvidia-tesla-t4", "nvidia-t4"),
        ("nvidia-tesla-v100", "nvidia-v100"),
        ("nvidia-tesla-p100", "nvidia-p100"),
        ("nvidia-tesla-p4", "nvidia-p4"),
        ("nvidia-rtx-pro-6000", "nvidia-rtx-pro-6000"),
    ],
)
def test_api_accelerator_names_map_to_canonical_chip_ids(api_name: str, chip: str) -> None:
    assert canonical_accelerator(api_name) == chip


def test_accelerator_urls_are_reduced_to_their_name_first() -> None:
    url = (
        "https://www.googleapis.com/compute/v1/projects/p/zones/europe-west4-a/"
        "acceleratorTypes/nvidia-tesla-v100"
    )
    assert canonical_accelerator(url) == "nvidia-v100"


def test_unlisted_accelerator_names_follow_the_generic_spelling_rule() -> None:
    assert canonical_accelerator("nvidia-tesla-k80") == "nvidia-k80"
    assert canonical_accelerator("nvidia-h300-200gb") == "nvidia-h300"


@pytest.mark.parametrize(
    ("machine_type", "chip", "count"),
    [
        ("a2-highgpu-1g", "nvidia-a100", 1),
        ("a2-megagpu-16g", "nvidia-a100", 16),
        ("a2-ultragpu-8g", "nvidia-a100", 8),
        ("a3-highgpu-8g", "nvidia-h100", 8),
        ("a3-megagpu-8g", "nvidia-h100", 8),
        ("a3-ultragpu-8g", "nvidia-h200", 8),
        ("a4-highgpu-8g", "nvidia-b200", 8),
        ("a4x-highgpu-4g", "nvidia-gb200", 4),
        ("g2-standard-24", "nvidia-l4", 2),
        ("g2-standard-96", "nvidia-l4", 8),
    ],
)
def test_accelerator_optimised_types_carry_their_bundled_gpus(
    machine_type: str, chip: str, count: int
) -> None:
    (acc,) = GcpMachineCatalog().accelerators(machine_type) or ()
    assert (acc.model, acc.count, acc.vendor) == (chip, count, "nvidia")


def test_source_name_keeps_the_api_spelling_for_reviewers() -> None:
    (acc,) = GcpMachineCatalog().accelerators("a3-megagpu-8g") or ()
    assert acc.source_name == "nvidia-h100-mega-80gb"


def test_known_general_purpose_types_have_no_accelerators_and_unknown_types_are_none() -> None:
    catalog = GcpMachineCatalog()
    assert catalog.accelerators("n1-standard-2") == ()
    assert catalog.accelerators("e2-custom-4-16384") == ()
    assert catalog.accelerators("zz9-quantum-1") is None
    assert catalog.accelerators("a3-futuregpu-99g") is None


def test_bundling_families_are_recognised_from_full_urls() -> None:
    catalog = GcpMachineCatalog()
    url = "https://www.googleapis.com/compute/v1/projects/p/zones/z/machineTypes/a4x-highgpu-4g"
    assert catalog.bundles_accelerators(url)
    assert not catalog.bundles_accelerators("n1-standard-8")


@pytest.mark.parametrize(
    ("tpu_type", "topology", "chip", "chips"),
    [
        ("v4-8", None, "google-tpu-v4", 4),
        ("v4-8", "2x2x1", "google-tpu-v4", 4),
        ("v4-32", "2x2x4", "google-tpu-v4", 16),
        ("v5litepod-8", None, "google-tpu-v5e", 8),
        ("v5p-8", None, "google-tpu-v5p", 4),
        ("v6e-8", None, "google-tpu-v6e", 8),
    ],
)
def test_tpu_types_count_chips_from_topology_or_the_type_suffix(
    tpu_type: str, topology: str | None, chip: str, chips: int
) -> None:
    (acc,) = GcpMachineCatalog().tpu_accelerators(tpu_type, topology=topology) or ()
    assert (acc.model, acc.count, acc.source_name) == (chip, chips, tpu_type)


def test_unknown_tpu_types_are_none() -> None:
    assert GcpMachineCatalog().tpu_accelerators("v99-8") is None
    assert GcpMachineCatalog().tpu_accelerators("not-a-tpu") is None


def test_every_row_names_a_source_and_only_v_rows_count_as_verified() -> None:
    data = GcpMachineCatalog().data
    rows = [
        *data.accelerator_names.values(),
        *data.machine_types.values(),
        *data.tpu_generations.values(),
    ]
    assert all(row.sources for row in rows)
    assert {row.verified for row in rows if row.confidence != "V"} == {False}


def test_every_machine_type_row_uses_a_listed_accelerator_name() -> None:
    data = GcpMachineCatalog().data
    assert {row.accelerator for row in data.machine_types.values()} <= set(data.accelerator_names)


def test_a_malformed_catalog_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text("as_of: x\naccelerator_names: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"catalog\.yaml"):
        GcpMachineCatalog(bad)


def test_the_catalog_is_registered_for_static_inventories() -> None:
    catalog = instance_catalogs.load("gcp")()
    (acc,) = catalog.accelerators("a3-highgpu-8g")
    assert acc.model == "nvidia-h100"
