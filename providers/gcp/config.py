"""Validated configuration of a ``type: gcp`` source (unknown keys are errors)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ALL_STREAMS", "DEFAULT_ADMIN_PORTS", "Endpoints", "GcpSourceConfig", "RetrySettings"]

StreamName = Literal["iap", "oslogin", "serial-port", "ssh-keys", "gke", "vpc-flows"]
ALL_STREAMS: tuple[StreamName, ...] = (
    "iap",
    "oslogin",
    "serial-port",
    "ssh-keys",
    "gke",
    "vpc-flows",
)
DEFAULT_ADMIN_PORTS: tuple[int, ...] = (22, 3389, 5900, 8888)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Endpoints(_Strict):
    """API base URLs; ``None`` means Google's public endpoint (set these only for testing)."""

    compute: str | None = None
    logging: str | None = None
    resourcemanager: str | None = None
    tpu: str | None = None


class RetrySettings(_Strict):
    """Exponential back-off (with jitter, at least the server's Retry-After) for transient
    errors (429, 5xx, timeouts, dropped or truncated answers), bounded by ``attempts`` tries
    and ``deadline`` seconds per call."""

    initial: float = Field(default=0.5, gt=0)
    maximum: float = Field(default=10.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1)
    deadline: float = Field(default=60.0, gt=0)
    attempts: int = Field(default=8, ge=1, le=100)


class GcpSourceConfig(_Strict):
    """``sources: [{type: gcp, ...}]``: give exactly one of projects, organization, folder."""

    type: Literal["gcp"] = "gcp"
    name: str | None = None
    projects: list[str] | None = None
    organization: str | None = None
    folder: str | None = None
    recursive: bool = True
    tpu: bool = False
    admin_ports: list[int] = Field(default_factory=lambda: list(DEFAULT_ADMIN_PORTS))
    streams: list[StreamName] = Field(default_factory=lambda: list(ALL_STREAMS))
    endpoints: Endpoints = Field(default_factory=Endpoints)
    credentials: Literal["default", "anonymous"] = "default"
    page_size: int = Field(default=500, ge=1, le=1000)
    batch_size: int = Field(default=1000, ge=1)
    retry: RetrySettings | None = Field(default_factory=RetrySettings)
    timeout: float = Field(default=60.0, gt=0)
    ingestion_delay_seconds: int = Field(default=120, ge=0)
    data_access_check: bool = True

    @field_validator("organization", "folder")
    @classmethod
    def _numeric_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = str(value).strip()
        for prefix in ("organizations/", "folders/"):
            value = value.removeprefix(prefix)
        if not value.isdigit():
            raise ValueError('must be the numeric id, e.g. "123456789012"')
        return value

    @field_validator("admin_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [p for p in value if not 0 < p < 65536]
        if bad:
            raise ValueError(f"ports must be 1-65535, got {bad}")
        return sorted(set(value))

    @field_validator("streams")
    @classmethod
    def _unique_streams(cls, value: list[StreamName]) -> list[StreamName]:
        return list(dict.fromkeys(value))

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("list at least one project id")
        return list(dict.fromkeys(value)) if value else value

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        given = [k for k in ("projects", "organization", "folder") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'projects', 'organization' or 'folder'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self
