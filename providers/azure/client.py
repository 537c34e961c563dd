"""The only module that imports ``azure.*``: builds the SDK clients, pages, bounds retries and
translates SDK errors into agent.errors. Everything it returns is plain JSON-shaped data in the
REST API's own field names, so normalisation stays pure and testable from recorded JSON.

Retries (``retry_total`` per request, backoff ``retry_backoff_factor`` x 2^n, a Retry-After
honoured): 429, 5xx, timeouts and dropped connections in every SDK pipeline (Log Analytics
queries too: they are reads sent as POST); a 401 whose challenge says the token is invalid
(it expired mid-run) is retried with a fresh token; a blob that was listed but answers 404, or
whose body ends short of its length, is read again. What still fails after that is a
SourceError (ProviderUnavailable, ProviderAuthError...), i.e. a ScopeError of the run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import structlog
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.monitor.query import LogsQueryClient, LogsQueryStatus
from azure.storage.blob import ContainerClient, ExponentialRetry

from agent.errors import (
    ChipwardenError,
    ConfigError,
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)
from providers.azure.config import AzureConfig

__all__ = [
    "TOKEN_ENV",
    "AzureClient",
    "BlobRef",
    "LogsResult",
    "StaticTokenCredential",
    "translate_errors",
]

log = structlog.get_logger(__name__)

TOKEN_ENV = "CHIPWARDEN_AZURE_TOKEN"  # noqa: S105 - an env var name
SUBSCRIPTIONS_API = "2022-12-01"
NETWORK_API = "2024-05-01"
_PLACEHOLDER_SUB = "00000000-0000-0000-0000-000000000000"
_ACTIVITY_SELECT = (
    "eventDataId,eventTimestamp,operationName,operationId,correlationId,caller,httpRequest,"
    "resourceId,status,subStatus,subscriptionId,eventName,level,resourceProviderName"
)
_ACTION_IN_MESSAGE = re.compile(r"perform action '([^']+)'")
_INVALID_TOKEN = re.compile(r'error="?invalid_token"?', re.IGNORECASE)
_QUERY_METHODS = frozenset({"GET", "HEAD", "POST"})  # a Log Analytics query is a read
_BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"


class StaticTokenCredential:
    """A fixed bearer token (testing, or a token minted elsewhere); duck-types TokenCredential."""

    def __init__(self, token: str, *, lifetime_seconds: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime_seconds

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + self._lifetime)


class _TokenAwareRetry(RetryPolicy[Any, Any]):
    """azure-core's retry, plus a 401 whose ``WWW-Authenticate`` says ``invalid_token`` (the
    token expired or was revoked mid-run): the authentication policy dropped its token on that
    401, so the retry carries a fresh one. Every budget (connect, read, status) is ``total``."""

    def __init__(self, *, total: int, backoff: float) -> None:
        super().__init__(
            retry_total=total,
            retry_connect=total,
            retry_read=total,
            retry_status=total,
            retry_backoff_factor=backoff,
            retry_on_status_codes=[401],
        )

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        http = response.http_response
        challenge = http.headers.get("WWW-Authenticate") or ""
        if http.status_code == 401 and not _INVALID_TOKEN.search(challenge):
            return False  # a wrong credential or audience: no new token will fix it
        return bool(super().is_retry(settings, response))


class _StorageRetry(ExponentialRetry):
    """Storage's own retry (5xx incl. its ServerBusy throttling, timeouts, dropped connections)
    with azure-core's backoff, ``backoff`` x 2^n capped at 120 s, instead of a 15 s start."""

    def __init__(self, *, total: int, backoff: float) -> None:
        super().__init__(
            initial_backoff=0,
            increment_base=0,
            random_jitter_range=0,
            retry_total=total,
            retry_connect=total,
            retry_read=total,
            retry_status=total,
        )
        self._factor = backoff

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        return float(min(self._factor * 2 ** int(settings.get("count", 0)), 120.0))


def _cut_short(exc: HttpResponseError) -> bool:
    """The body ended before its Content-Length (storage gave up after its own re-reads)."""
    return exc.status_code is None and isinstance(
        exc.__cause__, (IncompleteReadError, DecodeError, ServiceResponseError)
    )


@dataclass(frozen=True)
class LogsResult:
    """Rows of a Log Analytics query as ``{column: value}``; ``partial_error`` when partial."""

    rows: list[dict[str, Any]]
    partial_error: str | None = None


@dataclass(frozen=True)
class BlobRef:
    """One listed blob."""

    name: str
    last_modified: datetime | None
    size: int | None


def _error_text(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if message:
        return f"{code}: {message}" if code else str(message)
    first = (exc.message or str(exc)).strip().splitlines()
    return first[0] if first else type(exc).__name__


def _from_http(exc: HttpResponseError, *, action: str, scope: str) -> SourceError:
    status = exc.status_code or 0
    text = _error_text(exc)
    if status == 401:
        return ProviderAuthError(
            f"{scope}: authentication rejected (401): {text}",
            hint="refresh the credential (az login, workload identity or AZURE_CLIENT_* env)",
        )
    if status == 403:
        found = _ACTION_IN_MESSAGE.search(text)
        permission = found.group(1) if found else action
        return ProviderPermissionError(
            f"{scope}: permission denied (403): {text}",
            permission=permission,
            hint=f"grant {permission} on {scope} to the audit identity (see docs/azure.md role)",
        )
    if status == 429 or status >= 500:
        return ProviderUnavailable(
            f"{scope}: Azure answered {status} after retries: {text}",
            hint="retry later, or raise retry_total / retry_backoff_factor in the source config",
        )
    if status == 404:
        return SourceError(
            f"{scope}: not found (404): {text}",
            hint="check the subscription, workspace, account or container name",
        )
    return SourceError(
        f"{scope}: request failed ({status}): {text}",
        hint="for Log Analytics a missing table means the diagnostic setting is not sending "
        "that category to the workspace; drop the stream from `streams:` if it is unused",
    )


@contextmanager
def translate_errors(*, action: str, scope: str) -> Iterator[None]:
    """Re-raise azure-core exceptions as agent.errors; ``action`` names the RBAC permission."""
    try:
        yield
    except ChipwardenError:
        raise
    except ClientAuthenticationError as exc:
        raise ProviderAuthError(
            f"{scope}: authentication failed: {_error_text(exc)}",
            hint="sign in (az login), or configure a managed / workload identity",
        ) from exc
    except HttpResponseError as exc:
        raise _from_http(exc, action=action, scope=scope) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise ProviderUnavailable(
            f"{scope}: cannot reach Azure: {exc}",
            hint="check network, proxy and `endpoints:`; timeouts are `timeout_seconds`",
        ) from exc
    except AzureError as exc:
        raise SourceError(f"{scope}: Azure SDK error: {exc}") from exc


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_dict(model: Any) -> dict[str, Any]:
    """SDK model -> REST-shaped dict (hybrid models are mappings, msrest ones serialize)."""
    if isinstance(model, Mapping):
        return dict(model.as_dict()) if hasattr(model, "as_dict") else dict(model)
    return dict(model.serialize(keep_readonly=True))


class AzureClient:
    """Facade over the Azure SDK clients one source needs (lazily created, cached)."""

    def __init__(
        self,
        *,
        credential: Any,
        arm_url: str | None = None,
        logs_url: str | None = None,
        blob_url: str | None = None,
        ca_bundle: Path | None = None,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.8,
        timeout_seconds: float = 60,
        log_query_timeout_seconds: int = 180,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credential = credential
        self._arm_url = arm_url
        self._logs_url = logs_url
        self._blob_url = blob_url
        self._log_timeout = log_query_timeout_seconds
        self._retry_total = retry_total
        self._backoff = retry_backoff_factor
        self._sleep = sleep
        self._common: dict[str, Any] = {
            "connection_timeout": timeout_seconds,
            "read_timeout": timeout_seconds,
            "user_agent": "chipwarden",
        }
        if ca_bundle is not None:
            self._common["connection_verify"] = str(ca_bundle)
        self._compute: dict[str, ComputeManagementClient] = {}
        self._monitor: dict[str, MonitorManagementClient] = {}
        self._containers: dict[tuple[str, str], ContainerClient] = {}
        self._resources: ResourceManagementClient | None = None
        self._logs: LogsQueryClient | None = None

    @classmethod
    def from_config(
        cls, config: AzureConfig, *, environ: Mapping[str, str], credential: Any = None
    ) -> AzureClient:
        """Build from config; ``static-token`` reads ``token`` or $CHIPWARDEN_AZURE_TOKEN. An
        injected ``credential`` (any TokenCredential) replaces ``credentials:``."""
        if credential is None and config.credentials == "static-token":
            token = config.token.get_secret_value() if config.token else environ.get(TOKEN_ENV)
            if not token:
                raise ConfigError(
                    f"credentials: static-token needs `token:` or ${TOKEN_ENV}",
                    location="sources[azure].token",
                )
            credential = StaticTokenCredential(token)
        elif credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(
            credential=credential,
            arm_url=config.endpoints.arm,
            logs_url=config.endpoints.logs,
            blob_url=config.endpoints.blob,
            ca_bundle=config.ca_bundle,
            retry_total=config.retry_total,
            retry_backoff_factor=config.retry_backoff_factor,
            timeout_seconds=config.timeout_seconds,
            log_query_timeout_seconds=config.log_query_timeout_seconds,
        )

    # -- SDK clients -------------------------------------------------------------------------
    def _arm_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self._common)
        kwargs["retry_policy"] = _TokenAwareRetry(total=self._retry_total, backoff=self._backoff)
        if self._arm_url:
            kwargs["base_url"] = self._arm_url
            kwargs["credential_scopes"] = [f"{self._arm_url}/.default"]
        return kwargs

    def _compute_client(self, subscription_id: str) -> ComputeManagementClient:
        if subscription_id not in self._compute:
            self._compute[subscription_id] = ComputeManagementClient(
                self._credential, subscription_id, **self._arm_kwargs()
            )
        return self._compute[subscription_id]

    def _monitor_client(self, subscription_id: str) -> MonitorManagementClient:
        if subscription_id not in self._monitor:
            self._monitor[subscription_id] = MonitorManagementClient(
                self._credential, subscription_id, **self._arm_kwargs()
            )
        return self._monitor[subscription_id]

    def _resources_client(self) -> ResourceManagementClient:
        if self._resources is None:
            self._resources = ResourceManagementClient(
                self._credential, _PLACEHOLDER_SUB, **self._arm_kwargs()
            )
        return self._resources

    def _logs_client(self) -> LogsQueryClient:
        if self._logs is None:
            kwargs = dict(self._common)
            kwargs["retry_policy"] = _TokenAwareRetry(
                total=self._retry_total, backoff=self._backoff
            )
            if self._logs_url:
                kwargs["endpoint"] = self._logs_url
            self._logs = LogsQueryClient(self._credential, **kwargs)
        return self._logs

    def storage_url(self, account_url: str) -> str:
        """``account_url``, or ``endpoints.blob`` with the account name as first path part."""
        if not self._blob_url:
            return account_url
        account = urlparse(account_url).netloc.split(".", 1)[0]
        return f"{self._blob_url}/{account}"

    def _container(self, account_url: str, container: str) -> ContainerClient:
        key = (account_url, container)
        if key not in self._containers:
            self._containers[key] = ContainerClient(
                self.storage_url(account_url),
                container,
                credential=self._credential,
                retry_policy=_StorageRetry(total=self._retry_total, backoff=self._backoff),
                **self._common,
            )
        return self._containers[key]

    def close(self) -> None:
        """Close every SDK client created so far."""
        clients: list[Any] = [*self._compute.values(), *self._monitor.values()]
        clients += [*self._containers.values(), self._resources, self._logs]
        for client in clients:
            if client is not None:
                client.close()

    # -- ARM ---------------------------------------------------------------------------------
    def subscriptions(self) -> Iterator[dict[str, Any]]:
        """Every subscription the credential sees (raw ``Subscriptions - List`` items)."""
        client = self._resources_client()
        url: str | None = f"/subscriptions?api-version={SUBSCRIPTIONS_API}"
        with translate_errors(
            action="Microsoft.Resources/subscriptions/read", scope="subscriptions"
        ):
            while url:
                response = client.send_request(HttpRequest("GET", url))
                if response.status_code >= 400:
                    raise HttpResponseError(response=response, error_format=ARMErrorFormat)
                page = response.json()
                yield from page.get("value") or ()
                url = page.get("nextLink")

    def virtual_machines(self, subscription_id: str) -> Iterator[dict[str, Any]]:
        """``virtualMachines - List All`` for one subscription."""
        with translate_errors(
            action="Microsoft.Compute/virtualMachines/read",
            scope=f"subscriptions/{subscription_id}",
        ):
            for vm in self._compute_client(subscription_id).virtual_machines.list_all():
                yield _as_dict(vm)

    def scale_sets(self, subscription_id: str) -> Iterator[dict[str, Any]]:
        """``virtualMachineScaleSets - List All`` for one subscription."""
        with translate_errors(
            action="Microsoft.Compute/virtualMachineScaleSets/read",
            scope=f"subscriptions/{subscription_id}",
        ):
            for vmss in self._compute_client(subscription_id).virtual_machine_scale_sets.list_all():
                yield _as_dict(vmss)

    def scale_set_vms(
        self, subscription_id: str, resource_group: str, scale_set: str
    ) -> Iterator[dict[str, Any]]:
        """Instances of one scale set."""
        with translate_errors(
            action="Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
            scope=f"subscriptions/{subscription_id}",
        ):
            ops = self._compute_client(subscription_id).virtual_machine_scale_set_vms
            for vm in ops.list(resource_group, scale_set):
                yield _as_dict(vm)

    def resource_skus(self, subscription_id: str, location: str) -> Iterator[dict[str, Any]]:
        """``Resource Skus - List`` for one location (all resource types; filter by caller)."""
        with translate_errors(
            action="Microsoft.Compute/skus/read", scope=f"subscriptions/{subscription_id}"
        ):
            ops = self._compute_client(subscription_id).resource_skus
            for sku in ops.list(filter=f"location eq '{location}'"):
                yield _as_dict(sku)

    def get_resource(self, resource_id: str, *, action: str) -> dict[str, Any]:
        """GET any ARM resource by id (network interfaces, public IP addresses)."""
        subscription = resource_id.split("/")[2] if resource_id.count("/") > 2 else "?"
        with translate_errors(action=action, scope=f"subscriptions/{subscription}"):
            resource = self._resources_client().resources.get_by_id(
                resource_id, api_version=NETWORK_API
            )
            return _as_dict(resource)

    def activity_events(
        self, subscription_id: str, *, start: datetime, end: datetime, provider: str
    ) -> Iterator[dict[str, Any]]:
        """Activity Log events of one resource provider in ``[start, end]``."""
        flt = (
            f"eventTimestamp ge '{_iso(start)}' and eventTimestamp le '{_iso(end)}' "
            f"and resourceProvider eq '{provider}'"
        )
        with translate_errors(
            action="Microsoft.Insights/eventtypes/values/read",
            scope=f"subscriptions/{subscription_id}",
        ):
            ops = self._monitor_client(subscription_id).activity_logs
            for event in ops.list(filter=flt, select=_ACTIVITY_SELECT):
                yield _as_dict(event)

    # -- Log Analytics -----------------------------------------------------------------------
    def query_logs(
        self, workspace_id: str, query: str, *, start: datetime, end: datetime
    ) -> LogsResult:
        """Run KQL over ``[start, end]``; a partial result keeps its rows and names its error."""
        with translate_errors(
            action="Microsoft.OperationalInsights/workspaces/query/read",
            scope=f"workspaces/{workspace_id}",
        ):
            result = self._logs_client().query_workspace(
                workspace_id,
                query,
                timespan=(start, end),
                server_timeout=self._log_timeout,
                retry_on_methods=_QUERY_METHODS,
            )
        partial: str | None = None
        if result.status == LogsQueryStatus.PARTIAL:
            tables = result.partial_data or []
            error = result.partial_error
            partial = f"{getattr(error, 'code', '')}: {getattr(error, 'message', error)}"
        else:
            tables = result.tables or []
        rows = [
            {column: _plain(value) for column, value in zip(table.columns, row, strict=False)}
            for table in tables
            for row in table.rows
        ]
        return LogsResult(rows=rows, partial_error=partial)

    # -- Blob storage ------------------------------------------------------------------------
    def _pause(self, attempt: int, **fields: Any) -> None:
        log.info("azure_retry", attempt=attempt, **fields)
        self._sleep(min(self._backoff * 2**attempt, 60.0))

    def list_blobs(self, account_url: str, container: str, prefix: str) -> Iterator[BlobRef]:
        """Blobs under ``prefix``, page by page; a page refused for a rejected token twice in a
        row (storage follows one challenge itself) is asked again from its marker."""
        client = self._container(account_url, container)
        marker: str | None = None
        failures = 0
        with translate_errors(action=_BLOB_READ, scope=f"{account_url}/{container}"):
            while True:
                pages: Any = client.list_blobs(name_starts_with=prefix or None).by_page(marker)
                try:
                    for page in pages:
                        for blob in page:
                            yield BlobRef(
                                name=blob.name, last_modified=blob.last_modified, size=blob.size
                            )
                        marker = pages.continuation_token
                        failures = 0
                    return
                except ClientAuthenticationError:
                    failures += 1
                    if failures > self._retry_total:
                        raise
                    self._pause(failures, call="list_blobs", container=container)

    def read_blob(self, account_url: str, container: str, name: str) -> bytes:
        """Whole blob content; read again when it was listed but answers 404 (deleted since,
        or not yet visible), when its body ended short, or its token was rejected twice."""
        scope = f"{account_url}/{container}"
        client = self._container(account_url, container)
        attempt = 0
        with translate_errors(action=_BLOB_READ, scope=scope):
            while True:
                attempt += 1
                last = attempt > self._retry_total
                try:
                    data: bytes = client.download_blob(name).readall()
                    return data
                except ResourceNotFoundError as exc:
                    if last:
                        raise SourceError(
                            f"{scope}/{name}: listed, but not found (404); read {attempt}x",
                            hint="the blob was deleted after the listing (a retention or "
                            "lifecycle rule?); the checkpoint did not move, the next run "
                            "lists the container again",
                        ) from exc
                except ClientAuthenticationError:
                    if last:
                        raise
                except HttpResponseError as exc:
                    if not _cut_short(exc):
                        raise
                    if last:
                        raise ProviderUnavailable(
                            f"{scope}/{name}: the body ended short of its length; read {attempt}x",
                            hint="a proxy or the network cuts long downloads; retry later or "
                            "raise retry_total / timeout_seconds",
                        ) from exc
                self._pause(attempt, call="read_blob", blob=name)
