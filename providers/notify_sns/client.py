"""``SnsNotifier``: publishes chipwarden notifications to an SNS topic (the only boto3 user
of this plug-in). Selected by ``sns://arn:aws:sns:<region>:<account>:<topic>``."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from agent.errors import ConfigError, ProviderPermissionError, ProviderUnavailable

__all__ = ["SnsNotifier", "parse_topic_arn"]

_ARN = re.compile(r"^arn:(aws[a-z-]*):sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_.-]{1,256})$")
_DENIED = {"AuthorizationError", "AccessDenied", "AccessDeniedException", "KMSAccessDenied"}
MAX_MESSAGE_BYTES = 256 * 1024


class _Notification(Protocol):
    subject: str
    text: str
    payload: dict[str, Any]


def parse_topic_arn(url: str) -> tuple[str, str]:
    """``(topic ARN, region)`` from ``sns://<ARN>``; ``ConfigError`` if it is not one."""
    arn = url.split("://", 1)[1] if "://" in url else url
    match = _ARN.match(arn)
    if not match:
        raise ConfigError(
            f"{url!r} is not sns://<topic ARN>",
            hint="e.g. sns://arn:aws:sns:us-east-1:111122223333:chipwarden-findings",
        )
    return arn, match.group(2)


class SnsNotifier:
    """Publishes the JSON payload (subject <= 100 characters) to one topic."""

    kind = "sns"

    def __init__(self, url: str, *, client: Any | None = None) -> None:
        self.topic_arn, region = parse_topic_arn(url)
        self._client = client or boto3.client(
            "sns",
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 2}),
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build from ``sns://<topic ARN>`` (option ``client`` for an injected SNS client)."""
        return cls(url, client=options.get("sns_client"))

    def send(self, notification: _Notification) -> None:
        """Publish; AWS errors become ``ProviderPermissionError`` / ``ProviderUnavailable``."""
        body: dict[str, Any] = {"subject": notification.subject, "text": notification.text}
        body.update(notification.payload)
        message = json.dumps(body, separators=(",", ":"), default=str)
        if len(message.encode()) > MAX_MESSAGE_BYTES:
            body["findings"] = [{"id": f.get("id")} for f in body.get("findings", [])]
            body["truncated"] = True
            message = json.dumps(body, separators=(",", ":"), default=str)
        try:
            self._client.publish(
                TopicArn=self.topic_arn,
                Subject=notification.subject[:100],
                Message=message,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _DENIED:
                raise ProviderPermissionError(
                    f"SNS publish to {self.topic_arn} denied ({code})",
                    permission="sns:Publish",
                    hint="allow sns:Publish on the topic for chipwarden's role",
                ) from exc
            raise ProviderUnavailable(
                f"SNS publish to {self.topic_arn} failed ({code or 'error'})",
                hint="retried on the next run",
            ) from exc
        except BotoCoreError as exc:
            raise ProviderUnavailable(
                f"SNS publish to {self.topic_arn} failed: {type(exc).__name__}",
                hint="check network access to SNS and the AWS credentials",
            ) from exc
