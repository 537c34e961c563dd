"""A Google Cloud organization for the fault specs, served by ``FakeGcp``.

Three projects found through Resource Manager (``organizations/1234`` holds gpu-prod and
gpu-research, its folder ``folders/55`` holds gpu-lab), each a copy of the own-shape gpu-prod
fixtures (tests/data/gcp: two inventory pages, every access path in the logs) with its own
project id and with some documentation-range callers replaced by addresses in restricted
jurisdictions, so every project yields findings. Both bundled-GPU machine types are served, so
no instance falls back to the catalog. Log timestamps are moved to just before ``now`` (a
scheduled CLI run reads the last 24 h by the wall clock); the two malformed fixture entries
are left out so a clean run is ``complete``.

Credentials are real google-auth ones: an ``external_account_authorized_user`` file (what
``gcloud auth application-default login --login-config`` writes for workforce identity) whose
``token_url`` is the fake's ``/token``, so google-auth refreshes an expired token on its own.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .fakegcp import FakeGcp
from .samples import load_json, load_jsonl

ORG = "1234"
FOLDER = "folders/55"
# project -> {documentation-range caller -> address in a restricted jurisdiction}
CALLERS: dict[str, dict[str, str]] = {
    "gpu-prod": {
        "203.0.113.7": "1.2.4.8",  # CN -> IAP tunnel to the H100 VM
        "203.0.113.9": "2.188.21.1",  # IR -> GKE exec on the A100 node
        "198.51.100.23": "175.45.176.1",  # KP -> SSH flow to the T4 VM
    },
    "gpu-research": {
        "203.0.113.7": "202.175.3.3",  # Macau
        "203.0.113.8": "31.9.0.1",  # SY -> serial console
        "203.0.113.10": "14.160.0.1",  # VN -> SSH key grant
    },
    "gpu-lab": {
        "203.0.113.50": "223.5.5.5",  # CN -> IAP tunnel to an unknown instance
        "203.0.113.9": "186.1.0.1",  # NI
        "198.51.100.23": "2.188.21.1",  # IR
    },
}
PROJECTS = tuple(CALLERS)
_TS = re.compile(r'"(2026-03-0[12]T\d\d:\d\d:\d\d)')
_LATEST = datetime(2026, 3, 1, 15, 3)  # the newest fixture entry (flow-0005), UTC


@dataclass(frozen=True)
class World:
    """The populated fake, its projects and the moment the logs end just before."""

    fake: FakeGcp
    projects: tuple[str, ...]
    now: datetime


def _shifted(text: str, delta: timedelta) -> str:
    def move(match: re.Match[str]) -> str:
        when = datetime.fromisoformat(match[1]) + delta
        return '"' + when.strftime("%Y-%m-%dT%H:%M:%S")

    return _TS.sub(move, text)


def _copy_for(value: Any, project: str, *, delta: timedelta | None = None) -> Any:
    text = json.dumps(value).replace("gpu-prod", project)
    for old, new in CALLERS[project].items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(_shifted(text, delta) if delta is not None else text)


def build_world(fake: FakeGcp, *, now: datetime) -> World:
    """Fill ``fake`` with the organization; log entries end 30 minutes before ``now``."""
    delta = (now - timedelta(minutes=30)).replace(tzinfo=None, microsecond=0) - _LATEST
    delta = timedelta(seconds=int(delta.total_seconds()))
    pages = [
        load_json("own__gpu-prod__aggregated-instances-page1.json"),
        load_json("own__gpu-prod__aggregated-instances-page2.json"),
    ]
    entries = [
        e
        for e in load_jsonl("own__gpu-prod__log-entries.jsonl")
        if e.get("insertId") not in ("iap-bad1", "iap-bad2")
    ]
    policy = {
        "version": 3,
        "etag": "BwX=",
        "auditConfigs": [
            {
                "service": "allServices",
                "auditLogConfigs": [{"logType": "DATA_READ"}, {"logType": "DATA_WRITE"}],
            }
        ],
    }
    a3 = load_json("own__machine-type__a3-highgpu-8g.json")
    fake.machine_types[("us-central1-a", "a3-highgpu-8g")] = a3
    fake.machine_types[("europe-west4-a", "g2-standard-24")] = {
        **a3,
        "id": "1000024",
        "name": "g2-standard-24",
        "description": "24 vCPUs, 96 GB RAM",
        "guestCpus": 24,
        "memoryMb": 98304,
        "zone": "europe-west4-a",
        "selfLink": a3["selfLink"]
        .replace("us-central1-a", "europe-west4-a")
        .replace("a3-highgpu-8g", "g2-standard-24"),
        "accelerators": [{"guestAcceleratorType": "nvidia-l4", "guestAcceleratorCount": 2}],
    }
    for number, project in enumerate(PROJECTS, start=1):
        fake.instance_pages[project] = _copy_for(pages, project)
        fake.entries[project] = _copy_for(entries, project, delta=delta)
        fake.policies[f"projects/{project}"] = copy.deepcopy(policy)
        parent = FOLDER if project == "gpu-lab" else f"organizations/{ORG}"
        record = {
            "name": f"projects/{number}00",
            "projectId": project,
            "parent": parent,
            "state": "ACTIVE",
        }
        fake.projects[project] = record
        fake.projects_by_parent.setdefault(parent, []).append(record)
    fake.folders_by_parent[f"organizations/{ORG}"] = [
        {"name": FOLDER, "displayName": "research", "state": "ACTIVE"}
    ]
    return World(fake=fake, projects=PROJECTS, now=now)


def credentials_file(path: Path, *, token_url: str) -> Path:
    """An ADC file google-auth refreshes against ``token_url`` (the fake's ``/token``)."""
    path.write_text(
        json.dumps(
            {
                "type": "external_account_authorized_user",
                "audience": "//iam.googleapis.com/locations/global/workforcePools/cw/providers/t",
                "client_id": "chipwarden-test",
                "client_secret": "not-a-secret",
                "refresh_token": "refresh-token-for-tests",
                "token_url": token_url,
            }
        )
    )
    return path


def source_config(
    world: World, *, retry: dict[str, Any] | None, timeout: float, batch_size: int = 1
) -> dict[str, Any]:
    """The ``type: gcp`` source: organization discovery, two entries a page."""
    return {
        "type": "gcp",
        "name": "gcp-org",
        "organization": ORG,
        "credentials": "default",
        "endpoints": {k: world.fake.url for k in ("compute", "logging", "resourcemanager", "tpu")},
        "page_size": 2,
        "batch_size": batch_size,
        "retry": retry,
        "timeout": timeout,
    }
