"""providers.files.inventory: a static CSV of hosts -> GpuInstance, bad rows quarantined."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from structlog.testing import capture_logs

from agent import registry
from agent.contracts import AuditWindow, CollectContext, InventorySource, SourceEnv
from agent.errors import ConfigError
from agent.models import Accelerator, GpuInstance
from providers.files.inventory import REQUIRED_COLUMNS, CsvInventory

DATA = Path(__file__).parents[2] / "data" / "inventory"
HOSTS = DATA / "hosts.csv"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
HEADER = ",".join(REQUIRED_COLUMNS)


class FakeCatalog:
    """A tiny InstanceTypeCatalog for the made-up provider ``testcloud``."""

    TYPES: ClassVar[dict[str, tuple[Accelerator, ...]]] = {
        "gpu.8x": (Accelerator(model="nvidia-h100", count=8, source_name="H100"),),
        "cpu.large": (),
    }

    def accelerators(self, instance_type: str) -> tuple[Accelerator, ...] | None:
        return self.TYPES.get(instance_type)


@pytest.fixture(autouse=True)
def _fake_catalog() -> None:
    registry.instance_catalogs.register("testcloud", FakeCatalog)


def make_inventory(path: Path | str = HOSTS) -> CsvInventory:
    env = SourceEnv(name="static-hosts", base_dir=DATA, clock=lambda: NOW)
    return CsvInventory.from_config({"type": "csv", "path": str(path)}, env=env)


def make_ctx() -> CollectContext:
    return CollectContext(window=AuditWindow(since=None, until=None), clock=lambda: NOW)


def read(path: Path | str = HOSTS, ctx: CollectContext | None = None) -> dict[str, GpuInstance]:
    instances = make_inventory(path).inventory(ctx or make_ctx())
    return {i.instance_id: i for i in instances}


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "hosts.csv"
    path.write_text("\n".join((header, *rows)) + "\n")
    return path


def test_explicit_accelerator_columns_describe_an_on_prem_box() -> None:
    box = read()["gpu-box-01"]
    assert box.provider == "onprem"
    assert box.region is None
    assert box.instance_type is None
    assert box.name == "DGX H100 rack 3"
    assert box.accelerators == (
        Accelerator(model="nvidia-h100", count=8, source_name="nvidia-h100"),
    )
    assert box.private_ips == ("10.20.0.11",)


def test_instance_type_resolves_through_the_providers_registered_catalog() -> None:
    trainer = read()["i-0aaa"]
    assert trainer.accelerators == FakeCatalog.TYPES["gpu.8x"]
    assert trainer.has_accelerators


def test_semicolon_columns_become_tuples() -> None:
    trainer = read()["i-0aaa"]
    assert trainer.private_ips == ("10.0.0.5", "10.0.0.6")
    assert trainer.public_ips == ("198.51.100.10",)
    assert trainer.network_interfaces == ("eni-01", "eni-02")


def test_known_type_without_accelerators_gives_an_empty_tuple() -> None:
    assert read()["i-0bbb"].accelerators == ()


def test_type_the_catalog_does_not_know_gives_no_accelerators_and_a_log_event() -> None:
    with capture_logs() as logs:
        mystery = read()["i-0ccc"]
    assert mystery.accelerators == ()
    events = [e for e in logs if e["event"] == "csv_inventory_unknown_instance_type"]
    assert [(e["instance_type"], e["line"]) for e in events] == [("mystery.xl", 5)]


def test_provider_without_a_catalog_is_kept_without_accelerators_and_not_quarantined() -> None:
    ctx = make_ctx()
    with capture_logs() as logs:
        host = read(ctx=ctx)["host-9"]
    assert host.accelerators == ()
    assert not any(q.position == "line 6" for q in ctx.quarantined)
    (note,) = [e for e in logs if e["event"] == "csv_inventory_no_catalog"]
    assert note["provider"] == "nocloud"


def test_bad_rows_are_quarantined_with_their_line_and_the_rest_is_kept() -> None:
    ctx = make_ctx()
    instances = read(ctx=ctx)
    assert set(instances) == {"gpu-box-01", "i-0aaa", "i-0bbb", "i-0ccc", "host-9"}
    assert [(q.position, q.locator, q.source) for q in ctx.quarantined] == [
        ("line 7", str(HOSTS), "static-hosts"),
        ("line 8", str(HOSTS), "static-hosts"),
    ]
    assert "accelerator_count 'eight'" in ctx.quarantined[0].reason
    assert "instance_id" in ctx.quarantined[1].reason
    assert ctx.scope_errors == []


def test_every_instance_points_back_to_its_csv_line() -> None:
    instances = read()
    assert instances["gpu-box-01"].evidence is not None
    assert str(instances["i-0aaa"].evidence) == f"file:{HOSTS}:line 3"


def test_missing_header_columns_are_a_scope_error_naming_them(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "aws,1,us-east-1,i-1", header="provider,account,region,instance_id")
    ctx = make_ctx()
    assert read(path, ctx) == {}
    (error,) = ctx.scope_errors
    assert "instance_type" in error.message
    assert error.scope == str(path)
    assert error.remediation is not None and HEADER in error.remediation


def test_empty_file_is_a_scope_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    ctx = make_ctx()
    assert read(path, ctx) == {}
    assert len(ctx.scope_errors) == 1


def test_missing_file_is_a_scope_error(tmp_path: Path) -> None:
    ctx = make_ctx()
    assert read(tmp_path / "nope.csv", ctx) == {}
    (error,) = ctx.scope_errors
    assert "nope.csv" in error.message


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",1,r,i-1,gpu.8x", "'provider' is empty"),
        ("testcloud,,r,i-1,gpu.8x", "'account' is empty"),
        ("testcloud,1,r,i-1,", "'instance_type' is empty"),
        ("os:system,1,r,i-1,gpu.8x", "provider name"),
        ("testcloud,1,r,i-1,gpu.8x,extra", "6 values for 5 header columns"),
    ],
)
def test_row_problems_are_quarantined_with_a_reason(tmp_path: Path, row: str, reason: str) -> None:
    ctx = make_ctx()
    assert read(write_csv(tmp_path, row), ctx) == {}
    (record,) = ctx.quarantined
    assert reason in record.reason
    assert record.position == "line 2"


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ("nvidia-h100,-1", "finite number >= 0"),
        ("nvidia-h100,nan", "finite number >= 0"),
        ("nvidia-h100,", "given together"),
        (",8", "given together"),
        ("nvidia-h100;nvidia-l4,8", "2 accelerator_model value(s) but 1"),
    ],
)
def test_bad_accelerator_columns_are_quarantined(tmp_path: Path, cells: str, reason: str) -> None:
    header = HEADER + ",accelerator_model,accelerator_count"
    ctx = make_ctx()
    assert read(write_csv(tmp_path, f"onprem,dc,,box,,{cells}", header=header), ctx) == {}
    assert reason in ctx.quarantined[0].reason


def test_several_accelerator_models_pair_by_position(tmp_path: Path) -> None:
    header = HEADER + ",accelerator_model,accelerator_count"
    path = write_csv(tmp_path, 'onprem,dc,,box,,"NVIDIA H100;nvidia-l4","8;0.5"', header=header)
    (box,) = read(path).values()
    assert [(a.model, a.count, a.source_name) for a in box.accelerators] == [
        ("nvidia-h100", 8.0, "NVIDIA H100"),
        ("nvidia-l4", 0.5, "nvidia-l4"),
    ]


def test_bad_ip_is_quarantined(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "testcloud,1,r,i-1,gpu.8x,10.0.0.300", header=HEADER + ",private_ips"
    )
    ctx = make_ctx()
    assert read(path, ctx) == {}
    assert "'private_ips' has '10.0.0.300'" in ctx.quarantined[0].reason


def test_duplicate_instance_is_quarantined_naming_the_first_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "testcloud,1,r,i-1,gpu.8x", "testcloud,1,r,i-1,cpu.large")
    ctx = make_ctx()
    (kept,) = read(path, ctx).values()
    assert kept.instance_type == "gpu.8x"
    assert "duplicate of the instance on line 2" in ctx.quarantined[0].reason


def test_header_is_case_and_space_tolerant_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    header = " Provider , ACCOUNT ,region,instance_id,instance_type"
    path = write_csv(tmp_path, "", "testcloud,1,r,i-1,gpu.8x", ",,,,", header=header)
    ctx = make_ctx()
    assert list(read(path, ctx)) == ["i-1"]
    assert ctx.quarantined == []


def test_bad_config_is_a_config_error() -> None:
    env = SourceEnv(name="inv", base_dir=DATA, clock=lambda: NOW)
    config: dict[str, Any] = {"type": "csv", "path": "hosts.csv", "paths": ["x"]}
    with pytest.raises(ConfigError, match="paths"):
        CsvInventory.from_config(config, env=env)


def test_type_defaults_to_csv_and_relative_paths_resolve_against_the_config_folder() -> None:
    env = SourceEnv(name="inv", base_dir=DATA, clock=lambda: NOW)
    inventory = CsvInventory.from_config({"path": "hosts.csv"}, env=env)
    assert inventory.config.path == HOSTS
    assert inventory.name == "inv"


def test_registry_entry_point_resolves_to_an_inventory_source() -> None:
    assert registry.inventories.load("csv") is CsvInventory
    assert isinstance(make_inventory(), InventorySource)
