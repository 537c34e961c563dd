"""Slack incoming-webhook notifier (``slack://hooks.slack.com/services/T/B/X``)."""

from __future__ import annotations

from typing import Any, Self

import httpx

from agent.notify.base import Notification, check_http_url
from agent.notify.webhook import post_json

__all__ = ["SlackNotifier", "slack_body"]

MAX_BLOCKS = 20


def slack_body(notification: Notification) -> dict[str, Any]:
    """Incoming-webhook JSON: a text fallback plus one section block per finding."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notification.subject[:150]}},
    ]
    for item in notification.payload.get("findings", [])[:MAX_BLOCKS]:
        session = item.get("session", {})
        ip = item.get("ip", {})
        line = (
            f"*{item.get('severity', '?').upper()}* {item.get('title', '')}\n"
            f"{session.get('source_ip') or '-'} ({ip.get('country') or ip.get('kind')}) -> "
            f"{session.get('instance_id') or '-'} by {session.get('principal') or '-'} "
            f"via {session.get('method')} · `{item.get('id')}`"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line[:3000]}})
    return {"text": notification.text, "blocks": blocks}


class SlackNotifier:
    """Posts a short summary with one block per finding."""

    kind = "slack"

    def __init__(self, url: str, *, timeout: float = 10.0, client: httpx.Client | None = None):
        self._url = check_http_url(url)
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``slack://hooks.slack.com/...`` (``slack+http://`` only for loopback)."""
        return cls(
            url, timeout=float(options.get("timeout", 10.0)), client=options.get("http_client")
        )

    def send(self, notification: Notification) -> None:
        """POST the Slack body."""
        post_json(self._client, self._url, slack_body(notification))
