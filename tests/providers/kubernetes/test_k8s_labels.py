"""Node label values -> canonical chip ids (the bundled table and its validation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from providers.kubernetes.labels import LabelCatalog

TABLE = LabelCatalog.load()


@pytest.mark.parametrize(
    ("label", "model"),
    [
        ("NVIDIA-H100-80GB-HBM3", "nvidia-h100"),
        ("NVIDIA-H100-PCIe", "nvidia-h100-pcie"),
        ("NVIDIA-H100-NVL", "nvidia-h100-nvl"),
        ("NVIDIA-H200", "nvidia-h200"),
        ("NVIDIA-H20", "nvidia-h20"),
        ("NVIDIA-A100-SXM4-40GB", "nvidia-a100"),
        ("NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", "nvidia-a100"),
        ("A100-SXM4-80GB", "nvidia-a100"),
        ("NVIDIA-A10G", "nvidia-a10g"),
        ("NVIDIA-A10", "nvidia-a10"),
        ("NVIDIA-L4", "nvidia-l4"),
        ("NVIDIA-L40S", "nvidia-l40s"),
        ("Tesla-T4", "nvidia-t4"),
        ("Tesla-T4-SHARED", "nvidia-t4"),
        ("Tesla-V100-SXM2-16GB", "nvidia-v100"),
        ("NVIDIA-B200", "nvidia-b200"),
        ("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", "nvidia-rtx-pro-6000"),
        # unknown products keep a vendor-prefixed slug, so they classify as "unknown"
        ("NVIDIA-GeForce-RTX-3070", "nvidia-geforce-rtx-3070"),
        ("Tesla-K80", "nvidia-k80"),
    ],
)
def test_gpu_feature_discovery_product_label_maps_to_a_chip_id(label: str, model: str) -> None:
    match = TABLE.nvidia_product(label)
    assert match.model == model
    assert match.source_name == label


def test_unlisted_product_is_marked_unverified() -> None:
    assert TABLE.nvidia_product("NVIDIA-GeForce-RTX-3070").verified is False
    assert TABLE.nvidia_product("NVIDIA-H100-80GB-HBM3").verified is True


@pytest.mark.parametrize(
    ("label", "model"),
    [
        ("nvidia-tesla-a100", "nvidia-a100"),
        ("nvidia-a100-80gb", "nvidia-a100"),
        ("nvidia-h100-80gb", "nvidia-h100"),
        ("nvidia-h100-mega-80gb", "nvidia-h100"),
        ("nvidia-h200-141gb", "nvidia-h200"),
        ("nvidia-tesla-t4", "nvidia-t4"),
        ("nvidia-l4", "nvidia-l4"),
        ("nvidia-tesla-p9000-24gb", "nvidia-p9000"),
    ],
)
def test_gke_accelerator_label_maps_to_a_chip_id(label: str, model: str) -> None:
    assert TABLE.gke_accelerator(label).model == model


@pytest.mark.parametrize(
    ("label", "model"),
    [
        ("tpu-v5-lite-podslice", "google-tpu-v5e"),
        ("tpu-v5p-slice", "google-tpu-v5p"),
        ("tpu-v6e-slice", "google-tpu-v6e"),
        ("tpu-v99-slice", "google-tpu-v99-slice"),
    ],
)
def test_gke_tpu_label_maps_to_a_chip_id(label: str, model: str) -> None:
    assert TABLE.gke_tpu(label).model == model


def test_amd_product_or_device_id_maps_to_a_chip_id() -> None:
    assert (
        TABLE.amd_product(product="AMD_Instinct_MI300X_OAM", device_id=None).model == "amd-mi300x"
    )
    assert TABLE.amd_product(product=None, device_id="0x74A1").model == "amd-mi300x"
    assert TABLE.amd_product(product="AMD Instinct MI999", device_id=None).model == "amd-mi999"


def test_a_broken_table_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "labels.yaml"
    bad.write_text(
        "nvidia_product_patterns:\n"
        "  - {pattern: '^H100(', model: nvidia-h100}\n"
        "gke_accelerators: {}\ngke_tpu_accelerators: {}\n"
        "amd_product_patterns: []\namd_device_ids: {}\n"
    )
    with pytest.raises(ConfigError, match=r"labels\.yaml:2.*invalid regex"):
        LabelCatalog.load(bad)
