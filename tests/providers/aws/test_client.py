"""The SDK facade: retry config, paging, type-info caching and error translation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from agent.errors import (
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)
from providers.aws.client import DEFAULT_EVENT_SOURCES, AwsClient, translate_errors

from .conftest import NOW, load_records
from .fakeaws import FakeAws, lookup_events_pages


def client_error(code: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def translated(exc: Exception, scope: str = "eu-west-1") -> SourceError:
    with pytest.raises(SourceError) as info, translate_errors(scope):
        raise exc
    assert info.value.__cause__ is exc
    return info.value


@pytest.mark.parametrize(
    ("code", "operation", "kind", "permission"),
    [
        (
            "AccessDeniedException",
            "LookupEvents",
            ProviderPermissionError,
            "cloudtrail:LookupEvents",
        ),
        (
            "UnauthorizedOperation",
            "DescribeInstances",
            ProviderPermissionError,
            "ec2:DescribeInstances",
        ),
        ("AccessDenied", "GetCallerIdentity", ProviderPermissionError, "sts:GetCallerIdentity"),
        ("OptInRequired", "DescribeInstances", ProviderPermissionError, "ec2:DescribeInstances"),
        (
            "AuthFailure",
            "DescribeInstanceTypes",
            ProviderPermissionError,
            "ec2:DescribeInstanceTypes",
        ),
        ("ExpiredToken", "GetCallerIdentity", ProviderAuthError, None),
        ("InvalidClientTokenId", "DescribeRegions", ProviderAuthError, None),
        ("UnrecognizedClientException", "LookupEvents", ProviderAuthError, None),
        ("ThrottlingException", "LookupEvents", ProviderUnavailable, None),
        ("RequestLimitExceeded", "DescribeInstances", ProviderUnavailable, None),
    ],
)
def test_client_error_codes_become_chipwarden_errors(
    code: str, operation: str, kind: type[SourceError], permission: str | None
) -> None:
    error = translated(client_error(code, operation))
    assert type(error) is kind
    assert error.message.startswith(f"eu-west-1: {code}:")
    assert error.hint
    if permission:
        assert isinstance(error, ProviderPermissionError) and error.permission == permission


def test_access_denied_hint_says_which_permission_to_grant() -> None:
    error = translated(client_error("AccessDeniedException", "LookupEvents"))
    assert error.hint == "grant cloudtrail:LookupEvents to the audit role or user"


def test_region_not_enabled_hint_says_to_opt_in() -> None:
    assert "opt in" in (translated(client_error("OptInRequired", "DescribeInstances")).hint or "")


def test_unknown_operation_is_named_with_the_given_service() -> None:
    with pytest.raises(ProviderPermissionError) as info, translate_errors("r", service="ssm"):
        raise client_error("AccessDeniedException", "DescribeSessions")
    assert info.value.permission == "ssm:DescribeSessions"


def test_server_errors_are_unavailable_and_unknown_codes_stay_generic() -> None:
    assert type(translated(client_error("Weird", "LookupEvents", status=502))) is (
        ProviderUnavailable
    )
    assert type(translated(client_error("ValidationException", "LookupEvents"))) is SourceError


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (NoCredentialsError(), ProviderAuthError),
        (ProfileNotFound(profile="audit"), ProviderAuthError),
        (EndpointConnectionError(endpoint_url="https://ec2.example"), ProviderUnavailable),
        (ReadTimeoutError(endpoint_url="https://ec2.example"), ProviderUnavailable),
    ],
)
def test_sdk_exceptions_become_chipwarden_errors(exc: Exception, kind: type[SourceError]) -> None:
    assert type(translated(exc)) is kind


def test_missing_profile_is_an_auth_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with pytest.raises(ProviderAuthError, match="no-such-profile"):
        AwsClient(profile="no-such-profile")


def test_clients_retry_with_the_configured_mode_and_identify_chipwarden() -> None:
    ec2 = AwsClient(retry_mode="adaptive", max_attempts=3, region="eu-west-1").client("ec2")
    assert ec2.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    assert "chipwarden" in ec2.meta.config.user_agent_extra
    assert ec2.meta.region_name == "eu-west-1"


def test_clients_are_cached_per_service_and_region(boto_session: Any) -> None:
    client = AwsClient(session=boto_session)
    assert client.client("ec2", "eu-west-1") is client.client("ec2", "eu-west-1")
    assert client.client("ec2", "eu-west-1") is not client.client("ec2", "us-west-2")


def test_throttling_past_the_retry_budget_is_unavailable(
    aws: None, no_backoff: None, boto_session: Any
) -> None:
    client = AwsClient(max_attempts=2, session=boto_session)
    fake = FakeAws(client.client("ec2"))
    fake.throttle("DescribeRegions", times=3)
    with pytest.raises(ProviderUnavailable, match="RequestLimitExceeded"):
        client.enabled_regions()
    assert len(fake.calls_to("DescribeRegions")) == 2


def test_instance_type_info_leaves_out_unknown_names_and_caches(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    fake = FakeAws(client.client("ec2", "us-east-1"))
    info = client.instance_type_info("us-east-1", ["p5.48xlarge", "x9.huge", "t3.micro"])
    assert sorted(info) == ["p5.48xlarge", "t3.micro"]
    assert info["p5.48xlarge"]["GpuInfo"]["Gpus"][0]["Name"] == "H100"
    calls = len(fake.calls_to("DescribeInstanceTypes"))
    assert calls == 2  # the bad name named by EC2 is dropped, the rest asked again once
    assert client.instance_type_info("us-east-1", ["t3.micro", "x9.huge"]) == {
        "t3.micro": info["t3.micro"]
    }
    assert len(fake.calls_to("DescribeInstanceTypes")) == calls


def test_lookup_events_runs_one_pass_per_event_source_and_keeps_bad_json_as_text(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    records = load_records("stratus-red-team__aws.lateral-movement.ec2-instance-connect.json")
    for i, record in enumerate(records):
        record["eventTime"] = (NOW - timedelta(minutes=i + 1)).isoformat()
    records[1]["_raw"] = "{not json"
    fake = FakeAws(client.client("cloudtrail", "us-east-1"))
    fake.on("LookupEvents", lookup_events_pages(records, page_size=2))
    got = list(client.lookup_events("us-east-1", start=NOW - timedelta(hours=1), end=NOW))
    assert [g["eventID"] for g in got if isinstance(g, dict)] == [
        records[0]["eventID"],
        records[2]["eventID"],
    ]
    assert "{not json" in got
    sources = [
        c["LookupAttributes"][0]["AttributeValue"]
        for c in fake.calls_to("LookupEvents")
        if "NextToken" not in c
    ]
    assert sources == list(DEFAULT_EVENT_SOURCES)
    assert any(c.get("NextToken") for c in fake.calls_to("LookupEvents"))
    assert json.loads(json.dumps(got[0]))["eventName"] == "SendSSHPublicKey"


def test_unlisted_invalid_type_is_isolated_name_by_name(aws: None, boto_session: Any) -> None:
    client = AwsClient(session=boto_session)
    fake = FakeAws(client.client("ec2", "eu-west-1"))
    fake.fail("DescribeInstanceTypes", "InvalidInstanceType", "something is wrong")
    info = client.instance_type_info("eu-west-1", ["g5.xlarge", "p5.48xlarge"])
    assert sorted(info) == ["g5.xlarge", "p5.48xlarge"]
    assert len(fake.calls_to("DescribeInstanceTypes")) == 3
