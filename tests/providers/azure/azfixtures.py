"""Shared test helpers for the azure provider tests (fixture files, a collect context)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.contracts import AuditWindow, CollectContext

DATA = Path(__file__).resolve().parents[2] / "data" / "azure"
NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    """A JSON fixture from tests/data/azure."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def make_ctx(
    *,
    checkpoints: dict[str, str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CollectContext:
    """A collect context at NOW; ``since`` makes the window explicit."""
    stored = dict(checkpoints or {})
    window = AuditWindow(since=since, until=until, explicit=since is not None)
    return CollectContext(window=window, clock=lambda: NOW, checkpoints=stored.get)


SUB_A = "3c1f7a52-8e0d-4d6b-9f5a-2b7c4e1d9a60"  # GPU subscription (own fixtures)
SUB_B = "ea42f556-5106-4743-99b0-c129bfa71a47"  # cloud-custodian cassette subscription
SUB_DENIED = "9d2e6b14-7c3a-4f81-b5e0-6a8d2c4f1e37"
WORKSPACE = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
H100_ID = (
    f"/subscriptions/{SUB_A}/resourcegroups/ml-training/providers/microsoft.compute/"
    "virtualmachines/gpu-h100-01"
)
A10_ID = H100_ID.replace("gpu-h100-01", "viz-a10-01")
NEXT_ID = H100_ID.replace("gpu-h100-01", "gpu-next-01")
SS_VM0 = (
    f"/subscriptions/{SUB_A}/resourcegroups/ml-training/providers/microsoft.compute/"
    "virtualmachinescalesets/infer-ss/virtualmachines/0"
)


def cassette_value(name: str) -> list[dict[str, Any]]:
    """The first response body's ``value`` of a cloud-custodian VCR cassette."""
    value: list[dict[str, Any]] = load(name)["interactions"][0]["response"]["body"]["data"]["value"]
    return value


def seed_arm(fake: Any) -> None:
    """Three subscriptions (one denied), GPU VMs, a GPU scale set, SKUs, NICs, Activity Log."""
    from tests.providers.azure.fakeazure import arm_denied

    fake.subscriptions = [
        {"id": f"/subscriptions/{s}", "subscriptionId": s, "displayName": n, "state": st}
        for s, n, st in [
            (SUB_A, "ml-prod", "Enabled"),
            (SUB_B, "custodian-test", "Enabled"),
            (SUB_DENIED, "finance", "Enabled"),
            ("5e6f7a8b-0000-4000-8000-000000000000", "old", "Disabled"),
        ]
    ]
    fake.vms[SUB_A] = load("arm_virtual_machines.json")["value"]
    fake.vms[SUB_B] = cassette_value("cloud-custodian__cassette__VMTest.virtual_machine.json")
    fake.scale_sets[SUB_A] = load("arm_scale_sets.json")["value"]
    vmss_id = fake.scale_sets[SUB_A][0]["id"].lower()
    fake.scale_set_vms[vmss_id] = load("arm_scale_set_vms.json")["value"]
    fake.scale_sets[SUB_B] = cassette_value(
        "cloud-custodian__cassette__VMSSTest.test_find_by_name.json"
    )
    fake.skus = load("arm_resource_skus.json")["value"]
    fake.resources = {k.lower(): v for k, v in load("arm_network.json").items()}
    fake.activity[SUB_A] = load("activity_log_events.json")["value"]
    fake.deny(
        f"/subscriptions/{SUB_DENIED}",
        arm_denied("Microsoft.Compute/virtualMachines/read", f"/subscriptions/{SUB_DENIED}"),
    )


def seed_workspace(fake: Any) -> None:
    """Bastion and sign-in tables of WORKSPACE from the recorded query responses."""
    for name, fixture in [
        ("MicrosoftAzureBastionAuditLogs", "la_bastion_audit_logs.json"),
        ("SigninLogs", "la_signin_logs.json"),
    ]:
        table = load(fixture)["tables"][0]
        fake.table(WORKSPACE, name, table["columns"], table["rows"])


def la_rows(fixture: str) -> list[dict[str, Any]]:
    """A recorded Log Analytics response as ``{column: value}`` rows (what the client returns)."""
    table = load(fixture)["tables"][0]
    names = [c["name"] for c in table["columns"]]
    return [dict(zip(names, row, strict=True)) for row in table["rows"]]


FLOW_ACCOUNT = "https://mlflowlogs.blob.core.windows.net"
NSG_CONTAINER = "insights-logs-networksecuritygroupflowevent"
VNET_CONTAINER = "insights-logs-flowlogflowevent"
BASTION_CONTAINER = "insights-logs-bastionauditlogs"
_RG = f"resourceId=/SUBSCRIPTIONS/{SUB_A.upper()}/RESOURCEGROUPS/ML-TRAINING"
_NSG = f"{_RG}/PROVIDERS/MICROSOFT.NETWORK"


def _blob(prefix: str, when: str, mac: str | None = None) -> str:
    y, m, d, h = when.split("-")
    tail = f"/macAddress={mac}" if mac else ""
    return f"{prefix}/y={y}/m={m}/d={d}/h={h}/m=00{tail}/PT1H.json"


def seed_flow_blobs(fake: Any) -> dict[str, str]:
    """NSG (docs v1/v2 samples + own v2) and VNet (docs + own) blobs; returns blob names."""
    docs = (DATA / "azure-docs__nsg-flow-logs-overview__sample-records.jsonl").read_text()
    records = [json.loads(line) for line in docs.splitlines() if line.strip()]
    names = {
        "nsg_gpu": _blob(f"{_NSG}/NETWORKSECURITYGROUPS/GPU-NSG", "2024-05-02-10", "000D3AF8801A"),
        "nsg_docs_v1": _blob(
            f"{_NSG}/NETWORKSECURITYGROUPS/FABRIAKMVM1-NSG", "2017-02-16-22", "000D3AF8801A"
        ),
        "nsg_docs_v2": _blob(
            f"{_NSG}/NETWORKSECURITYGROUPS/FABRIAKMVM1-NSG", "2018-11-13-12", "000D3AF87856"
        ),
        "vnet_gpu": _blob(
            "flowLogResourceID=/00000000_NETWORKWATCHERRG/NETWORKWATCHER_WESTEUROPE_ML-VNET-FLOWLOG",
            "2024-05-02-10",
            "00224871C205",
        ),
        "vnet_docs": _blob(
            "flowLogResourceID=/00000000_NETWORKWATCHERRG/NETWORKWATCHER_EASTUS2EUAP_VNETFLOWLOG",
            "2022-09-14-09",
            "00224871C205",
        ),
    }
    fake.blobs[("mlflowlogs", NSG_CONTAINER)] = {
        names["nsg_gpu"]: (DATA / "nsg_flow_v2_gpu.json").read_bytes(),
        names["nsg_docs_v1"]: json.dumps({"records": records[:3]}).encode(),
        names["nsg_docs_v2"]: json.dumps({"records": records[3:]}).encode(),
    }
    fake.blobs[("mlflowlogs", VNET_CONTAINER)] = {
        names["vnet_gpu"]: (DATA / "vnet_flow_gpu.json").read_bytes(),
        names["vnet_docs"]: (
            DATA / "azure-docs__vnet-flow-logs-overview__sample-record.json"
        ).read_bytes(),
    }
    return names


def seed_bastion_blobs(fake: Any) -> dict[str, str]:
    """JSON-lines Bastion blobs: the docs record re-dated onto the H100 VM, a bad line, and an
    old blob outside any recent window."""
    record = load("azure-docs__bastion__monitor-bastion__BastionAuditLogs-example.json")
    host = f"{_NSG}/BASTIONHOSTS/ML-BASTION"
    recent = json.loads(json.dumps(record))
    recent["time"] = "2024-05-02T08:10:00.0000000Z"
    recent["properties"].update(
        targetResourceId=H100_ID.upper(),
        tunnelId="9f8e7d6c-0000-4000-8000-0000000000f1",
        userName="azureuser",
        userEmail="grace@contoso.example",
    )
    names = {"recent": _blob(host, "2024-05-02-08"), "old": _blob(host, "2024-04-01-08")}
    lines = [json.dumps(recent), "{not json", json.dumps({**recent, "properties": "x"})]
    fake.blobs[("mlflowlogs", BASTION_CONTAINER)] = {
        names["recent"]: ("\n".join(lines) + "\n").encode(),
        names["old"]: (json.dumps(record) + "\n").encode(),
    }
    return names
