"""EC2 shapes -> models: accelerators of real InstanceTypeInfo objects, instances of a recorded
DescribeInstances response."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.errors import RecordError
from agent.models import Accelerator
from providers.aws.normalize import (
    accelerators_from_type_info,
    canonical_model,
    instance_from_ec2,
)

from .conftest import EC2


def load_types(name: str) -> dict[str, dict[str, Any]]:
    return dict(json.loads((EC2 / name).read_text()))


GPU_TYPES = load_types("moto__instance_types__gpu_subset.json")
NEURON_TYPES = load_types("moto__instance_types__neuron_fpga_subset.json")
PLAIN_TYPES = load_types("moto__instance_types__nongpu_examples.json")
# Canonical ids the chip catalog knows (the brief's mapping), by API name.
EXPECTED_IDS = {
    "H100": "nvidia-h100",
    "H200": "nvidia-h200",
    "A100": "nvidia-a100",
    "A10G": "nvidia-a10g",
    "L4": "nvidia-l4",
    "L40S": "nvidia-l40s",
    "T4": "nvidia-t4",
    "T4g": "nvidia-t4g",
    "V100": "nvidia-v100",
    "B200": "nvidia-b200",
    "B300": "nvidia-b300",
    "RTX PRO Server 6000": "nvidia-rtx-pro-6000",
    "Radeon Pro V520": "amd-radeon-pro-v520",
    "RTX PRO 4500": "nvidia-rtx-pro-4500",
}


@pytest.mark.parametrize(
    ("name", "manufacturer", "expected"),
    [
        ("H100", "NVIDIA", "nvidia-h100"),
        ("RTX PRO Server 6000", "NVIDIA", "nvidia-rtx-pro-6000"),
        ("Radeon Pro V520", "AMD", "amd-radeon-pro-v520"),
        ("Trainium2", None, "aws-trainium2"),
        ("Inferentia", "AWS", "aws-inferentia"),
        ("Gaudi HL-205", "Habana", "habana-gaudi"),
        ("Qualcomm AI100", "Qualcomm", "qualcomm-ai100"),
        ("M60", "NVIDIA", "nvidia-m60"),
        ("K80", "NVIDIA", "nvidia-k80"),
        ("Instinct MI300X", "AMD", "amd-instinct-mi300x"),
        ("Widget 9", None, "widget-9"),
    ],
)
def test_api_names_map_to_catalog_ids_and_unknown_ones_to_vendor_slugs(
    name: str, manufacturer: str | None, expected: str
) -> None:
    assert canonical_model(name, manufacturer) == expected


@pytest.mark.parametrize("instance_type", sorted(GPU_TYPES))
def test_every_real_gpu_type_yields_canonical_gpus_with_memory(instance_type: str) -> None:
    info = GPU_TYPES[instance_type]
    (acc,) = accelerators_from_type_info(info)
    gpu = info["GpuInfo"]["Gpus"][0]
    assert acc.model == EXPECTED_IDS[gpu["Name"]]
    assert acc.source_name == gpu["Name"]
    assert acc.vendor == gpu["Manufacturer"]
    assert acc.memory_mib == gpu["MemoryInfo"]["SizeInMiB"]
    assert acc.count > 0


def test_p5_48xlarge_has_eight_h100() -> None:
    assert accelerators_from_type_info(GPU_TYPES["p5.48xlarge"]) == (
        Accelerator(
            model="nvidia-h100", count=8, source_name="H100", vendor="NVIDIA", memory_mib=81920
        ),
    )


@pytest.mark.parametrize("instance_type", sorted(t for t in GPU_TYPES if t.startswith("g6f.")))
def test_fractional_gpus_count_logical_gpus_times_partition(instance_type: str) -> None:
    gpu = GPU_TYPES[instance_type]["GpuInfo"]["Gpus"][0]
    (acc,) = accelerators_from_type_info(GPU_TYPES[instance_type])
    assert gpu["Count"] == 0
    assert acc.count == gpu["LogicalGpuCount"] * gpu["GpuPartitionSize"]
    assert 0 < acc.count < 1


def test_trainium_comes_from_neuron_info() -> None:
    (acc,) = accelerators_from_type_info(NEURON_TYPES["trn1.32xlarge"])
    assert (acc.model, acc.count, acc.vendor) == ("aws-trainium", 16, "AWS")


def test_inferentia_listed_twice_by_the_api_is_counted_once() -> None:
    info = NEURON_TYPES["inf1.24xlarge"]
    assert "InferenceAcceleratorInfo" in info and "NeuronInfo" in info
    (acc,) = accelerators_from_type_info(info)
    assert (acc.model, acc.count) == ("aws-inferentia", 16)


def test_qualcomm_comes_from_inference_accelerator_info() -> None:
    (acc,) = accelerators_from_type_info(NEURON_TYPES["dl2q.24xlarge"])
    assert (acc.model, acc.count, acc.vendor) == ("qualcomm-ai100", 8, "Qualcomm")


@pytest.mark.parametrize("instance_type", [*sorted(PLAIN_TYPES), "f2.6xlarge"])
def test_types_without_gpu_neuron_or_inference_accelerators_have_none(instance_type: str) -> None:
    info = {**PLAIN_TYPES, **NEURON_TYPES}[instance_type]
    assert accelerators_from_type_info(info) == ()


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ("p5", "InstanceTypeInfo must be an object"),
        ({"GpuInfo": "H100"}, "GpuInfo must be an object"),
        ({"GpuInfo": {"Gpus": {"Name": "H100"}}}, "GpuInfo.Gpus must be a list"),
        ({"GpuInfo": {"Gpus": [{"Count": 8}]}}, r"GpuInfo.Gpus\[0\].Name is missing"),
        ({"GpuInfo": {"Gpus": [{"Name": "H100", "Count": "8"}]}}, "Count must be a number"),
    ],
)
def test_malformed_type_info_raises_record_error(info: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        accelerators_from_type_info(info)


def _placebo_datetimes(value: Any) -> Any:
    """placebo stores datetimes as {"__class__": "datetime", ...}; boto3 gives datetimes."""
    if isinstance(value, dict):
        if value.get("__class__") == "datetime":
            fields = {k: v for k, v in value.items() if k != "__class__"}
            return datetime(**fields, tzinfo=UTC)
        return {k: _placebo_datetimes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placebo_datetimes(v) for v in value]
    return value


def recorded_instances() -> list[dict[str, Any]]:
    doc = json.loads(
        (
            EC2 / "cloud-custodian__placebo__test_ec2_set_md_access__ec2.DescribeInstances_1.json"
        ).read_text()
    )
    data = _placebo_datetimes(doc["data"])
    return [i for r in data["Reservations"] for i in r["Instances"]]


def test_recorded_instance_keeps_addresses_enis_tags_state_and_launch_time() -> None:
    raw = recorded_instances()[0]
    instance = instance_from_ec2(raw, account="644160558196", region="us-east-1", accelerators=None)
    assert instance.instance_id == "i-04af9cf7218a61430"
    assert instance.instance_type == "t3.small"
    assert instance.state == "running"
    assert "100.27.16.222" in instance.public_ips
    assert "172.31.10.41" in instance.private_ips
    assert instance.network_interfaces == tuple(
        n["NetworkInterfaceId"] for n in raw["NetworkInterfaces"]
    )
    assert instance.tags == {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
    assert instance.launched_at == datetime(2022, 8, 16, 19, 41, 57, tzinfo=UTC)
    assert not instance.has_accelerators
    assert instance.evidence is not None and instance.evidence.locator == "ec2:DescribeInstances"


def test_every_recorded_instance_normalises() -> None:
    instances = [
        instance_from_ec2(r, account="1", region="us-east-1", accelerators=())
        for r in recorded_instances()
    ]
    assert len(instances) == len({i.instance_id for i in instances}) > 1


def test_accelerators_are_attached_and_name_tag_becomes_the_name() -> None:
    raw = copy.deepcopy(recorded_instances()[0])
    raw["Tags"] = [{"Key": "Name", "Value": "trainer-7"}]
    raw["LaunchTime"] = "2026-01-05T10:00:00+01:00"
    raw["NetworkInterfaces"][0]["Ipv6Addresses"] = [{"Ipv6Address": "2600:1f18::1"}]
    h100 = accelerators_from_type_info(GPU_TYPES["p5.48xlarge"])
    instance = instance_from_ec2(raw, account="1", region="us-east-1", accelerators=h100)
    assert instance.has_accelerators and instance.accelerators == h100
    assert instance.name == "trainer-7"
    assert instance.launched_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert "2600:1f18::1" in instance.public_ips


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: {k: v for k, v in r.items() if k != "InstanceId"}, "InstanceId is missing"),
        (lambda r: {**r, "LaunchTime": "last tuesday"}, "LaunchTime 'last tuesday'"),
        (lambda r: {**r, "State": "running"}, "State must be an object"),
    ],
)
def test_malformed_instance_raises_record_error(mutate: Any, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        instance_from_ec2(mutate(recorded_instances()[0]), account="1", region="r", accelerators=())
