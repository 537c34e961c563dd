"""GcpClient with the real google-cloud clients against the fake: paging, retries, errors."""

from __future__ import annotations

import pytest

from agent.errors import (
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)
from providers.gcp.client import ApiDisabled, GcpClient
from providers.gcp.config import Endpoints, RetrySettings

from .fakegcp import FakeGcp
from .samples import load_json


def _client(
    fake: FakeGcp, *, retry: RetrySettings | None = None, page_size: int = 500
) -> GcpClient:
    endpoints = Endpoints(
        compute=fake.url, logging=fake.url, resourcemanager=fake.url, tpu=fake.url
    )
    return GcpClient(
        credentials="anonymous", endpoints=endpoints, retry=retry, timeout=5, page_size=page_size
    )


FAST_RETRY = RetrySettings(initial=0.01, maximum=0.02, multiplier=1, deadline=2)


def test_aggregated_list_follows_next_page_token_and_keeps_warning_scopes(
    gpu_prod: FakeGcp,
) -> None:
    scopes = list(_client(gpu_prod).aggregated_instances("gpu-prod"))
    names = [i["name"] for _, s in scopes for i in s.get("instances", [])]
    assert sorted(names) == [
        "gke-ml-cluster-gpu-pool-1a2b3c4d-x1y2",
        "notebook-t4",
        "render-g2",
        "trainer-a3",
        "web-1",
    ]
    assert ("zones/us-central1-b" in dict(scopes)) and "warning" in dict(scopes)[
        "zones/us-central1-b"
    ]
    tokens = [c.get("pageToken") for c in gpu_prod.calls("GET", "aggregated/instances")]
    assert tokens == [None, "1"]


def test_instances_come_back_in_rest_shape_with_numeric_ids_as_strings(gpu_prod: FakeGcp) -> None:
    scopes = dict(_client(gpu_prod).aggregated_instances("gpu-prod"))
    (vm,) = scopes["zones/us-central1-a"]["instances"]
    assert vm["id"] == "7340001000000000001"
    assert vm["machineType"].endswith("/a3-highgpu-8g")
    assert vm["networkInterfaces"][0]["networkIP"] == "10.128.0.10"
    assert "futureFieldNotInTheSdk" not in vm  # unknown fields are dropped, not fatal


def test_a_real_gcpdiag_aggregated_list_parses_through_the_sdk(fake: FakeGcp) -> None:
    fake.instance_pages["gcpdiag-gce1-aaaa"] = [
        load_json("gcpdiag__gce1__compute-instances-aggregated.json")
    ]
    scopes = list(_client(fake).aggregated_instances("gcpdiag-gce1-aaaa"))
    assert len(scopes) == 136
    assert sum(len(s.get("instances", [])) for _, s in scopes) == 6


def test_machine_type_lookups_are_cached_per_zone(gpu_prod: FakeGcp) -> None:
    client = _client(gpu_prod)
    first = client.machine_type("gpu-prod", "us-central1-a", "a3-highgpu-8g")
    again = client.machine_type("gpu-prod", "us-central1-a", "a3-highgpu-8g")
    assert first == again
    assert first["accelerators"] == [
        {"guestAcceleratorType": "nvidia-h100-80gb", "guestAcceleratorCount": 8}
    ]
    assert len(gpu_prod.calls("GET", "machineTypes/a3-highgpu-8g")) == 1


def test_log_entries_are_raw_dicts_paged_oldest_first(gpu_prod: FakeGcp) -> None:
    client = _client(gpu_prod, page_size=2)
    pages = list(
        client.list_entries(
            "gpu-prod",
            filter_='logName="projects/gpu-prod/logs/compute.googleapis.com%2Fvpc_flows"',
        )
    )
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [e["insertId"] for p in pages for e in p]
    assert ids == ["flow-0001", "flow-0002", "flow-0003", "flow-0004", "flow-0005"]
    bodies = gpu_prod.calls("POST", "entries:list")
    assert bodies[0]["orderBy"] == "timestamp asc" and bodies[0]["pageSize"] == 2
    assert bodies[0]["resourceNames"] == ["projects/gpu-prod"]
    assert [b.get("pageToken") for b in bodies] == [None, "2", "4"]


def test_forbidden_becomes_a_permission_error_naming_the_iam_permission(fake: FakeGcp) -> None:
    fake.fail("GET", "aggregated/instances", 403, message="Required 'compute.instances.list'")
    with pytest.raises(ProviderPermissionError) as err:
        list(_client(fake).aggregated_instances("locked"))
    assert err.value.permission == "compute.instances.list"
    assert "projects/locked" in err.value.message and err.value.hint


def test_forbidden_log_reads_name_the_stream_permission(fake: FakeGcp) -> None:
    fake.fail("POST", "entries:list", 403)
    with pytest.raises(ProviderPermissionError) as err:
        list(
            _client(fake).list_entries(
                "p", filter_="x", permission="logging.privateLogEntries.list"
            )
        )
    assert err.value.permission == "logging.privateLogEntries.list"


def test_a_disabled_api_is_recognised(fake: FakeGcp) -> None:
    fake.fail(
        "GET",
        "/nodes",
        403,
        reason="SERVICE_DISABLED",
        message="Cloud TPU API has not been used in project 1 before or it is disabled.",
    )
    with pytest.raises(ApiDisabled):
        list(_client(fake).tpu_nodes("p"))


def test_unauthenticated_becomes_an_auth_error(fake: FakeGcp) -> None:
    fake.fail("GET", "/v3/projects", 401, message="Request had invalid credentials.")
    with pytest.raises(ProviderAuthError):
        list(_client(fake).list_projects(parent="organizations/1"))


def test_unavailable_without_retries_fails_at_once(fake: FakeGcp) -> None:
    fake.fail("GET", "aggregated/instances", 503, message="backend error")
    with pytest.raises(ProviderUnavailable):
        list(_client(fake).aggregated_instances("p"))
    assert len(fake.calls("GET", "aggregated/instances")) == 1


def test_transient_errors_are_retried_within_the_deadline(gpu_prod: FakeGcp) -> None:
    gpu_prod.fail("GET", "aggregated/instances", 503, times=2)
    gpu_prod.fail("POST", "entries:list", 429, times=1)
    client = _client(gpu_prod, retry=FAST_RETRY)
    assert len(list(client.aggregated_instances("gpu-prod"))) == 4
    assert sum(len(p) for p in client.list_entries("gpu-prod", filter_="vpc_flows")) == 5
    assert len(gpu_prod.calls("GET", "aggregated/instances")) == 2 + 2
    assert len(gpu_prod.calls("POST", "entries:list")) == 1 + 1


def test_retries_give_up_as_unavailable_when_the_error_persists(fake: FakeGcp) -> None:
    fake.fail("POST", "entries:list", 503)
    retry = RetrySettings(initial=0.01, maximum=0.01, multiplier=1, deadline=0.1)
    with pytest.raises(ProviderUnavailable):
        list(_client(fake, retry=retry).list_entries("p", filter_="x"))


def test_not_found_is_a_source_error(fake: FakeGcp) -> None:
    with pytest.raises(SourceError, match="not found"):
        _client(fake).machine_type("p", "zone-x", "a3-highgpu-8g")


def test_iam_policies_are_read_with_their_audit_configs(gpu_prod: FakeGcp) -> None:
    policy = _client(gpu_prod).get_iam_policy("projects/gpu-prod")
    assert policy["auditConfigs"][0]["service"] == "allServices"
    assert policy["auditConfigs"][0]["auditLogConfigs"][0]["logType"] == "DATA_READ"


def test_tpu_nodes_and_projects_are_listed_in_rest_shape(gpu_prod: FakeGcp) -> None:
    nodes = list(_client(gpu_prod).tpu_nodes("gpu-prod"))
    assert [n["acceleratorType"] for n in nodes] == ["v4-8", "v5litepod-8"]
    assert nodes[0]["networkEndpoints"][0]["accessConfig"]["externalIp"] == "35.186.10.2"
    gpu_prod.projects_by_parent["folders/7"] = [
        {"name": "projects/111", "projectId": "a", "state": "ACTIVE", "parent": "folders/7"}
    ]
    assert [p["projectId"] for p in _client(gpu_prod).list_projects(parent="folders/7")] == ["a"]
