"""Config model of the ``azure`` source (``extra="forbid"``: unknown keys are errors)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from agent.config import ResolvedPath

__all__ = [
    "DEFAULT_ADMIN_PORTS",
    "STREAMS",
    "AzureConfig",
    "BlobLocation",
    "Endpoints",
    "Stream",
]

Stream = Literal["bastion", "sign-in", "activity", "flow"]
STREAMS: tuple[Stream, ...] = ("bastion", "sign-in", "activity", "flow")
DEFAULT_ADMIN_PORTS = (22, 3389, 5900, 8888)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _guid(value: str) -> str:
    if not _GUID.match(value.strip()):
        raise ValueError(f"{value!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    return value.strip().lower()


def _https_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ValueError(f"{value!r} must be an https:// URL (Azure bearer tokens need TLS)")
    return value.rstrip("/")


def _listify(value: object) -> object:
    return [value] if isinstance(value, dict) else value


Guid = Annotated[str, AfterValidator(_guid)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BlobLocation(_Strict):
    """Where diagnostic settings write JSON blobs: account URL, container and name prefix."""

    account_url: HttpsUrl
    container: str = Field(min_length=3, max_length=63)
    prefix: str = ""


class Endpoints(_Strict):
    """Override service URLs (sovereign clouds, or a local fake in tests).

    ``blob`` replaces scheme and host of every storage ``account_url`` and keeps the account
    name as the first path segment (path-style, as Azurite does).
    """

    arm: HttpsUrl | None = None
    logs: HttpsUrl | None = None
    blob: HttpsUrl | None = None


class AzureConfig(_Strict):
    """One ``type: azure`` entry under ``sources:``."""

    type: Literal["azure"] = "azure"
    name: str | None = None
    subscriptions: list[Guid] | None = Field(
        default=None, description="subscription ids; default: every Enabled one visible"
    )
    workspace_id: Guid | None = Field(default=None, description="Log Analytics workspace id")
    bastion_blobs: BlobLocation | None = None
    flow_logs: Annotated[list[BlobLocation], BeforeValidator(_listify)] = Field(
        default_factory=list,
        description="one location or a list (NSG and VNet flow logs use different containers)",
    )
    admin_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: list(DEFAULT_ADMIN_PORTS), min_length=1
    )
    flow_gap_minutes: float = Field(default=15, gt=0, le=24 * 60)
    streams: list[Stream] = Field(default_factory=lambda: list(STREAMS), min_length=1)
    overlap_minutes: float = Field(
        default=10,
        ge=0,
        le=24 * 60,
        description="re-read this much before a Log Analytics / Activity Log checkpoint "
        "(late ingestion); sessions have stable keys so re-reads are idempotent",
    )
    endpoints: Endpoints = Field(default_factory=Endpoints)
    ca_bundle: ResolvedPath | None = None
    credentials: Literal["default", "static-token"] = "default"
    token: SecretStr | None = None
    retry_total: int = Field(
        default=3,
        ge=0,
        le=10,
        description="retries of one request: 429 / ServerBusy, 5xx, timeouts, dropped "
        "connections, an expired token, a listed blob answering 404 or cut short",
    )
    retry_backoff_factor: float = Field(
        default=0.8, ge=0, le=30, description="seconds; waits grow x2 per retry (cap 120 s)"
    )
    timeout_seconds: float = Field(
        default=60, gt=0, le=600, description="connect and read timeout of each request"
    )
    log_query_timeout_seconds: int = Field(default=180, ge=1, le=600)

    @model_validator(mode="after")
    def _check(self) -> AzureConfig:
        if self.token is not None and self.credentials != "static-token":
            raise ValueError("token is only used with credentials: static-token")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError("streams lists a stream twice")
        return self

    def wants(self, stream: Stream) -> bool:
        """Whether ``stream`` is enabled (it may still lack its location, e.g. no workspace)."""
        return stream in self.streams
