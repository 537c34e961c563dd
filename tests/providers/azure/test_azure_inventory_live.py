"""AzureSource inventory through the real azure-mgmt-* clients against the local HTTPS fake."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from agent import registry
from agent.contracts import InventorySource, SessionSource, SourceEnv
from agent.errors import ConfigError
from agent.models import GpuInstance
from providers.azure.inventory import TAG_UNKNOWN_SIZE, UNKNOWN_GPU
from providers.azure.provider import AzureSource
from tests.providers.azure.azfixtures import (
    A10_ID,
    H100_ID,
    NEXT_ID,
    SS_VM0,
    SUB_A,
    SUB_B,
    SUB_DENIED,
    make_ctx,
    seed_arm,
)
from tests.providers.azure.fakeazure import FakeAzure


def _inventory(config: dict[str, Any], env: SourceEnv) -> tuple[dict[str, GpuInstance], Any]:
    source = AzureSource.from_config(config, env=env)
    ctx = make_ctx()
    instances = {i.instance_id: i for i in source.inventory(ctx)}
    return instances, ctx


def test_all_enabled_subscriptions_are_listed_across_pages_when_none_are_configured(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    instances, _ = _inventory(config, env)
    assert {i.account for i in instances.values()} == {SUB_A, SUB_B}
    assert len(fake.calls("/subscriptions?")) == 2  # 4 subscriptions, 2 per page
    assert not fake.calls("/subscriptions/5e6f7a8b")  # Disabled is skipped
    # VM list of SUB_A came in two pages through the absolute nextLink
    assert (
        len(fake.calls(f"/subscriptions/{SUB_A}/providers/Microsoft.Compute/virtualMachines?")) == 2
    )
    assert len(instances) == 7  # 4 VMs + 2 scale-set VMs in A, the cassette VM in B
    # the recorded (cloud-custodian) scale set of B is listed and its instances asked for
    assert fake.calls(
        "/resourceGroups/TEST_VMSS/providers/Microsoft.Compute/virtualMachineScaleSets/cctestvmss/virtualMachines"
    )


def test_a_denied_subscription_is_a_scope_error_and_the_others_continue(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    instances, ctx = _inventory(config, env)
    (error,) = ctx.scope_errors
    assert error.scope == f"subscriptions/{SUB_DENIED}"
    assert error.code == "permission_denied"
    assert error.permission == "Microsoft.Compute/virtualMachines/read"
    assert error.remediation and "Microsoft.Compute/virtualMachines/read" in error.remediation
    assert H100_ID in instances and any(i.account == SUB_B for i in instances.values())


def test_gpu_vms_carry_catalog_accelerators_and_nic_addresses(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    instances, _ = _inventory({**config, "subscriptions": [SUB_A]}, env)
    h100 = instances[H100_ID]
    assert [(a.model, a.count) for a in h100.accelerators] == [("nvidia-h100", 8)]
    assert h100.private_ips == ("10.1.0.4",)
    assert h100.public_ips == ("20.51.10.7",)
    assert h100.region == "eastus" and h100.instance_type == "Standard_ND96isr_H100_v5"
    a10 = instances[A10_ID]
    assert a10.accelerators[0].count == pytest.approx(1 / 6)
    jump = next(i for i in instances.values() if i.name == "jump-01")
    assert not jump.has_accelerators and jump.private_ips == ()  # NICs are read for GPU VMs only


def test_scale_set_instances_take_the_scale_set_size(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    instances, _ = _inventory({**config, "subscriptions": [SUB_A]}, env)
    vm0 = instances[SS_VM0]
    assert vm0.instance_type == "Standard_NC24ads_A100_v4"
    assert [(a.model, a.count) for a in vm0.accelerators] == [("nvidia-a100", 1)]
    assert vm0.private_ips == ("10.0.0.6",) and vm0.region == "westeurope"


def test_unknown_gpu_size_is_flagged_by_tag_and_log_event(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    with capture_logs() as logs:
        instances, _ = _inventory({**config, "subscriptions": [SUB_A]}, env)
    unknown = instances[NEXT_ID]
    assert [(a.model, a.count) for a in unknown.accelerators] == [(UNKNOWN_GPU, 8)]
    assert unknown.tags[TAG_UNKNOWN_SIZE] == "Standard_ND96isr_B300_v7"
    assert any(
        e["event"] == "azure_unknown_gpu_size" and e["vm_size"] == "Standard_ND96isr_B300_v7"
        for e in logs
    )


def test_resource_skus_are_read_once_per_region(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    _inventory({**config, "subscriptions": [SUB_A]}, env)
    first_pages = [c for c in fake.calls("/skus?") if "skiptoken" not in c]
    assert len(first_pages) == 2  # eastus and westeurope, not once per VM


def test_missing_network_read_is_a_scope_error_but_the_gpu_vm_is_kept(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    scope = f"/subscriptions/{SUB_A}/resourceGroups/ml-training/providers/Microsoft.Network"
    fake.deny(scope, {"error": {"code": "AuthorizationFailed", "message": "no network read"}})
    instances, ctx = _inventory({**config, "subscriptions": [SUB_A]}, env)
    assert instances[H100_ID].has_accelerators and instances[H100_ID].private_ips == ()
    assert instances[SS_VM0].private_ips == ("10.0.0.6",)  # scale-set NICs live elsewhere
    assert [e.permission for e in ctx.scope_errors] == ["Microsoft.Network/networkInterfaces/read"]


def test_an_invalid_token_is_an_auth_scope_error_not_an_empty_inventory(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    instances, ctx = _inventory({**config, "token": "expired"}, env)
    assert instances == {}
    assert [(e.scope, e.code) for e in ctx.scope_errors] == [("subscriptions", "auth_error")]


def test_server_errors_are_retried_within_the_budget(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv
) -> None:
    seed_arm(fake)
    path = f"/subscriptions/{SUB_A}/providers/microsoft.compute/virtualmachines"
    fake.failing[path] = 1
    retrying = {**config, "subscriptions": [SUB_A], "retry_total": 2, "retry_backoff_factor": 0}
    instances, ctx = _inventory(retrying, env)
    assert H100_ID in instances and ctx.scope_errors == []
    fake.failing[path] = 5
    instances, ctx = _inventory({**config, "subscriptions": [SUB_A]}, env)
    assert [(e.scope, e.code) for e in ctx.scope_errors] == [
        (f"subscriptions/{SUB_A}", "unavailable")
    ]


def test_config_rejects_unknown_keys_plain_http_and_a_missing_token(
    config: dict[str, Any], env: SourceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="subscription: unknown key"):
        AzureSource.from_config({**config, "subscription": [SUB_A]}, env=env)
    with pytest.raises(ConfigError, match="https"):
        AzureSource.from_config({**config, "endpoints": {"arm": "http://127.0.0.1:1"}}, env=env)
    with pytest.raises(ConfigError, match="GUID"):
        AzureSource.from_config({**config, "workspace_id": "my-workspace"}, env=env)
    tokenless = {k: v for k, v in config.items() if k != "token"}
    monkeypatch.delenv("CHIPWARDEN_AZURE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="CHIPWARDEN_AZURE_TOKEN"):
        AzureSource.from_config(tokenless, env=env)


def test_static_token_may_come_from_the_environment(
    fake: FakeAzure, config: dict[str, Any], env: SourceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_arm(fake)
    monkeypatch.setenv("CHIPWARDEN_AZURE_TOKEN", fake.token)
    tokenless = {k: v for k, v in config.items() if k != "token"}
    instances, ctx = _inventory({**tokenless, "subscriptions": [SUB_B]}, env)
    assert ctx.scope_errors == [] and len(instances) == 1


def test_source_is_registered_and_satisfies_both_ports(
    config: dict[str, Any], env: SourceEnv
) -> None:
    assert registry.sources.load("azure") is AzureSource
    source = AzureSource.from_config(config, env=env)
    assert isinstance(source, SessionSource) and isinstance(source, InventorySource)
    assert source.name == "azure-test"
    source.close()
