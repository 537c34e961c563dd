"""Source configuration: strict keys, exactly one scope, sane ports, stream filters."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent.contracts import SourceEnv
from agent.errors import ConfigError
from providers.gcp.config import ALL_STREAMS, GcpSourceConfig
from providers.gcp.provider import GcpSource
from providers.gcp.streams import STREAMS, build_filter, checkpoint_scope


def test_defaults_read_every_stream_on_the_standard_admin_ports() -> None:
    cfg = GcpSourceConfig(projects=["p"])
    assert cfg.streams == list(ALL_STREAMS) and set(cfg.streams) == set(STREAMS)
    assert cfg.admin_ports == [22, 3389, 5900, 8888]
    assert cfg.credentials == "default" and cfg.retry is not None


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"projects": ["p"], "organization": "123"},
        {"projects": []},
        {"organization": "acme"},
        {"projects": ["p"], "admin_ports": [0]},
        {"projects": ["p"], "streams": ["ssh"]},
        {"projects": ["p"], "credentials": "static"},
        {"projects": ["p"], "endpoints": {"compute": "http://x", "bigquery": "http://y"}},
        {"projects": ["p"], "regions": ["us"]},
    ],
)
def test_invalid_configs_are_rejected(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GcpSourceConfig.model_validate({"type": "gcp", **raw})


def test_organization_and_folder_ids_accept_the_resource_prefix() -> None:
    assert GcpSourceConfig(organization="organizations/123").organization == "123"
    assert GcpSourceConfig(folder="456").folder == "456"


def test_retry_null_turns_retries_off() -> None:
    assert GcpSourceConfig.model_validate({"projects": ["p"], "retry": None}).retry is None


def test_from_config_turns_validation_errors_into_config_errors_naming_the_key(
    env: SourceEnv,
) -> None:
    with pytest.raises(ConfigError, match="page_size"):
        GcpSource.from_config({"type": "gcp", "projects": ["p"], "page_size": 0}, env=env)


def test_filters_restrict_log_stream_service_and_window() -> None:
    flt = build_filter(
        STREAMS["iap"],
        project="p1",
        since="2026-03-01T10:00:00.000000001Z",
        until=None,
        admin_ports=[22],
    )
    assert 'logName="projects/p1/logs/cloudaudit.googleapis.com%2Fdata_access"' in flt
    assert 'protoPayload.methodName="AuthorizeUser"' in flt
    assert 'timestamp>="2026-03-01T10:00:00.000000001Z"' in flt
    flows = build_filter(
        STREAMS["vpc-flows"], project="p1", since=None, until=None, admin_ports=[3389, 22]
    )
    assert "jsonPayload.connection.dest_port=(22 OR 3389)" in flows
    assert "compute.googleapis.com%2Fvpc_flows" in flows
    gke = build_filter(STREAMS["gke"], project="p1", since=None, until=None, admin_ports=[])
    assert "logName=(" in gke and "%2Factivity" in gke and "%2Fdata_access" in gke


def test_data_access_streams_name_the_private_log_permission() -> None:
    private = {
        name
        for name, spec in STREAMS.items()
        if spec.permission == "logging.privateLogEntries.list"
    }
    assert private == {"iap", "oslogin", "gke"}
    assert checkpoint_scope("p1", "iap") == "gcp:p1:iap"
