"""Config models of the ``aws`` and ``vpc-flow-files`` sources (validated strictly).

Every key is documented in docs/aws.md. A typo in a region, account id or flow-log field name
fails the config with the key path, not the audit at run time.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from agent.config import ResolvedGlob
from providers.aws.flowparse import DEFAULT_FIELDS, KNOWN_FIELDS, FlowLayout, fields_from_format

__all__ = [
    "DEFAULT_ADMIN_PORTS",
    "REGION_PATTERN",
    "AwsSourceConfig",
    "CloudTrailSpec",
    "FlowLogsSpec",
    "FlowOptions",
    "VpcFlowFilesConfig",
]

REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d+$"
"""us-east-1, us-gov-west-1, cn-north-1, ap-southeast-4: a typo fails config, not at runtime."""

DEFAULT_ADMIN_PORTS = (22, 3389, 5900, 8888)
"""SSH, RDP, VNC and Jupyter: inbound flows to these ports on a GPU instance are sessions."""

Region = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _clean_prefix(prefix: str) -> str:
    """``/trail/`` -> ``trail``: the part of the key before ``AWSLogs/``."""
    return prefix.strip("/")


Prefix = Annotated[str, AfterValidator(_clean_prefix)]


class CloudTrailSpec(_Strict):
    """Where the trail is read from: an S3 bucket (``bucket``) or a CloudWatch Logs group."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    prefix: Prefix = ""
    organization_id: Annotated[str, StringConstraints(pattern=r"^o-[a-z0-9]{10,32}$")] | None = None
    log_group: str | None = Field(default=None, min_length=1, max_length=512)
    region: Region | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.bucket is None) == (self.log_group is None):
            raise ValueError("set exactly one of bucket or log_group")
        if self.log_group and (self.prefix or self.organization_id):
            raise ValueError("prefix and organization_id apply to bucket only")
        return self


class FlowOptions(_Strict):
    """Which flow records are sessions: accepted inbound to ``admin_ports`` of a GPU instance,
    folded per (source IP, instance, port) until a pause longer than ``gap_minutes``."""

    admin_ports: list[Port] = Field(default_factory=lambda: list(DEFAULT_ADMIN_PORTS), min_length=1)
    gap_minutes: int = Field(default=30, ge=1, le=1440)
    fields: list[str] | None = Field(default=None, min_length=2)
    format: str | None = None

    @model_validator(mode="after")
    def _known_fields(self) -> Self:
        if self.fields is not None and self.format is not None:
            raise ValueError("set fields or format, not both")
        names = self.fields if self.fields is not None else None
        if self.format is not None:
            names = list(fields_from_format(self.format))
        if names is not None:
            unknown = [n for n in names if n not in KNOWN_FIELDS]
            if unknown:
                raise ValueError(f"unknown flow-log field(s): {', '.join(unknown)}")
            missing = FlowLayout(tuple(names)).missing
            if missing:
                raise ValueError(f"the field list lacks {', '.join(missing)}")
        return self

    def layout_fields(self) -> tuple[str, ...]:
        """The configured field order (default v2), used when a file has no header line."""
        if self.format is not None:
            return fields_from_format(self.format)
        return tuple(self.fields) if self.fields is not None else DEFAULT_FIELDS


class FlowLogsSpec(FlowOptions):
    """VPC flow logs of the ``aws`` source: an S3 bucket or a log group in each account."""

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    prefix: Prefix = ""
    log_group: str | None = Field(default=None, min_length=1, max_length=512)
    region: Region | None = None

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.bucket is None) == (self.log_group is None):
            raise ValueError("set exactly one of bucket or log_group")
        if self.log_group and self.prefix:
            raise ValueError("prefix applies to bucket only")
        return self


class AwsSourceConfig(_Strict):
    """``type: aws``. ``regions: null`` = every region enabled in each account; no
    ``accounts`` / ``organization`` = the credentials' own account."""

    type: Literal["aws"]
    regions: list[Region] | None = Field(default=None, min_length=1)
    profile: str | None = None
    endpoint_url: str | None = None
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)
    connect_timeout_seconds: float = Field(default=10, gt=0, le=300)
    read_timeout_seconds: float = Field(default=60, gt=0, le=900)
    object_attempts: int = Field(default=4, ge=1, le=10)
    """Downloads of one S3 object (trail or flow-log file) before its unit fails."""
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    """First wait between object downloads; doubles per attempt, with jitter."""
    accounts: list[AccountId] | None = Field(default=None, min_length=1)
    organization: bool = False
    assume_role: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+=,.@/-]+$", max_length=512)] | None
    ) = None
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    role_session_name: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9_+=,.@-]+$", min_length=2, max_length=64)
    ] = "chipwarden-audit"
    max_workers: int = Field(default=8, ge=1, le=64)
    cloudtrail: CloudTrailSpec | None = None
    flow_logs: FlowLogsSpec | None = None
    ssm_history: bool = True
    max_catchup_days: int = Field(default=14, ge=1, le=90)

    @model_validator(mode="after")
    def _scope(self) -> Self:
        if self.accounts is not None and self.organization:
            raise ValueError("set accounts or organization: true, not both")
        if self.external_id and not self.assume_role:
            raise ValueError("external_id needs assume_role")
        return self


class VpcFlowFilesConfig(FlowOptions):
    """``type: vpc-flow-files``: exported flow-log files (plain or gzip), mapped to instances
    through the run's inventory (live sources or the static CSV's private_ips / enis)."""

    type: Literal["vpc-flow-files"]
    paths: list[ResolvedGlob] = Field(min_length=1)
