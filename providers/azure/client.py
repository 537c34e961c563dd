"""The only module that imports ``azure.*``: builds the SDK clients, pages, bounds retries and
translates SDK errors into agent.errors. Everything it returns is plain JSON-shaped data in the
REST API's own field names, so normalisation stays pure and testable from recorded JSON.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
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
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.monitor.query import LogsQueryClient, LogsQueryStatus
from azure.storage.blob import ContainerClient

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


class StaticTokenCredential:
    """A fixed bearer token (testing, or a token minted elsewhere); duck-types TokenCredential."""

    def __init__(self, token: str, *, lifetime_seconds: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime_seconds

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + self._lifetime)


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
    ) -> None:
        self._credential = credential
        self._arm_url = arm_url
        self._logs_url = logs_url
        self._blob_url = blob_url
        self._log_timeout = log_query_timeout_seconds
        self._common: dict[str, Any] = {
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
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
    def from_config(cls, config: AzureConfig, *, environ: Mapping[str, str]) -> AzureClient:
        """Build from config; ``static-token`` reads ``token`` or $CHIPWARDEN_AZURE_TOKEN."""
        credential: Any
        if config.credentials == "static-token":
            token = config.token.get_secret_value() if config.token else environ.get(TOKEN_ENV)
            if not token:
                raise ConfigError(
                    f"credentials: static-token needs `token:` or ${TOKEN_ENV}",
                    location="sources[azure].token",
                )
            credential = StaticTokenCredential(token)
        else:
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
                workspace_id, query, timespan=(start, end), server_timeout=self._log_timeout
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
    def list_blobs(self, account_url: str, container: str, prefix: str) -> Iterator[BlobRef]:
        """Blobs under ``prefix`` (paged by the SDK)."""
        with translate_errors(
            action="Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            scope=f"{account_url}/{container}",
        ):
            for blob in self._container(account_url, container).list_blobs(
                name_starts_with=prefix or None
            ):
                yield BlobRef(name=blob.name, last_modified=blob.last_modified, size=blob.size)

    def read_blob(self, account_url: str, container: str, name: str) -> bytes:
        """Whole blob content."""
        with translate_errors(
            action="Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            scope=f"{account_url}/{container}",
        ):
            data: bytes = self._container(account_url, container).download_blob(name).readall()
            return data
