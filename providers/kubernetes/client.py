"""The only module that imports the ``kubernetes`` SDK: connects, pages lists, translates errors.

Lists are fetched with ``_preload_content=False`` so callers get the wire JSON (the same shape
``kubectl get -o json`` prints) and ``normalize.py`` stays pure. Pagination follows the
``continue`` token; a 410 (token expired) restarts the list once, skipping items already seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog
import urllib3
from kubernetes.client import ApiClient, Configuration, CoreV1Api  # type: ignore[import-untyped]
from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped]
from kubernetes.config import (  # type: ignore[import-untyped]
    load_incluster_config,
    load_kube_config,
)

from agent.errors import (
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)

__all__ = ["KubeClient", "KubeConnection"]

log = structlog.get_logger(__name__)

_RBAC_HINT = (
    "bind a ClusterRole allowing get/list on nodes and pods to the audit identity "
    "(see docs/kubernetes.md, 'RBAC')"
)


@dataclass(frozen=True)
class KubeConnection:
    """How to reach the API server: explicit host+token, in-cluster, or a kubeconfig."""

    host: str | None = None
    token: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    verify_ssl: bool | None = None
    ca_cert: Path | None = None
    timeout_seconds: float = 30.0
    retries: int = 3

    @property
    def label(self) -> str:
        if self.host:
            return self.host
        if self.in_cluster:
            return "in-cluster"
        return (
            f"kubeconfig {self.kubeconfig or '~/.kube/config'} context {self.context or 'current'}"
        )


def _status_message(exc: ApiException) -> str:
    body = exc.body
    try:
        data = json.loads(body) if body else None
    except (TypeError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(exc.reason or "no reason given")


def _translate(exc: ApiException, *, what: str, where: str) -> SourceError:
    message = f"kubernetes API {where}: {what} failed with {exc.status}: {_status_message(exc)}"
    if exc.status == 401:
        return ProviderAuthError(
            message, hint="refresh the kubeconfig credentials or the configured token"
        )
    if exc.status == 403:
        return ProviderPermissionError(message, permission=what, hint=_RBAC_HINT)
    if exc.status in (0, 429) or (exc.status or 0) >= 500:
        return ProviderUnavailable(message, hint="retry later; check the API server's health")
    return SourceError(message, hint="check that `host`/the kubeconfig points at an API server")


class KubeClient:
    """Thin facade over ``CoreV1Api``: ``list_nodes()`` and ``list_pods()`` yield wire dicts."""

    def __init__(self, *, connection: KubeConnection, page_size: int = 500) -> None:
        self.connection = connection
        self.page_size = page_size
        self._api_client: ApiClient | None = None
        self._core: CoreV1Api | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        if self._api_client is not None:
            self._api_client.close()
        self._api_client = self._core = None

    def _configuration(self) -> Configuration:
        conn = self.connection
        cfg = Configuration()
        try:
            if conn.host:
                cfg.host = conn.host.rstrip("/")
                if conn.token:
                    cfg.api_key = {"authorization": conn.token}
                    cfg.api_key_prefix = {"authorization": "Bearer"}
            elif conn.in_cluster:
                load_incluster_config(client_configuration=cfg)
            else:
                load_kube_config(
                    config_file=str(conn.kubeconfig) if conn.kubeconfig else None,
                    context=conn.context,
                    client_configuration=cfg,
                    persist_config=False,
                )
        # The kubeconfig loader raises ConfigException, OSError, YAML and Key errors alike.
        except Exception as exc:
            raise ProviderAuthError(
                f"cannot load Kubernetes credentials ({conn.label}): {exc}",
                hint="check kubeconfig/context, or run in a pod with a service account "
                "(in_cluster: true)",
            ) from exc
        if conn.verify_ssl is not None:
            cfg.verify_ssl = conn.verify_ssl
        if conn.ca_cert is not None:
            cfg.ssl_ca_cert = str(conn.ca_cert)
        cfg.retries = conn.retries
        return cfg

    def _api(self) -> CoreV1Api:
        if self._core is None:
            self._api_client = ApiClient(self._configuration())
            self._api_client.user_agent = "chipwarden (kubernetes-python)"
            self._core = CoreV1Api(self._api_client)
        return self._core

    def list_nodes(self) -> Iterator[dict[str, Any]]:
        """Every v1 Node as wire JSON."""
        api = self._api()
        yield from self._paged(api.list_node, what="list nodes")

    def list_pods(self) -> Iterator[dict[str, Any]]:
        """Every scheduled v1 Pod in all namespaces as wire JSON."""
        api = self._api()
        yield from self._paged(
            api.list_pod_for_all_namespaces,
            what="list pods",
            field_selector="spec.nodeName!=",
        )

    def _page(self, op: Callable[..., Any], *, what: str, token: str | None, **kw: Any) -> Any:
        timeout = (min(10.0, self.connection.timeout_seconds), self.connection.timeout_seconds)
        try:
            resp = op(
                limit=self.page_size,
                _continue=token,
                _preload_content=False,
                _request_timeout=timeout,
                **kw,
            )
            try:
                return json.loads(resp.data)
            finally:
                resp.release_conn()
        except ApiException as exc:
            if exc.status == 410 and token:
                raise
            raise _translate(exc, what=what, where=self.connection.label) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ProviderUnavailable(
                f"cannot reach the kubernetes API ({self.connection.label}): {exc}",
                hint="check the host/kubeconfig server URL and network access",
            ) from exc
        except ValueError as exc:
            raise ProviderUnavailable(
                f"kubernetes API ({self.connection.label}) returned non-JSON for {what}: {exc}"
            ) from exc

    def _paged(self, op: Callable[..., Any], *, what: str, **kw: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        restarted = False
        seen: set[str] = set()
        pages = 0
        while True:
            try:
                page = self._page(op, what=what, token=token, **kw)
            except ApiException as exc:  # only 410 Gone with a token reaches here
                if restarted:
                    raise _translate(exc, what=what, where=self.connection.label) from exc
                log.warning("k8s_list_restarted", what=what, pages=pages, reason="410 Gone")
                token, restarted = None, True
                continue
            pages += 1
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise ProviderUnavailable(f"kubernetes API returned no items list for {what}")
            for item in page["items"]:
                uid = ((item.get("metadata") or {}).get("uid")) if isinstance(item, dict) else None
                if uid:
                    if uid in seen:
                        continue
                    seen.add(uid)
                yield item
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return
