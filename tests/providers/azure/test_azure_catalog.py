"""The bundled Azure size catalog: vmSize -> accelerators, with sources and verified flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import registry
from agent.errors import ConfigError
from providers.azure.catalog import AzureSizeCatalog, canonical_size


@pytest.fixture(scope="module")
def catalog() -> AzureSizeCatalog:
    return AzureSizeCatalog()


@pytest.mark.parametrize(
    ("size", "model", "count"),
    [
        ("Standard_ND96isr_H100_v5", "nvidia-h100", 8),
        ("Standard_ND96isr_H200_v5", "nvidia-h200", 8),
        ("Standard_ND96asr_v4", "nvidia-a100", 8),
        ("Standard_ND96amsr_A100_v4", "nvidia-a100", 8),
        ("Standard_NC24ads_A100_v4", "nvidia-a100", 1),
        ("Standard_NC48ads_A100_v4", "nvidia-a100", 2),
        ("Standard_NC96ads_A100_v4", "nvidia-a100", 4),
        ("Standard_NC40ads_H100_v5", "nvidia-h100-nvl", 1),
        ("Standard_NC80adis_H100_v5", "nvidia-h100-nvl", 2),
        ("Standard_ND96isr_MI300X_v5", "amd-mi300x", 8),
        ("Standard_NC4as_T4_v3", "nvidia-t4", 1),
        ("Standard_NC64as_T4_v3", "nvidia-t4", 4),
        ("Standard_NV6ads_A10_v5", "nvidia-a10", 1 / 6),
        ("Standard_NV12ads_A10_v5", "nvidia-a10", 1 / 3),
        ("Standard_NV18ads_A10_v5", "nvidia-a10", 1 / 2),
        ("Standard_NV36ads_A10_v5", "nvidia-a10", 1),
        ("Standard_NV72ads_A10_v5", "nvidia-a10", 2),
        ("Standard_NC6s_v3", "nvidia-v100", 1),
        ("Standard_NC24rs_v3", "nvidia-v100", 4),
        ("Standard_ND40rs_v2", "nvidia-v100", 8),
        ("Standard_ND128isr_NDR_GB200_v6", "nvidia-gb200", 4),
    ],
)
def test_known_gpu_sizes_map_to_canonical_model_and_count(
    catalog: AzureSizeCatalog, size: str, model: str, count: float
) -> None:
    (acc,) = catalog.accelerators(size) or ()
    assert acc.model == model
    assert acc.count == pytest.approx(count)


def test_lookup_ignores_case_and_the_standard_prefix(catalog: AzureSizeCatalog) -> None:
    assert catalog.accelerators("standard_nd96isr_h100_v5") == catalog.accelerators(
        "ND96isr_H100_v5"
    )
    assert canonical_size("ND96isr_H100_v5") == "standard_nd96isr_h100_v5"


def test_non_gpu_family_is_known_without_accelerators(catalog: AzureSizeCatalog) -> None:
    assert catalog.accelerators("Standard_A1_v2") == ()
    assert catalog.accelerators("Standard_D4s_v5") == ()


def test_unknown_n_series_size_is_unknown_not_gpu_free(catalog: AzureSizeCatalog) -> None:
    assert catalog.accelerators("Standard_ND96isr_B300_v7") is None
    assert catalog.accelerators("") is None


def test_every_row_names_its_source_and_only_primary_sourced_rows_are_verified(
    catalog: AzureSizeCatalog,
) -> None:
    rows = catalog.sizes()
    assert rows and all(row.source for row in rows)
    verified = {row.series for row in rows if row.verified}
    assert verified == {"ND MI300X v5"}  # the only [V] row of domain.md 4.3
    assert all("[V]" in row.source for row in rows if row.verified)


def test_registered_as_the_azure_instance_catalog() -> None:
    assert registry.instance_catalogs.load("azure") is AzureSizeCatalog


def test_a_site_table_with_a_bad_count_names_the_file(tmp_path: Path) -> None:
    table = tmp_path / "sizes.yaml"
    table.write_text(
        "series:\n  - series: X\n    model: nvidia-x\n    sizes:\n      Standard_NX1: 'one'\n"
    )
    with pytest.raises(ConfigError, match=r"sizes\.yaml.*Standard_NX1"):
        AzureSizeCatalog(table)
