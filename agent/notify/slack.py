"""Slack incoming-webhook notifier (``slack://hooks.slack.com/services/T/B/X``)."""

from __future__ import annotations

from typing import Any

from agent.notify.base import Notification
from agent.notify.webhook import WebhookNotifier

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


class SlackNotifier(WebhookNotifier):
    """Posts a short summary with one block per finding
    (``slack://hooks.slack.com/...``; ``slack+http://`` only for loopback)."""

    kind = "slack"

    def body(self, notification: Notification) -> dict[str, Any]:
        """The Slack incoming-webhook body."""
        return slack_body(notification)
