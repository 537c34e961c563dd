"""The AWS SDK facade: the only module that imports boto3/botocore.

``AwsClient`` pages, retries (botocore standard/adaptive modes), assumes roles into member
accounts (credentials refreshed before expiry) and translates every SDK exception into
``agent.errors`` through ``translate_errors``, so nothing above this module ever sees a
botocore type. Clients are created under a lock and shared by the fan-out's threads.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

import boto3
import botocore.session
import structlog
from botocore import exceptions as bex
from botocore.config import Config as BotoConfig
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from agent.errors import ProviderAuthError, ProviderUnavailable, SourceError
from providers.aws.codes import (
    AUTH_HINT,
    EXPIRED_CODES,
    AwsNotFound,
    ObjectTooLarge,
    classify,
)
from providers.aws.iam import iam_action

__all__ = [
    "DEFAULT_EVENT_SOURCES",
    "INSTANCE_STATES",
    "AwsClient",
    "AwsNotFound",
    "CallerIdentity",
    "ObjectTooLarge",
    "translate_errors",
]

log = structlog.get_logger(__name__)

DEFAULT_EVENT_SOURCES = (
    "ssm.amazonaws.com",
    "ec2-instance-connect.amazonaws.com",
    "signin.amazonaws.com",
)
INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
_TYPES_PER_CALL = 100  # DescribeInstanceTypes accepts at most 100 names
_INVALID_TYPES_RE = re.compile(r"do not exist: \[([^\]]*)\]")

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
    bex.HTTPClientError,  # ResponseStreamingError: the connection dropped mid-body
    bex.IncompleteReadError,  # a body shorter than its Content-Length
)
_SPOOL_BYTES = 8 * 1024 * 1024  # objects up to this size are held in memory, larger on disk


def _from_client_error(exc: bex.ClientError, scope: str, service: str | None) -> SourceError:
    error = exc.response.get("Error", {})
    return classify(
        code=str(error.get("Code") or "Unknown"),
        message=str(error.get("Message") or exc),
        status=int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0),
        scope=scope,
        permission=iam_action(exc.operation_name, service),
    )


def _translate(exc: Exception, scope: str, service: str | None) -> SourceError:
    if isinstance(exc, bex.ClientError):
        return _from_client_error(exc, scope, service)
    if isinstance(exc, _AUTH_EXCEPTIONS):
        return ProviderAuthError(f"{scope}: {exc}", hint=AUTH_HINT)
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


@dataclass(frozen=True)
class CallerIdentity:
    """STS GetCallerIdentity: the account and ARN of the credentials in use."""

    account: str
    arn: str

    @property
    def partition(self) -> str:
        """``aws``, ``aws-cn`` or ``aws-us-gov`` (from the ARN)."""
        parts = self.arn.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else "aws"


@dataclass
class _TypeCache:
    """DescribeInstanceTypes answers per region, shared by every account's client."""

    types: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    invalid: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _StaticProvider(CredentialProvider):  # type: ignore[misc]
    """Hands one (refreshable) credentials object to a botocore session's resolver."""

    METHOD = "chipwarden-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


class _RenewableCredentials(RefreshableCredentials):  # type: ignore[misc]
    """Assumed-role credentials that can be renewed on demand, when AWS answers that they
    expired before botocore's own refresh window (clock skew, a revoked session)."""

    def expire(self) -> None:
        """Mark the credentials expired: the next signature re-assumes the role."""
        self._expiry_time = datetime.now(UTC)  # botocore has no public "refresh now"


class AwsClient:
    """A boto3 Session plus one retrying client per (service, region).

    ``max_attempts`` counts the first try (like ``AWS_MAX_ATTEMPTS``); ``retry_mode`` is
    botocore's ``standard`` or ``adaptive`` (client-side rate limiting for LookupEvents).
    ``assume_role`` returns a child client for a member account sharing the type cache.
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
        max_pool_connections: int = 10,
        object_attempts: int = 4,
        retry_backoff: float = 1.0,
        _types: _TypeCache | None = None,
    ) -> None:
        with translate_errors(f"aws profile {profile or 'default'}"):
            self._session = session or boto3.Session(profile_name=profile, region_name=region)
        self.region = region
        self.endpoint_url = endpoint_url
        self.page_size = page_size
        self.object_attempts = object_attempts
        self.retry_backoff = retry_backoff
        self._settings = (retry_mode, max_attempts, connect_timeout, read_timeout)
        self._config = BotoConfig(
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            user_agent_extra="chipwarden",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._identity: CallerIdentity | None = None
        self._cache = _types or _TypeCache()
        self._renewable: _RenewableCredentials | None = None

    @property
    def default_region(self) -> str:
        """Region for global calls (STS, DescribeRegions)."""
        return self.region or self._session.region_name or "us-east-1"

    def client(self, service: str, region: str | None = None) -> Any:
        """The cached boto3 client for ``service`` in ``region`` (tests attach fakes here)."""
        key = (service, region or self.default_region)
        with self._lock:
            if key not in self._clients:
                with translate_errors(f"{service}/{key[1]}", service=service):
                    client = self._session.client(
                        service,
                        region_name=key[1],
                        endpoint_url=self.endpoint_url,
                        config=self._config,
                    )
                if self._renewable is not None:
                    client.meta.events.register("needs-retry", self._refresh_on_expiry)
                self._clients[key] = client
            return self._clients[key]

    def _refresh_on_expiry(
        self, response: Any = None, request_dict: Any = None, **_kw: Any
    ) -> float | None:
        """botocore ``needs-retry`` hook: an ExpiredToken answer renews the assumed-role
        credentials and retries the request at once, re-signed; once per request."""
        if response is None or self._renewable is None or not isinstance(request_dict, dict):
            return None
        code = (response[1] or {}).get("Error", {}).get("Code")
        context = request_dict.setdefault("context", {})
        if code not in EXPIRED_CODES or context.get("chipwarden_renewed"):
            return None
        context["chipwarden_renewed"] = True
        self._renewable.expire()
        log.info("aws_credentials_renewed", account=self._identity and self._identity.account)
        return 0.0

    # ------------------------------------------------------------------ identity and scope

    def caller_identity(self) -> CallerIdentity:
        """Account and ARN of the credentials in use (STS GetCallerIdentity, cached)."""
        if self._identity is None:
            with translate_errors("aws", service="sts"):
                reply = self.client("sts").get_caller_identity()
            self._identity = CallerIdentity(account=str(reply["Account"]), arn=str(reply["Arn"]))
        return self._identity

    def caller_account(self) -> str:
        """Account id of the credentials in use."""
        return self.caller_identity().account

    def organization_accounts(self) -> list[dict[str, Any]]:
        """Every account of the organization (Organizations ListAccounts), with its Status."""
        with translate_errors("organization", service="organizations"):
            pages = self.client("organizations").get_paginator("list_accounts").paginate()
            return [account for page in pages for account in page.get("Accounts", [])]

    def assume_role(
        self,
        *,
        role_arn: str,
        account: str,
        session_name: str,
        external_id: str | None = None,
        duration_seconds: int = 3600,
    ) -> AwsClient:
        """A client for ``account`` through STS AssumeRole; botocore refreshes the credentials
        before they expire. The first AssumeRole runs now, so a denied role fails here."""
        sts = self.client("sts")
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration_seconds,
        }
        if external_id:
            params["ExternalId"] = external_id

        def fetch() -> dict[str, str]:
            with translate_errors(f"{account}: AssumeRole {role_arn}", service="sts"):
                creds = sts.assume_role(**params)["Credentials"]
            log.debug("aws_role_assumed", account=account, role=role_arn)
            expiry = creds["Expiration"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry),
            }

        credentials = _RenewableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method=_StaticProvider.METHOD
        )
        core = botocore.session.Session()
        core.register_component(
            "credential_provider", CredentialResolver(providers=[_StaticProvider(credentials)])
        )
        parent = getattr(self._session, "_session", None)  # boto3 keeps its botocore session here
        if parent is not None:
            # Share the parsed service models: without this every account re-reads the EC2
            # model (megabytes of JSON) for its own session.
            core.register_component("data_loader", parent.get_component("data_loader"))
        retry_mode, max_attempts, connect_timeout, read_timeout = self._settings
        child = AwsClient(
            region=self.default_region,
            endpoint_url=self.endpoint_url,
            session=boto3.Session(botocore_session=core, region_name=self.default_region),
            retry_mode=retry_mode,
            max_attempts=max_attempts,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            page_size=self.page_size,
            object_attempts=self.object_attempts,
            retry_backoff=self.retry_backoff,
            _types=self._cache,
        )
        child._identity = CallerIdentity(account=account, arn=role_arn)
        child._renewable = credentials
        return child

    def enabled_regions(self) -> list[str]:
        """Regions enabled for the account (EC2 DescribeRegions), sorted."""
        with translate_errors(f"aws/{self.default_region}", service="ec2"):
            regions = self.client("ec2").describe_regions()["Regions"]
        return sorted(r["RegionName"] for r in regions)

    # ------------------------------------------------------------------ EC2 inventory

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
        """``InstanceTypeInfo`` by type name (DescribeInstanceTypes, cached per region and
        shared across accounts). Names EC2 does not know are left out of the result."""
        with self._cache.lock:
            cache = self._cache.types.setdefault(region, {})
            invalid = self._cache.invalid.setdefault(region, set())
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

    # ------------------------------------------------------------------ logs and trails

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

    def list_keys(
        self, bucket: str, prefix: str, *, start_after: str | None = None, region: str | None = None
    ) -> Iterator[str]:
        """Object keys under ``prefix`` in key order (ListObjectsV2, paginated)."""
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after:
            params["StartAfter"] = start_after
        with translate_errors(f"s3://{bucket}/{prefix}", service="s3"):
            pages = self.client("s3", region).get_paginator("list_objects_v2").paginate(**params)
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])

    @contextmanager
    def fetch_object(
        self, bucket: str, key: str, *, region: str | None = None, max_bytes: int | None = None
    ) -> Iterator[BinaryIO]:
        """One S3 object, downloaded whole before anyone parses it (memory up to 8 MiB, a
        temporary file beyond), so a download that fails half-way is retried from the start
        without a parser having seen half an object.

        Retried as a whole (``object_attempts``, exponential backoff from ``retry_backoff``
        seconds): what botocore's own retries let through (throttling, 5xx), a connection
        dropped mid-body, a body shorter than its Content-Length, and NoSuchKey for a key
        that was just listed. ``ObjectTooLarge`` when the object is over ``max_bytes``.
        """
        backoff = self.retry_backoff
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.object_attempts)),
            wait=wait_random_exponential(multiplier=backoff, max=30 * backoff),
            retry=retry_if_exception_type((ProviderUnavailable, AwsNotFound)),
            before_sleep=lambda state: log.warning(
                "aws_object_retry",
                bucket=bucket,
                key=key,
                attempt=state.attempt_number,
                error=str(state.outcome.exception() if state.outcome else None),
            ),
            reraise=True,
        )
        spooled = retrying(self._download, bucket, key, region=region, max_bytes=max_bytes)
        try:
            yield spooled
        finally:
            spooled.close()

    def _download(
        self, bucket: str, key: str, *, region: str | None, max_bytes: int | None
    ) -> BinaryIO:
        scope = f"s3://{bucket}/{key}"
        with translate_errors(scope, service="s3"):
            reply = self.client("s3", region).get_object(Bucket=bucket, Key=key)
        body, size = reply["Body"], int(reply.get("ContentLength") or 0)
        try:
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLarge(
                    f"{scope}: {size} bytes, over the {max_bytes}-byte limit of its reader",
                    hint="the object is skipped; check that it is the log it claims to be",
                )
            with translate_errors(scope, service="s3"):
                if size <= _SPOOL_BYTES:
                    data = body.read()
                    log.debug("aws_object_fetched", key=key, bytes=len(data))
                    return io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
                spool = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 - closed by caller
                try:
                    for chunk in body.iter_chunks(1 << 20):
                        spool.write(chunk)
                except BaseException:
                    spool.close()
                    raise
            spool.seek(0)
            return io.BufferedReader(spool)
        finally:
            body.close()

    def filter_log_events(
        self,
        group: str,
        *,
        region: str | None,
        start_ms: int,
        end_ms: int,
        pattern: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """CloudWatch Logs events of ``group`` in [start_ms, end_ms] (FilterLogEvents)."""
        params: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "endTime": end_ms}
        if pattern:
            params["filterPattern"] = pattern
        with translate_errors(f"logs:{group}", service="logs"):
            pages = (
                self.client("logs", region).get_paginator("filter_log_events").paginate(**params)
            )
            for page in pages:
                yield from page.get("events", [])

    def ssm_history(self, region: str, *, target: str, after: datetime) -> Iterator[dict[str, Any]]:
        """Terminated Session Manager sessions to ``target`` started after ``after``
        (SSM DescribeSessions, State=History)."""
        filters = [
            {"key": "Target", "value": target},
            {"key": "InvokedAfter", "value": after.strftime("%Y-%m-%dT%H:%M:%SZ")},
        ]
        with translate_errors(f"{region}: ssm sessions of {target}", service="ssm"):
            pages = (
                self.client("ssm", region)
                .get_paginator("describe_sessions")
                .paginate(State="History", Filters=filters)
            )
            for page in pages:
                yield from page.get("Sessions", [])


def _parse_event(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
