"""An Azure world for the fault specs, built from the provider tests' seeds (tests/data/azure).

Three subscriptions (GPU VMs, a GPU scale set, NICs), the Activity Log, a Log Analytics
workspace (Bastion, sign-ins), NSG and VNet flow logs, and a container of hourly Bastion
blobs: every stream of the source, with sessions from embargoed, restricted and ordinary
places, so a clean audit yields several findings. Malformed records of the seeds are left out
(a clean run is ``complete``), and the denied subscription is allowed (no scope error).
"""

from __future__ import annotations

import json
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import trustme

from tests.providers.azure.azfixtures import (
    A10_ID,
    BASTION_CONTAINER,
    FLOW_ACCOUNT,
    H100_ID,
    NOW,
    NSG_CONTAINER,
    VNET_CONTAINER,
    WORKSPACE,
    load,
    seed_arm,
    seed_bastion_blobs,
    seed_flow_blobs,
    seed_workspace,
)
from tests.providers.azure.fakeazure import CLIENT_ID, CLIENT_SECRET, FakeAzure

__all__ = [
    "BASTION_HOURS",
    "Served",
    "credential",
    "seed_world",
    "serve",
    "source_config",
]

BASTION_HOURS = 23
"""Hourly Bastion blobs (one session each) before NOW: many small reads to fault."""
_CLIENTS = ("175.45.176.20", "5.160.0.20", "1.0.1.1", "81.2.69.160", "8.8.8.8")
"""Bastion clients: KP, IR, CN (restricted), GB, US (ordinary)."""
_BASTION_HOST = (
    "resourceId=/SUBSCRIPTIONS/3C1F7A52-8E0D-4D6B-9F5A-2B7C4E1D9A60/RESOURCEGROUPS/ML-TRAINING"
    "/PROVIDERS/MICROSOFT.NETWORK/BASTIONHOSTS/ML-BASTION"
)


@dataclass(frozen=True)
class Served:
    """A running fake and the CA file its clients trust."""

    fake: FakeAzure
    ca_file: Path


@contextmanager
def serve() -> Iterator[Served]:
    """A fresh HTTPS fake on 127.0.0.1 with a throw-away CA (for specs outside this folder)."""
    ca = trustme.CA()
    with tempfile.TemporaryDirectory(prefix="azure-ca-") as folder:
        ca_file = Path(folder) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        fake = FakeAzure(context).start()
        try:
            yield Served(fake, ca_file)
        finally:
            fake.stop()


def _hourly_bastion(fake: FakeAzure) -> None:
    record = load("azure-docs__bastion__monitor-bastion__BastionAuditLogs-example.json")
    blobs = fake.blobs[("mlflowlogs", BASTION_CONTAINER)]
    for n in range(1, BASTION_HOURS + 1):
        hour = (NOW - timedelta(hours=n)).replace(minute=0)
        item = json.loads(json.dumps(record))
        item["time"] = (hour + timedelta(minutes=17)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        item["properties"].update(
            targetResourceId=(H100_ID if n % 2 else A10_ID).upper(),
            tunnelId=f"9f8e7d6c-0000-4000-8000-{n:012d}",
            clientIpAddress=_CLIENTS[n % len(_CLIENTS)],
            userName="azureuser",
            userEmail=f"user{n % 4}@contoso.example",
        )
        hourly = f"y={hour:%Y}/m={hour:%m}/d={hour:%d}/h={hour:%H}/m=00/PT1H.json"
        blobs[f"{_BASTION_HOST}/{hourly}"] = (json.dumps(item) + "\n").encode()


def _valid_row(row: list[Any]) -> bool:
    try:
        datetime.fromisoformat(str(row[0]))
    except ValueError:
        return False
    return True


def seed_world(fake: FakeAzure) -> None:
    """Seed every stream, minus the seeds' malformed records and the denied subscription."""
    seed_arm(fake)
    fake.denied.clear()
    seed_workspace(fake)
    for table in fake.tables[WORKSPACE].values():
        table["rows"] = [row for row in table["rows"] if _valid_row(row)]
    flows = seed_flow_blobs(fake)
    nsg = fake.blobs[("mlflowlogs", NSG_CONTAINER)]
    gpu = json.loads(nsg[flows["nsg_gpu"]])
    for rule in gpu["records"][0]["properties"]["flows"]:
        for group in rule["flows"]:
            group["flowTuples"] = [t for t in group["flowTuples"] if t != "not,a,tuple"]
    nsg[flows["nsg_gpu"]] = json.dumps(gpu).encode()
    bastion = seed_bastion_blobs(fake)
    container = fake.blobs[("mlflowlogs", BASTION_CONTAINER)]
    container[bastion["recent"]] = container[bastion["recent"]].split(b"\n")[0] + b"\n"
    _hourly_bastion(fake)


def source_config(served: Served, **overrides: Any) -> dict[str, Any]:
    """An ``azure`` source reading every stream of the world (static token, zero backoff,
    half-second timeouts, a retry budget above the plans' ``max_consecutive``)."""
    fake = served.fake
    return {
        "type": "azure",
        "credentials": "static-token",
        "token": fake.token,
        "endpoints": {"arm": fake.url, "logs": fake.url, "blob": fake.url},
        "ca_bundle": str(served.ca_file),
        "workspace_id": WORKSPACE,
        "bastion_blobs": {"account_url": FLOW_ACCOUNT, "container": BASTION_CONTAINER},
        "flow_logs": [
            {"account_url": FLOW_ACCOUNT, "container": NSG_CONTAINER},
            {"account_url": FLOW_ACCOUNT, "container": VNET_CONTAINER},
        ],
        "retry_total": 4,
        "retry_backoff_factor": 0,
        "timeout_seconds": 0.5,
        **overrides,
    }


def credential(served: Served) -> Any:
    """A real azure-identity service-principal credential signing in at the fake's token
    endpoint (short-lived tokens: it fetches new ones mid-run by itself)."""
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        served.fake.tenant,
        CLIENT_ID,
        CLIENT_SECRET,
        authority=served.fake.url,
        disable_instance_discovery=True,
        connection_verify=str(served.ca_file),
    )
