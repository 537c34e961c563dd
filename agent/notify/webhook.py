"""Generic JSON webhook notifier (``https://host/path`` or ``webhook+https://...``)."""

from __future__ import annotations

from typing import Any, Self

import httpx

from agent.errors import ProviderUnavailable
from agent.notify.base import Notification, check_http_url, redact_url

__all__ = ["WebhookNotifier", "post_json"]


def post_json(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    """POST ``body``; any transport error or non-2xx answer raises ``ProviderUnavailable``."""
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"cannot reach {redact_url(url)}: {type(exc).__name__}",
            hint="check the notifier URL and that the receiver is up",
        ) from exc
    if response.status_code >= 300:
        raise ProviderUnavailable(
            f"{redact_url(url)} answered HTTP {response.status_code}",
            hint="check the receiver's logs; the delivery is retried on the next run",
        )
    return response


class WebhookNotifier:
    """POSTs the notification payload as JSON."""

    kind = "webhook"

    def __init__(self, url: str, *, timeout: float = 10.0, client: httpx.Client | None = None):
        self._url = check_http_url(url)
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``https://...`` (options: ``timeout``, ``http_client``)."""
        return cls(
            url, timeout=float(options.get("timeout", 10.0)), client=options.get("http_client")
        )

    def body(self, notification: Notification) -> dict[str, Any]:
        """``{"subject", "text", ...payload}``."""
        body: dict[str, Any] = {"subject": notification.subject, "text": notification.text}
        body.update(notification.payload)
        return body

    def send(self, notification: Notification) -> None:
        """POST the body as JSON."""
        post_json(self._client, self._url, self.body(notification))
