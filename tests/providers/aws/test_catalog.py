"""Offline instance-type catalog and the generator that builds its table from moto's data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from agent import registry
from agent.errors import ConfigError
from providers.aws.catalog import AwsInstanceCatalog
from providers.aws.data import generate_instance_types as gen
from providers.aws.normalize import accelerators_from_type_info

from .conftest import EC2


@pytest.fixture(scope="module")
def catalog() -> AwsInstanceCatalog:
    return AwsInstanceCatalog()


def test_p5_48xlarge_has_eight_h100(catalog: AwsInstanceCatalog) -> None:
    (acc,) = catalog.accelerators("p5.48xlarge") or ()
    assert (acc.model, acc.count, acc.source_name) == ("nvidia-h100", 8, "H100")


def test_p4d_24xlarge_has_eight_a100(catalog: AwsInstanceCatalog) -> None:
    (acc,) = catalog.accelerators("p4d.24xlarge") or ()
    assert (acc.model, acc.count) == ("nvidia-a100", 8)


def test_g6f_types_carry_a_fraction_of_an_l4(catalog: AwsInstanceCatalog) -> None:
    fractional = [t for t in catalog.types() if t.startswith("g6f.")]
    assert fractional
    for name in fractional:
        (acc,) = catalog.accelerators(name) or ()
        gpu = (catalog.type_info(name) or {})["GpuInfo"]["Gpus"][0]
        assert acc.model == "nvidia-l4"
        assert acc.count == gpu["LogicalGpuCount"] * gpu["GpuPartitionSize"] < 1


def test_trn1_32xlarge_has_sixteen_trainium(catalog: AwsInstanceCatalog) -> None:
    (acc,) = catalog.accelerators("trn1.32xlarge") or ()
    assert (acc.model, acc.count) == ("aws-trainium", 16)


def test_known_type_without_gpu_is_empty_not_unknown(catalog: AwsInstanceCatalog) -> None:
    assert catalog.accelerators("t3.micro") == ()
    assert catalog.known("t3.micro")


def test_nonsense_type_is_unknown(catalog: AwsInstanceCatalog) -> None:
    assert catalog.accelerators("x9.nonsense") is None
    assert not catalog.known("x9.nonsense")


def test_lookup_ignores_case_and_whitespace(catalog: AwsInstanceCatalog) -> None:
    assert catalog.accelerators(" P5.48XLARGE ") == catalog.accelerators("p5.48xlarge")


def test_table_names_its_source_and_licence(catalog: AwsInstanceCatalog) -> None:
    assert "moto" in catalog.provenance["source"]
    assert "Apache-2.0" in catalog.provenance["licence"]
    assert catalog.provenance["types_total"] == len(catalog.types())


def test_table_agrees_with_real_describe_instance_types_objects(
    catalog: AwsInstanceCatalog,
) -> None:
    real = json.loads((EC2 / "moto__instance_types__gpu_subset.json").read_text())
    real |= json.loads((EC2 / "moto__instance_types__neuron_fpga_subset.json").read_text())
    shared = [t for t in real if catalog.known(t)]
    assert len(shared) > 50
    for name in shared:
        assert catalog.accelerators(name) == accelerators_from_type_info(real[name]), name


def test_catalog_is_registered_under_aws() -> None:
    assert registry.instance_catalogs.load("aws") is AwsInstanceCatalog


# ----------------------------------------------------------------------------- generator

RAW: dict[str, Any] = {
    "zz1.big": {
        "InstanceType": "zz1.big",
        "VCpuInfo": {"DefaultVCpus": 96},
        "GpuInfo": {
            "Gpus": [
                {
                    "Name": "H100",
                    "Manufacturer": "NVIDIA",
                    "Count": 8,
                    "Workloads": ["ml-ai"],
                    "MemoryInfo": {"SizeInMiB": 81920},
                }
            ],
            "TotalGpuMemoryInMiB": 655360,
        },
    },
    "zz1.small": {"InstanceType": "zz1.small", "VCpuInfo": {"DefaultVCpus": 2}},
    "u-6tb1.metal": {"InstanceType": "u-6tb1.metal"},
}


def test_generator_keeps_only_accelerator_fields_and_every_type_name() -> None:
    table = gen.build_table(RAW, source="synthetic")
    assert list(table) == ["provenance", "accelerated", "known_types"]
    assert table["accelerated"] == {
        "zz1.big": {
            "GpuInfo": {
                "Gpus": [
                    {
                        "Name": "H100",
                        "Manufacturer": "NVIDIA",
                        "Count": 8,
                        "MemoryInfo": {"SizeInMiB": 81920},
                    }
                ]
            }
        }
    }
    assert table["known_types"] == {"u-6tb1": ["metal"], "zz1": ["big", "small"]}
    assert table["provenance"]["types_total"] == 3


def test_generated_table_loads_as_a_catalog(tmp_path: Path) -> None:
    source = tmp_path / "instance_types.json.gz"
    source.write_bytes(gzip.compress(json.dumps(RAW).encode()))
    out = tmp_path / "table.json"
    assert gen.main(["--source", str(source), "--output", str(out)]) == 0
    catalog = AwsInstanceCatalog(path=out)
    assert [a.model for a in catalog.accelerators("zz1.big") or ()] == ["nvidia-h100"]
    assert catalog.accelerators("zz1.small") == ()
    assert catalog.accelerators("u-6tb1.metal") == ()
    assert catalog.accelerators("p5.48xlarge") is None


def test_check_mode_reports_a_stale_table(tmp_path: Path) -> None:
    source = tmp_path / "types.json"
    source.write_text(json.dumps(RAW))
    out = tmp_path / "table.json"
    out.write_text("{}")
    assert gen.main(["--source", str(source), "--output", str(out), "--check"]) == 1
    gen.main(["--source", str(source), "--output", str(out)])
    assert gen.main(["--source", str(source), "--output", str(out), "--check"]) == 0


def test_unreadable_table_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"accelerated": {}}')
    with pytest.raises(ConfigError, match=r"broken\.json") as info:
        AwsInstanceCatalog(path=broken)
    assert "generate_instance_types" in (info.value.hint or "")
