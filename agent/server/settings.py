"""``ServerSettings``: the review service's settings from ``CHIPWARDEN_*`` environment
variables (pydantic-settings), built once at the edge and passed to ``create_app``."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.models import Severity

__all__ = ["ServerSettings"]


class ServerSettings(BaseSettings):
    """Everything ``chipwarden serve`` needs besides the audit config file.

    ``token_pepper`` keys the stored token hashes (the CLI's ``token create`` must use the same
    value). ``session_secret`` signs console cookies; by default it is derived from the pepper.
    CORS is off unless ``cors_origins`` lists origins. ``auth_failure_*`` / ``auth_lockout_*``
    rate-limit failed authentications per client address (``trusted_proxies``: whose
    ``X-Forwarded-For`` to believe; see agent/server/ratelimit.py).
    """

    model_config = SettingsConfigDict(env_prefix="CHIPWARDEN_", extra="ignore", frozen=True)

    config: Path | None = Field(
        default=None, description="audit config YAML (policies, geo, inventory)"
    )
    store: str | None = Field(default=None, description="store URL; overrides the config's 'store'")
    token_pepper: SecretStr | None = None
    session_secret: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_ingest_bytes: int = Field(default=8_388_608, ge=1024)
    exception_max_days: int = Field(default=90, ge=1, le=3650)
    deny_severity: Severity = Severity.HIGH
    cors_origins: list[str] = Field(default_factory=list)
    cookie_secure: bool = True
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    live_inventory: bool = False
    expiry_sweep_seconds: float = Field(default=60.0, ge=0)
    token_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    auth_failure_limit: int = Field(
        default=10, ge=0, description="failed authentications per client before a lockout (0: off)"
    )
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    auth_lockout_seconds: float = Field(default=60.0, gt=0, le=86_400)
    auth_limiter_max_clients: int = Field(default=10_000, ge=100, le=10_000_000)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of reverse proxies whose X-Forwarded-For names the client",
    )
    log_format: str = "json"
    log_level: str = "info"

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {value!r} is not an address or CIDR") from exc
        return values

    def pepper(self) -> str | None:
        """The token pepper as text, or ``None`` when unset."""
        return self.token_pepper.get_secret_value() if self.token_pepper else None

    def cookie_key(self) -> str:
        """Secret for signing console cookies (explicit, or derived from the pepper)."""
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        pepper = self.pepper() or ""
        return hmac.new(pepper.encode(), b"chipwarden-console-session", hashlib.sha256).hexdigest()
