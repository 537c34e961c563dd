"""Pure normalisation of recorded ARM JSON: VMs, NICs, SKUs and accelerator resolution."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from agent.errors import RecordError
from providers.azure.catalog import AzureSizeCatalog
from providers.azure.inventory import (
    TAG_GPU_COUNT,
    TAG_SKU_GPUS,
    TAG_UNKNOWN_SIZE,
    UNKNOWN_GPU,
    resolve_accelerators,
)
from providers.azure.normalize import (
    gpu_instance,
    mac_key,
    nic_info,
    parse_time,
    public_ip_address,
    resource_id,
    sku_gpu_counts,
    subscription_of,
    vm_id_of,
    vm_size_of,
)
from tests.providers.azure.azfixtures import SUB_A, SUB_B, cassette_value, load

CATALOG = AzureSizeCatalog()


def test_cassette_vm_normalises_with_lower_cased_ids_and_no_gpu() -> None:
    (vm,) = cassette_value("cloud-custodian__cassette__VMTest.virtual_machine.json")
    size = vm_size_of(vm)
    assert size is not None
    instance = gpu_instance(
        vm, subscription_id=SUB_B, vm_size=size, accelerators=CATALOG.accelerators(size) or ()
    )
    assert instance.instance_id == vm["id"].lower()
    assert instance.account == SUB_B
    assert (instance.instance_type, instance.region, instance.name) == (
        "Standard_A1_v2",
        "southcentralus",
        "cctestvm",
    )
    assert instance.network_interfaces == (
        vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"].lower(),
    )
    assert instance.tags["testtag"] == "testvalue"
    assert not instance.has_accelerators


def test_gpu_vm_keeps_size_creation_time_and_provider_state() -> None:
    vm = load("arm_virtual_machines.json")["value"][0]
    instance = gpu_instance(
        vm,
        subscription_id=SUB_A,
        vm_size=vm_size_of(vm),
        accelerators=CATALOG.accelerators("Standard_ND96isr_H100_v5") or (),
    )
    assert instance.accelerators[0].model == "nvidia-h100"
    assert instance.launched_at is not None and instance.launched_at.year == 2024
    assert instance.state == "Succeeded"
    assert "/resourcegroups/ml-training/" in instance.instance_id


def test_uniform_scale_set_vm_takes_its_size_from_sku() -> None:
    vm = load("arm_scale_set_vms.json")["value"][0]
    assert "hardwareProfile" not in vm["properties"]
    assert vm_size_of(vm) == "Standard_NC24ads_A100_v4"
    assert vm_size_of({"properties": {}}, fallback="Standard_X") == "Standard_X"


def test_vm_without_id_or_with_a_bad_time_is_a_record_error() -> None:
    vm = load("arm_virtual_machines.json")["value"][0]
    with pytest.raises(RecordError, match="resource id"):
        gpu_instance({**vm, "id": None}, subscription_id=SUB_A, vm_size=None, accelerators=())
    broken = {**vm, "properties": {**vm["properties"], "timeCreated": "yesterday"}}
    with pytest.raises(RecordError, match="timeCreated"):
        gpu_instance(broken, subscription_id=SUB_A, vm_size=None, accelerators=())


def test_cassette_nic_yields_private_ip_mac_and_public_ip_reference() -> None:
    data = load("cloud-custodian__cassette__VMTest.virtual_machine_interface.json")
    nic = next(
        i["response"]["body"]["data"]
        for i in data["interactions"]
        if "networkInterfaces" in i["request"]["uri"]
    )
    info = nic_info(nic)
    assert info.private_ips == ("10.0.0.4",)
    assert info.mac == "000D3AEF1C8C"
    assert info.public_ip_ids == (
        nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"].lower(),
    )


def test_public_ip_address_is_read_from_properties() -> None:
    network = load("arm_network.json")
    pip = next(v for k, v in network.items() if "publicIPAddresses" in k)
    assert public_ip_address(pip) == "20.51.10.7"
    assert public_ip_address({"properties": {}}) is None


def test_sku_gpu_counts_reads_the_gpus_capability_of_vm_skus_only() -> None:
    counts = sku_gpu_counts(load("arm_resource_skus.json")["value"])
    assert counts["standard_nd96isr_h100_v5"] == 8
    assert counts["standard_d4s_v5"] == 0
    assert "premium_lrs" not in counts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "/SUBSCRIPTIONS/ABC/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM1",
            "/subscriptions/abc/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
        ),
        (
            "/subscriptions/abc/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/"
            "providers/Microsoft.SerialConsole/serialPorts/0",
            "/subscriptions/abc/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
        ),
        (
            "/subscriptions/abc/resourceGroups/rg/providers/Microsoft.Compute/"
            "virtualMachineScaleSets/ss/virtualMachines/3",
            "/subscriptions/abc/resourcegroups/rg/providers/microsoft.compute/"
            "virtualmachinescalesets/ss/virtualmachines/3",
        ),
        ("/subscriptions/abc/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b", None),
        (None, None),
    ],
)
def test_vm_id_of_extracts_the_vm_a_resource_belongs_to(
    value: str | None, expected: str | None
) -> None:
    assert vm_id_of(value) == expected


def test_id_helpers_lower_case_and_reject_non_ids() -> None:
    assert resource_id("/Subscriptions/X/") == "/subscriptions/x"
    assert subscription_of("/SUBSCRIPTIONS/AbC/resourceGroups/x") == "abc"
    with pytest.raises(RecordError):
        resource_id("vm1")
    assert mac_key("00-0d-3a-ef-1c-8c") == "000D3AEF1C8C"
    assert mac_key("zz") is None


def test_parse_time_accepts_seven_digit_fractions_and_offsets() -> None:
    when = parse_time("2019-10-18T04:45:48.0729893-05:00", field="t")
    assert when.hour == 9 and when.tzinfo is not None
    with pytest.raises(RecordError, match="t: "):
        parse_time("", field="t")


def test_catalog_size_matching_the_sku_count_has_no_doubt_tags() -> None:
    found = resolve_accelerators("Standard_ND96isr_H100_v5", catalog=CATALOG, sku_gpus=8)
    assert [a.model for a in found.accelerators] == ["nvidia-h100"]
    assert found.tags == {}


def test_fractional_size_reported_as_one_gpu_is_not_a_mismatch() -> None:
    found = resolve_accelerators("Standard_NV6ads_A10_v5", catalog=CATALOG, sku_gpus=1)
    assert found.accelerators[0].count == pytest.approx(1 / 6)
    assert found.tags == {}


def test_sku_count_disagreeing_with_the_catalog_is_tagged_and_logged() -> None:
    with capture_logs() as logs:
        found = resolve_accelerators("Standard_ND96isr_H100_v5", catalog=CATALOG, sku_gpus=4)
    assert found.accelerators[0].count == 8  # the cited table wins, the doubt is visible
    assert found.tags == {TAG_SKU_GPUS: "4"}
    assert [e["event"] for e in logs] == ["azure_gpu_count_mismatch"]


def test_unknown_size_with_gpus_becomes_unknown_gpu_flagged_and_logged() -> None:
    with capture_logs() as logs:
        found = resolve_accelerators("Standard_ND96isr_B300_v7", catalog=CATALOG, sku_gpus=8)
    assert [(a.model, a.count) for a in found.accelerators] == [(UNKNOWN_GPU, 8)]
    assert found.tags == {TAG_UNKNOWN_SIZE: "Standard_ND96isr_B300_v7"}
    assert logs[0]["event"] == "azure_unknown_gpu_size"


def test_unknown_n_size_without_sku_data_is_still_flagged_as_gpu() -> None:
    found = resolve_accelerators("Standard_NX9_v9", catalog=CATALOG, sku_gpus=None)
    assert found.accelerators[0].model == UNKNOWN_GPU
    assert found.tags[TAG_GPU_COUNT] == "unknown"


def test_sizes_without_gpus_resolve_to_nothing() -> None:
    assert (
        resolve_accelerators("Standard_D4s_v5", catalog=CATALOG, sku_gpus=None).accelerators == ()
    )
    assert resolve_accelerators("Standard_NP10s", catalog=CATALOG, sku_gpus=0).accelerators == ()
    assert resolve_accelerators(None, catalog=CATALOG, sku_gpus=None).accelerators == ()
