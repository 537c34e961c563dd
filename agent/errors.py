"""One exception tree for chipwarden; operator-facing errors carry a remediation hint.

    ChipwardenError                 base; ``code`` is stable, ``hint`` says what to do
    ├── UsageError                  exit 2: bad command line or arguments
    │   ├── ConfigError             config file / env: names the file and key path
    │   └── PolicyError             policy pack: names the file and line
    ├── PluginError                 exit 2: a registry name that does not resolve
    ├── SourceError                 a source could not be read (becomes a ScopeError)
    │   ├── ProviderAuthError       credentials missing or expired
    │   ├── ProviderPermissionError AccessDenied and friends: names the permission
    │   └── ProviderUnavailable     throttled past the retry budget, 5xx, network
    ├── RecordError                 one record is malformed (quarantined, never fatal)
    └── StoreError                  the finding store cannot be opened or written

Providers translate SDK exceptions into this tree inside their ``client.py`` so nothing above
them ever sees a botocore/google/azure exception type.
"""

from __future__ import annotations

__all__ = [
    "ChipwardenError",
    "ConfigError",
    "PluginError",
    "PolicyError",
    "ProviderAuthError",
    "ProviderPermissionError",
    "ProviderUnavailable",
    "RecordError",
    "SourceError",
    "StoreError",
    "UsageError",
]


class ChipwardenError(Exception):
    """Base of every error chipwarden raises on purpose."""

    code = "chipwarden_error"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(ChipwardenError):
    """The command line, config or a policy is wrong; the audit did not start."""

    code = "usage_error"
    exit_code = 2


class ConfigError(UsageError):
    """Config file or environment is invalid; ``location`` is ``file:key.path``."""

    code = "config_error"

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None):
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


class PolicyError(UsageError):
    """A policy pack is invalid; every problem names ``file:line``."""

    code = "policy_error"

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        super().__init__("\n".join(problems), hint=hint)
        self.problems = problems


class PluginError(UsageError):
    """A registry name (source type, engine) does not resolve to an installed plug-in."""

    code = "plugin_error"


class SourceError(ChipwardenError):
    """A source (account, region, file) could not be read; recorded as a ScopeError."""

    code = "source_error"


class ProviderAuthError(SourceError):
    """Credentials are missing, invalid or expired."""

    code = "auth_error"


class ProviderPermissionError(SourceError):
    """The principal lacks a permission; ``permission`` names the IAM action if known."""

    code = "permission_denied"

    def __init__(self, message: str, *, permission: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.permission = permission


class ProviderUnavailable(SourceError):
    """Throttled past the retry budget, a 5xx, a timeout or a network failure."""

    code = "unavailable"


class RecordError(ChipwardenError):
    """One input record is malformed; it is quarantined with its position, never fatal."""

    code = "bad_record"


class StoreError(ChipwardenError):
    """The finding store cannot be opened, migrated or written."""

    code = "store_error"
