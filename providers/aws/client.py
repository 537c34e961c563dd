"""The AWS SDK facade: the only module that imports boto3/botocore.

``AwsClient`` pages, retries (botocore standard/adaptive modes) and translates every SDK
exception into ``agent.errors`` through ``translate_errors``, so nothing above this module
ever sees a botocore type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

import boto3
import structlog
from botocore import exceptions as bex
from botocore.config import Config as BotoConfig

from agent.errors import (
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)

__all__ = ["DEFAULT_EVENT_SOURCES", "INSTANCE_STATES", "AwsClient", "translate_errors"]

log = structlog.get_logger(__name__)

DEFAULT_EVENT_SOURCES = (
    "ssm.amazonaws.com",
    "ec2-instance-connect.amazonaws.com",
    "signin.amazonaws.com",
)
INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
_TYPES_PER_CALL = 100  # DescribeInstanceTypes accepts at most 100 names
_INVALID_TYPES_RE = re.compile(r"do not exist: \[([^\]]*)\]")

# API operation -> IAM action it needs (named in permission errors).
_IAM_ACTIONS = {
    "DescribeInstances": "ec2:DescribeInstances",
    "DescribeInstanceTypes": "ec2:DescribeInstanceTypes",
    "DescribeRegions": "ec2:DescribeRegions",
    "LookupEvents": "cloudtrail:LookupEvents",
    "GetCallerIdentity": "sts:GetCallerIdentity",
}
_PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "Client.UnauthorizedOperation",
        "UnauthorizedAccess",
    }
)
_AUTH_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "RequestExpired",
        "NoCredentialsError",
    }
)
_OPT_IN_CODES = frozenset({"OptInRequired", "AuthFailure"})
_UNAVAILABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "Unavailable",
    }
)
_AUTH_EXCEPTIONS: tuple[type[Exception], ...] = (
    bex.NoCredentialsError,
    bex.PartialCredentialsError,
    bex.CredentialRetrievalError,
    bex.ProfileNotFound,
    bex.TokenRetrievalError,
    bex.SSOError,
)
_NETWORK_EXCEPTIONS: tuple[type[Exception], ...] = (
    bex.EndpointConnectionError,
    bex.ConnectTimeoutError,
    bex.ReadTimeoutError,
    bex.ConnectionClosedError,
    bex.HTTPClientError,
)
_AUTH_HINT = (
    "refresh the credentials (aws sso login / aws sts get-caller-identity) or set "
    "AWS_PROFILE / the source's profile"
)


def _permission_for(operation: str | None, service: str | None) -> str | None:
    if operation is None:
        return None
    return _IAM_ACTIONS.get(operation) or (f"{service}:{operation}" if service else None)


def _from_client_error(exc: bex.ClientError, scope: str, service: str | None) -> SourceError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    text = f"{scope}: {code}: {error.get('Message') or exc}"
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    permission = _permission_for(exc.operation_name, service)
    if code in _PERMISSION_CODES or code.startswith("AccessDenied"):
        hint = f"grant {permission} to the audit role or user" if permission else None
        return ProviderPermissionError(text, permission=permission, hint=hint)
    if code in _AUTH_CODES:
        return ProviderAuthError(text, hint=_AUTH_HINT)
    if code in _OPT_IN_CODES:
        return ProviderPermissionError(
            text,
            permission=permission,
            hint="the region may not be enabled for this account: opt in (Account > AWS "
            "Regions) or drop it from the source's regions list",
        )
    if code in _UNAVAILABLE_CODES or status >= 500:
        return ProviderUnavailable(
            f"{text} (after retries)",
            hint="retry later, or set retry_mode: adaptive / a higher max_attempts",
        )
    return SourceError(text, hint="see the AWS error code above")


def _translate(exc: Exception, scope: str, service: str | None) -> SourceError:
    if isinstance(exc, bex.ClientError):
        return _from_client_error(exc, scope, service)
    if isinstance(exc, _AUTH_EXCEPTIONS):
        return ProviderAuthError(f"{scope}: {exc}", hint=_AUTH_HINT)
    if isinstance(exc, _NETWORK_EXCEPTIONS):
        return ProviderUnavailable(
            f"{scope}: {exc}",
            hint="check network access to the AWS endpoint (proxy, VPC endpoint, endpoint_url)",
        )
    return SourceError(f"{scope}: {exc}", hint="see the message above")


@contextmanager
def translate_errors(scope: str, *, service: str | None = None) -> Iterator[None]:
    """Re-raise botocore/boto3 exceptions as ``agent.errors`` with remediation hints."""
    try:
        yield
    except (bex.ClientError, bex.BotoCoreError) as exc:
        raise _translate(exc, scope, service) from exc


class AwsClient:
    """A boto3 Session plus one retrying client per (service, region).

    ``max_attempts`` counts the first try (like ``AWS_MAX_ATTEMPTS``); ``retry_mode`` is
    botocore's ``standard`` or ``adaptive`` (client-side rate limiting for LookupEvents).
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: Any = None,
        retry_mode: Literal["standard", "adaptive"] = "standard",
        max_attempts: int = 5,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        page_size: int = 50,
    ) -> None:
        with translate_errors(f"aws profile {profile or 'default'}"):
            self._session = session or boto3.Session(profile_name=profile, region_name=region)
        self.region = region
        self.endpoint_url = endpoint_url
        self.page_size = page_size
        self._config = BotoConfig(
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            user_agent_extra="chipwarden",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._account: str | None = None
        self._types: dict[str, dict[str, dict[str, Any]]] = {}
        self._invalid_types: dict[str, set[str]] = {}

    @property
    def default_region(self) -> str:
        """Region for global calls (STS, DescribeRegions)."""
        return self.region or self._session.region_name or "us-east-1"

    def client(self, service: str, region: str | None = None) -> Any:
        """The cached boto3 client for ``service`` in ``region`` (tests attach fakes here)."""
        key = (service, region or self.default_region)
        if key not in self._clients:
            with translate_errors(f"{service}/{key[1]}", service=service):
                self._clients[key] = self._session.client(
                    service,
                    region_name=key[1],
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
        return self._clients[key]

    def caller_account(self) -> str:
        """Account id of the credentials in use (STS GetCallerIdentity)."""
        if self._account is None:
            with translate_errors("aws", service="sts"):
                self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account

    def enabled_regions(self) -> list[str]:
        """Regions enabled for the account (EC2 DescribeRegions), sorted."""
        with translate_errors(f"aws/{self.default_region}", service="ec2"):
            regions = self.client("ec2").describe_regions()["Regions"]
        return sorted(r["RegionName"] for r in regions)

    def describe_instances(self, region: str) -> Iterator[dict[str, Any]]:
        """Every pending/running/stopping/stopped instance in ``region`` (paginated)."""
        with translate_errors(region, service="ec2"):
            pages = (
                self.client("ec2", region)
                .get_paginator("describe_instances")
                .paginate(
                    Filters=[{"Name": "instance-state-name", "Values": list(INSTANCE_STATES)}]
                )
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    yield from reservation.get("Instances", [])

    def instance_type_info(self, region: str, types: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``InstanceTypeInfo`` by type name (DescribeInstanceTypes, cached per region).

        Names EC2 does not know are left out of the result.
        """
        cache = self._types.setdefault(region, {})
        invalid = self._invalid_types.setdefault(region, set())
        wanted = sorted({t for t in types if t})
        missing = [t for t in wanted if t not in cache and t not in invalid]
        with translate_errors(region, service="ec2"):
            ec2 = self.client("ec2", region)
            for start in range(0, len(missing), _TYPES_PER_CALL):
                self._fetch_types(ec2, missing[start : start + _TYPES_PER_CALL], cache, invalid)
        return {t: cache[t] for t in wanted if t in cache}

    @staticmethod
    def _fetch_types(
        ec2: Any, names: Sequence[str], cache: dict[str, Any], invalid: set[str]
    ) -> None:
        try:
            for page in ec2.get_paginator("describe_instance_types").paginate(
                InstanceTypes=list(names)
            ):
                cache.update({t["InstanceType"]: t for t in page.get("InstanceTypes", [])})
        except bex.ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") != "InvalidInstanceType":
                raise
            if len(names) == 1:
                invalid.add(names[0])
                return
            # One bad name fails the whole call. EC2 lists them ("...do not exist: [a, b]");
            # drop those and retry once, else isolate names one by one.
            listed = _INVALID_TYPES_RE.search(str(error.get("Message") or ""))
            bad = {n.strip() for n in listed.group(1).split(",")} if listed else set()
            rest = [n for n in names if n not in bad]
            if bad and len(rest) < len(names):
                invalid.update(n for n in names if n in bad)
                if rest:
                    AwsClient._fetch_types(ec2, rest, cache, invalid)
                return
            for name in names:
                AwsClient._fetch_types(ec2, [name], cache, invalid)

    def lookup_events(
        self,
        region: str,
        *,
        start: datetime,
        end: datetime,
        event_sources: Sequence[str] = DEFAULT_EVENT_SOURCES,
    ) -> Iterator[Any]:
        """CloudTrail LookupEvents records (parsed ``CloudTrailEvent`` JSON), one paginated
        pass per event source. A record that is not valid JSON is yielded as its raw text."""
        with translate_errors(region, service="cloudtrail"):
            paginator = self.client("cloudtrail", region).get_paginator("lookup_events")
            for source in event_sources:
                pages = paginator.paginate(
                    LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": source}],
                    StartTime=start,
                    EndTime=end,
                    PaginationConfig={"PageSize": self.page_size},
                )
                for page in pages:
                    events = page.get("Events", [])
                    log.debug(
                        "aws_lookup_events_page",
                        region=region,
                        event_source=source,
                        events=len(events),
                    )
                    for event in events:
                        yield _parse_event(event.get("CloudTrailEvent"))


def _parse_event(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
