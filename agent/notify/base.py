"""What every notifier receives and how a notifier is chosen from its URL.

A notifier is any class registered under the ``chipwarden.notifiers`` entry-point group with
``from_url(url) -> instance`` and ``send(notification)``; the URL scheme picks it
(``webhook+https``/``https`` -> ``webhook``, ``slack``/``slack+https`` -> ``slack``,
``sns`` -> ``sns``). ``send`` raises on failure; the dispatcher retries and records it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from agent import registry
from agent.errors import ConfigError

__all__ = [
    "Notification",
    "Notifier",
    "check_http_url",
    "load_notifier",
    "notifier_key",
    "notifiers",
    "redact_url",
    "scheme_kind",
]

notifiers = registry.Registry("notifiers")


@dataclass(frozen=True)
class Notification:
    """One message: a subject, a plain-text summary and a JSON payload."""

    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    """Delivers a notification somewhere; raises on failure (retried by the dispatcher)."""

    kind: str

    def send(self, notification: Notification) -> None: ...


def scheme_kind(url: str) -> str:
    """The registry name a notifier URL selects (``https://`` means a plain webhook)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise ConfigError(
            f"notifier URL {redact_url(url)!r} has no scheme",
            hint="use https://..., slack://hooks.slack.com/services/..., or sns://<topic ARN>",
        )
    kind = scheme.split("+", 1)[0]
    return "webhook" if kind in ("http", "https") else kind


def redact_url(url: str) -> str:
    """The URL without path, query or credentials (webhook paths are secrets)."""
    parts = urlsplit(url)
    if parts.scheme == "sns":
        return url
    host = parts.hostname or ""
    return (
        f"{parts.scheme}://{host}/..." if parts.path or parts.query else f"{parts.scheme}://{host}"
    )


def notifier_key(url: str) -> str:
    """Stable id of a target for delivery records: kind plus a hash (never the URL)."""
    return f"{scheme_kind(url)}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def load_notifier(url: str, **options: Any) -> Notifier:
    """Instantiate the registered notifier for ``url``."""
    cls = notifiers.load(scheme_kind(url))
    notifier: Notifier = cls.from_url(url, **options)
    return notifier


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_url(url: str) -> str:
    """The ``http(s)://`` URL inside ``url``; plain http only for loopback hosts."""
    scheme, _, rest = url.partition("://")
    transport = scheme.split("+", 1)[1] if "+" in scheme else scheme
    if transport not in ("http", "https"):
        transport = "https"
    target = f"{transport}://{rest}"
    parts = urlsplit(target)
    if not parts.hostname:
        raise ConfigError(f"notifier URL {redact_url(url)!r} has no host")
    if transport == "http" and not _loopback(parts.hostname):
        raise ConfigError(
            f"notifier URL {redact_url(url)!r} is plain http",
            hint="use https:// (plain http is accepted only for loopback test servers)",
        )
    return target
