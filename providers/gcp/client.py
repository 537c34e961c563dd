"""The only module that imports google-cloud libraries: pages, retries, translates errors.

Every method returns REST-shaped (camelCase) dicts, so ``normalize``/``audit``/``flows`` are
tested from recorded JSON. Logging is read over its JSON API (``_use_grpc=False``); entries stay
raw dicts so one malformed entry is quarantined instead of breaking the SDK's parser.
Each request (each page) is retried on its own through ``backoff.Backoff`` when the error is
transient (429 honouring Retry-After, 5xx, read timeouts, dropped connections, truncated
bodies; a 404 for an object the same run just listed a few times); ``timeout`` bounds each
attempt. An expired access token is refreshed by google-auth's session on the 401 itself.
SDK errors become the ``agent.errors`` tree, naming the IAM permission that was missing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
import structlog
from google.api_core import exceptions as gexc
from google.api_core import timeout as gtimeout
from google.auth import exceptions as auth_exc
from google.protobuf import json_format  # type: ignore[import-untyped]

from agent.errors import (
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)
from providers.gcp.backoff import Backoff, Transient
from providers.gcp.config import Endpoints, RetrySettings

__all__ = ["PERMISSIONS", "ApiDisabled", "GcpClient"]

log = structlog.get_logger(__name__)
T = TypeVar("T")
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

# Operation -> the IAM permission it needs (named in errors and in docs/gcp.md).
PERMISSIONS: dict[str, str] = {
    "compute.instances.aggregatedList": "compute.instances.list",
    "compute.machineTypes.get": "compute.machineTypes.get",
    "logging.entries.list": "logging.logEntries.list",
    "resourcemanager.projects.list": "resourcemanager.projects.list",
    "resourcemanager.folders.list": "resourcemanager.folders.list",
    "resourcemanager.projects.get": "resourcemanager.projects.get",
    "resourcemanager.folders.get": "resourcemanager.folders.get",
    "resourcemanager.projects.getIamPolicy": "resourcemanager.projects.getIamPolicy",
    "resourcemanager.folders.getIamPolicy": "resourcemanager.folders.getIamPolicy",
    "resourcemanager.organizations.getIamPolicy": "resourcemanager.organizations.getIamPolicy",
    "tpu.nodes.list": "tpu.nodes.list",
}
_SERVER_ERRORS = (
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
)
_TRANSIENT = (
    gexc.TooManyRequests,
    *_SERVER_ERRORS,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,  # body shorter than its Content-Length
)
# A 404 for an object named by a listing of the same run (eventual consistency): a few tries.
_LISTED_MISSING_ATTEMPTS = 4
_DISABLED_MARKERS = ("SERVICE_DISABLED", "accessNotConfigured", "has not been used in project")


class ApiDisabled(ProviderPermissionError):
    """The API is not enabled in the project (so it holds no such resources)."""

    code = "api_disabled"


def _is_disabled(exc: gexc.GoogleAPICallError) -> bool:
    reasons = [str(exc.reason or "")] + [
        str(e.get("reason", "")) for e in (exc.errors or []) if isinstance(e, dict)
    ]
    text = " ".join([*reasons, str(exc.message or "")])
    return any(marker in text for marker in _DISABLED_MARKERS)


@contextmanager
def translate_errors(
    operation: str, target: str, *, permission: str | None = None
) -> Iterator[None]:
    """Map google/requests exceptions raised inside the block to ``agent.errors``."""
    permission = permission or PERMISSIONS.get(operation)
    try:
        yield
    except gexc.Forbidden as exc:
        if _is_disabled(exc):
            raise ApiDisabled(
                f"{operation} on {target}: the API is not enabled ({exc.message})",
                permission=permission,
                hint="enable the API in the project if it should hold such resources",
            ) from exc
        raise ProviderPermissionError(
            f"{operation} on {target}: permission denied ({exc.message})",
            permission=permission,
            hint=f"grant {permission} to the audit identity (docs/gcp.md lists a custom role)",
        ) from exc
    except (gexc.Unauthorized, auth_exc.DefaultCredentialsError, auth_exc.RefreshError) as exc:
        raise ProviderAuthError(
            f"{operation} on {target}: not authenticated ({exc})",
            hint="run 'gcloud auth application-default login' or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key / workload identity config",
        ) from exc
    except (*_TRANSIENT, gexc.RetryError, auth_exc.TransportError) as exc:
        raise ProviderUnavailable(
            f"{operation} on {target}: service unavailable ({type(exc).__name__}: {exc})",
            hint="the Google API kept failing after the retry budget; the next scheduled run "
            "reads this scope again from its checkpoint (raise retry.attempts/retry.deadline "
            "if it keeps happening)",
        ) from exc
    except gexc.NotFound as exc:
        raise SourceError(
            f"{operation} on {target}: not found ({exc.message})",
            hint="check the project/folder/organization id in the config",
        ) from exc
    except gexc.GoogleAPICallError as exc:
        raise SourceError(f"{operation} on {target}: {exc.message}") from exc


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (``Retry-After``: delta-seconds or an HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(exc: BaseException, *, listed: bool = False) -> Transient | None:
    """Whether ``exc`` is worth another try, and how (``None``: fail now)."""
    if isinstance(exc, gexc.TooManyRequests):
        return Transient("throttle", retry_after=_retry_after(exc))
    if isinstance(exc, _SERVER_ERRORS):
        return Transient("server-error", retry_after=_retry_after(exc))
    if isinstance(exc, requests.exceptions.Timeout):
        return Transient("timeout")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return Transient("truncated")
    if isinstance(exc, requests.exceptions.ConnectionError | auth_exc.TransportError):
        return Transient("connection")
    if listed and isinstance(exc, gexc.NotFound):
        return Transient("missing", attempts=_LISTED_MISSING_ATTEMPTS)
    return None


class _SdkRetry:
    """A ``retry=`` for google-cloud methods (and the pagers that reuse it for later pages):
    every attempt of the wrapped call goes through ``Backoff``."""

    def __init__(self, backoff: Backoff, operation: str) -> None:
        self.backoff = backoff
        self.operation = operation

    def __call__(self, func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def with_retries(*args: Any, **kwargs: Any) -> T:
            return self.backoff.call(lambda: func(*args, **kwargs), operation=self.operation)

        return with_retries


class GcpClient:
    """Facade over Compute, Logging, Resource Manager and TPU clients (created lazily)."""

    def __init__(
        self,
        *,
        credentials: str = "default",
        endpoints: Endpoints | None = None,
        retry: RetrySettings | None = None,
        timeout: float = 60.0,
        page_size: int = 500,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials_mode = credentials
        self.endpoints = endpoints or Endpoints()
        self.retry_settings = retry
        self.timeout = timeout
        self.page_size = page_size
        self.sleep = sleep
        self._clients: dict[str, Any] = {}
        self._machine_types: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._machine_type_errors: dict[tuple[str, str, str], SourceError] = {}
        self._creds: Any = None
        self._auth_error: ProviderAuthError | None = None

    # -- plumbing ----------------------------------------------------------------------------

    def _credentials(self) -> Any:
        """Anonymous or Application Default Credentials; a failure is remembered for the run."""
        if self._auth_error is not None:
            raise self._auth_error
        if self._creds is None:
            if self.credentials_mode == "anonymous":
                from google.auth.credentials import AnonymousCredentials

                self._creds = AnonymousCredentials()  # type: ignore[no-untyped-call]
            else:
                import google.auth

                try:
                    with translate_errors("auth.default", "application default credentials"):
                        self._creds, _ = google.auth.default(scopes=list(SCOPES))
                except ProviderAuthError as exc:
                    self._auth_error = exc
                    raise
        return self._creds

    def _options(self, endpoint: str | None) -> dict[str, str] | None:
        return {"api_endpoint": endpoint.rstrip("/")} if endpoint else None

    def _client(self, name: str, factory: Callable[[], T]) -> T:
        if name not in self._clients:
            self._clients[name] = factory()
        client: T = self._clients[name]
        return client

    def _gapic(self, name: str, cls: Any, endpoint: str | None) -> Any:
        return self._client(
            name,
            lambda: cls(
                credentials=self._credentials(),
                transport="rest",
                client_options=self._options(endpoint),
            ),
        )

    def backoff(self, *, listed: bool = False) -> Backoff | None:
        """The bounded retry loop for transient errors, or ``None`` when retries are off."""
        if self.retry_settings is None:
            return None
        return Backoff(
            self.retry_settings, functools.partial(classify, listed=listed), sleep=self.sleep
        )

    def retry(self, operation: str, *, listed: bool = False) -> _SdkRetry | None:
        """``retry=`` for a google-cloud call; ``listed``: the object came from a listing."""
        backoff = self.backoff(listed=listed)
        return None if backoff is None else _SdkRetry(backoff, operation)

    def attempt_timeout(self) -> gtimeout.ConstantTimeout:
        """``timeout=`` for a google-cloud call: ``timeout`` seconds for EACH attempt (a bare
        number would be a deadline shared by the retries)."""
        return gtimeout.ConstantTimeout(self.timeout)  # type: ignore[no-untyped-call]

    def _call(self, fn: Callable[[], T], *, operation: str) -> T:
        backoff = self.backoff()
        return fn() if backoff is None else backoff.call(fn, operation=operation)

    @staticmethod
    def _to_dict(message: Any) -> dict[str, Any]:
        if hasattr(type(message), "to_dict"):  # proto-plus
            out: dict[str, Any] = type(message).to_dict(
                message, preserving_proto_field_name=False, use_integers_for_enums=False
            )
            return out
        raw: dict[str, Any] = json_format.MessageToDict(message)  # raw protobuf (IAM Policy)
        return raw

    # -- Resource Manager ----------------------------------------------------------------------

    def list_projects(self, *, parent: str) -> Iterator[dict[str, Any]]:
        """Projects directly under ``organizations/N`` or ``folders/N`` (any state)."""
        from google.cloud import resourcemanager_v3

        with translate_errors("resourcemanager.projects.list", parent):
            client = self._gapic(
                "projects", resourcemanager_v3.ProjectsClient, self.endpoints.resourcemanager
            )
            pager = client.list_projects(
                request={"parent": parent, "page_size": self.page_size},
                retry=self.retry("resourcemanager.projects.list"),
                timeout=self.attempt_timeout(),
            )
            for project in pager:
                yield self._to_dict(project)

    def list_folders(self, *, parent: str) -> Iterator[dict[str, Any]]:
        """Folders directly under ``parent``."""
        from google.cloud import resourcemanager_v3

        with translate_errors("resourcemanager.folders.list", parent):
            client = self._gapic(
                "folders", resourcemanager_v3.FoldersClient, self.endpoints.resourcemanager
            )
            pager = client.list_folders(
                request={"parent": parent, "page_size": self.page_size},
                retry=self.retry("resourcemanager.folders.list"),
                timeout=self.attempt_timeout(),
            )
            for folder in pager:
                yield self._to_dict(folder)

    def get_project(self, project: str) -> dict[str, Any]:
        """``projects.get`` (gives the parent for the audit-config walk)."""
        from google.cloud import resourcemanager_v3

        with translate_errors("resourcemanager.projects.get", f"projects/{project}"):
            client = self._gapic(
                "projects", resourcemanager_v3.ProjectsClient, self.endpoints.resourcemanager
            )
            return self._to_dict(
                client.get_project(
                    name=f"projects/{project}",
                    retry=self.retry("resourcemanager.projects.get"),
                    timeout=self.attempt_timeout(),
                )
            )

    def get_folder(self, name: str) -> dict[str, Any]:
        """``folders.get`` for ``folders/N``."""
        from google.cloud import resourcemanager_v3

        with translate_errors("resourcemanager.folders.get", name):
            client = self._gapic(
                "folders", resourcemanager_v3.FoldersClient, self.endpoints.resourcemanager
            )
            return self._to_dict(
                client.get_folder(
                    name=name,
                    retry=self.retry("resourcemanager.folders.get"),
                    timeout=self.attempt_timeout(),
                )
            )

    def get_iam_policy(self, resource: str) -> dict[str, Any]:
        """IAM policy (with ``auditConfigs``) of a project, folder or organization."""
        from google.cloud import resourcemanager_v3

        kind = resource.split("/", 1)[0]
        classes = {
            "projects": ("projects", resourcemanager_v3.ProjectsClient),
            "folders": ("folders", resourcemanager_v3.FoldersClient),
            "organizations": ("organizations", resourcemanager_v3.OrganizationsClient),
        }
        name, cls = classes[kind]
        with translate_errors(f"resourcemanager.{kind}.getIamPolicy", resource):
            client = self._gapic(name, cls, self.endpoints.resourcemanager)
            policy = client.get_iam_policy(
                request={"resource": resource, "options": {"requested_policy_version": 3}},
                retry=self.retry(f"resourcemanager.{kind}.getIamPolicy"),
                timeout=self.attempt_timeout(),
            )
            return self._to_dict(policy)

    # -- Compute --------------------------------------------------------------------------------

    def aggregated_instances(self, project: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(scope, InstancesScopedList dict)`` over all zones, every page."""
        from google.cloud import compute_v1

        with translate_errors("compute.instances.aggregatedList", f"projects/{project}"):
            client = self._gapic("instances", compute_v1.InstancesClient, self.endpoints.compute)
            pager = client.aggregated_list(
                request={
                    "project": project,
                    "max_results": min(self.page_size, 500),
                },
                retry=self.retry("compute.instances.aggregatedList"),
                timeout=self.attempt_timeout(),
            )
            for scope, scoped in pager:
                yield scope, self._to_dict(scoped)

    def machine_type(self, project: str, zone: str, machine_type: str) -> dict[str, Any]:
        """``machineTypes.get``, cached per (project, zone, type); a type still missing after
        the retries is remembered as missing (no second round for the next instance)."""
        from google.cloud import compute_v1

        key = (project, zone, machine_type)
        if key in self._machine_type_errors:
            raise self._machine_type_errors[key]
        if key not in self._machine_types:
            target = f"projects/{project}/zones/{zone}/machineTypes/{machine_type}"
            try:
                with translate_errors("compute.machineTypes.get", target):
                    client = self._gapic(
                        "machine_types", compute_v1.MachineTypesClient, self.endpoints.compute
                    )
                    self._machine_types[key] = self._to_dict(
                        client.get(
                            project=project,
                            zone=zone,
                            machine_type=machine_type,
                            retry=self.retry("compute.machineTypes.get", listed=True),
                            timeout=self.attempt_timeout(),
                        )
                    )
            except SourceError as exc:
                if isinstance(exc.__cause__, gexc.NotFound):  # still missing after the retries
                    self._machine_type_errors[key] = exc
                raise
        return self._machine_types[key]

    # -- Cloud TPU ------------------------------------------------------------------------------

    def tpu_nodes(self, project: str) -> Iterator[dict[str, Any]]:
        """TPU VM nodes in every location of ``project``."""
        from google.cloud import tpu_v2

        parent = f"projects/{project}/locations/-"
        with translate_errors("tpu.nodes.list", parent):
            client = self._gapic("tpu", tpu_v2.TpuClient, self.endpoints.tpu)
            pager = client.list_nodes(
                request={"parent": parent, "page_size": self.page_size},
                retry=self.retry("tpu.nodes.list"),
                timeout=self.attempt_timeout(),
            )
            for node in pager:
                yield self._to_dict(node)

    # -- Logging --------------------------------------------------------------------------------

    def _logging(self, project: str) -> Any:
        import google.cloud.logging

        return self._client(
            "logging",
            lambda: google.cloud.logging.Client(  # type: ignore[no-untyped-call]
                project=project,
                credentials=self._credentials(),
                client_options=self._options(self.endpoints.logging),
                _use_grpc=False,
            ),
        )

    def list_entries(
        self, project: str, *, filter_: str, permission: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of raw ``LogEntry`` dicts, oldest first (timestamp, then insertId)."""
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{project}"],
            "filter": filter_,
            "orderBy": "timestamp asc",
            "pageSize": self.page_size,
        }
        with translate_errors("logging.entries.list", f"projects/{project}", permission=permission):
            connection = self._logging(project)._connection
            while True:
                response = self._call(
                    lambda: connection.api_request(
                        method="POST", path="/entries:list", data=dict(body), timeout=self.timeout
                    ),
                    operation="logging.entries.list",
                )
                entries = response.get("entries") or []
                log.debug("gcp_log_page", project=project, entries=len(entries))
                yield entries
                token = response.get("nextPageToken")
                if not token:
                    return
                body["pageToken"] = token
