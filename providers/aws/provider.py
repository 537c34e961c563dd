"""Live AWS source: EC2 inventory (with accelerators) and CloudTrail LookupEvents sessions.

Every account/region that fails becomes a ``ScopeError`` on the context and the rest goes on:
an AccessDenied must never read as "no sessions".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agent.config import format_validation_error
from agent.contracts import Clock, CollectContext, InstanceTypeCatalog, SessionBatch, SourceEnv
from agent.errors import ConfigError, ProviderPermissionError, RecordError, SourceError
from agent.models import Accelerator, GpuInstance, ScopeError, ensure_utc
from providers.aws.catalog import AwsInstanceCatalog
from providers.aws.client import AwsClient
from providers.aws.collect import RecordCollector
from providers.aws.normalize import (
    SESSION_EVENT_SOURCES,
    accelerators_from_type_info,
    instance_from_ec2,
)

__all__ = ["CHECKPOINT_OVERLAP", "REGION_PATTERN", "AwsSource", "AwsSourceConfig"]

log = structlog.get_logger(__name__)

REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d+$"
"""us-east-1, us-gov-west-1, cn-north-1, ap-southeast-4: a typo fails config, not at runtime."""

CHECKPOINT_OVERLAP = timedelta(minutes=15)
"""Re-read this much before a checkpoint: CloudTrail may surface events minutes late, and
re-reading is harmless (sessions are keyed by eventID)."""


class AwsSourceConfig(BaseModel):
    """``type: aws`` source entry. ``regions: null`` means every region enabled for the account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["aws"]
    regions: list[Annotated[str, StringConstraints(pattern=REGION_PATTERN)]] | None = Field(
        default=None, min_length=1
    )
    profile: str | None = None
    endpoint_url: str | None = None
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(default=5, ge=1, le=20)


class AwsSource:
    """Inventory and session source for one AWS account (the credentials' account)."""

    Config: ClassVar[type[BaseModel]] = AwsSourceConfig

    def __init__(
        self,
        *,
        name: str,
        config: AwsSourceConfig,
        clock: Clock,
        client: AwsClient | None = None,
        catalog: InstanceTypeCatalog | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self._client = client
        self.catalog: InstanceTypeCatalog = catalog or AwsInstanceCatalog()

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated ``AwsSourceConfig`` or a raw mapping."""
        if not isinstance(config, AwsSourceConfig):
            try:
                config = AwsSourceConfig.model_validate(config, context={"base_dir": env.base_dir})
            except ValidationError as exc:
                problems = format_validation_error(exc, name=f"source {env.name}", lines=None)
                raise ConfigError("\n".join(problems), hint="see the aws source keys") from exc
        return cls(name=env.name, config=config, clock=env.clock)

    @property
    def client(self) -> AwsClient:
        """The injected client, or one built from the config on first use."""
        if self._client is None:
            self._client = AwsClient(
                profile=self.config.profile,
                endpoint_url=self.config.endpoint_url,
                retry_mode=self.config.retry_mode,
                max_attempts=self.config.max_attempts,
            )
        return self._client

    # ------------------------------------------------------------------ scope

    def _report(self, ctx: CollectContext, exc: SourceError, *, scope: str, what: str) -> None:
        permission = exc.permission if isinstance(exc, ProviderPermissionError) else None
        ctx.scope_error(
            ScopeError(
                source=self.name,
                scope=scope,
                code=exc.code,
                message=f"{what} failed: {exc.message}",
                remediation=exc.hint,
                permission=permission,
            )
        )
        log.warning(
            "aws_scope_error", source=self.name, scope=scope, code=exc.code, permission=permission
        )

    def _scope(self, ctx: CollectContext) -> tuple[str, list[str]] | None:
        """(account, regions) or ``None`` after reporting why they are unknown."""
        label = f"aws:{self.config.profile or 'default'}"
        try:
            account = self.client.caller_account()
        except SourceError as exc:
            self._report(ctx, exc, scope=label, what="identifying the AWS account")
            return None
        if self.config.regions:
            return account, list(self.config.regions)
        try:
            return account, self.client.enabled_regions()
        except SourceError as exc:
            self._report(ctx, exc, scope=f"{account}/*", what="listing enabled regions")
            return None

    # ------------------------------------------------------------------ inventory

    def inventory(self, ctx: CollectContext) -> Iterator[GpuInstance]:
        """Every pending/running/stopping/stopped instance, with its accelerators."""
        scope = self._scope(ctx)
        if scope is None:
            return
        account, regions = scope
        for region in regions:
            try:
                raw = list(self.client.describe_instances(region))
            except SourceError as exc:
                self._report(ctx, exc, scope=f"{account}/{region}", what="EC2 DescribeInstances")
                continue
            types = {str(i.get("InstanceType")) for i in raw if i.get("InstanceType")}
            accelerators = self._accelerators(ctx, account, region, types)
            for position, item in enumerate(raw):
                try:
                    yield instance_from_ec2(
                        item,
                        account=account,
                        region=region,
                        accelerators=accelerators.get(str(item.get("InstanceType"))),
                    )
                except RecordError as exc:
                    ctx.quarantine(
                        source=self.name,
                        locator=f"ec2:DescribeInstances {account}/{region}",
                        position=f"instance {position}",
                        reason=exc.message,
                    )
            log.info(
                "aws_inventory_region",
                source=self.name,
                account=account,
                region=region,
                instances=len(raw),
            )

    def _accelerators(
        self, ctx: CollectContext, account: str, region: str, types: set[str]
    ) -> dict[str, tuple[Accelerator, ...]]:
        live: Mapping[str, Mapping[str, Any]] = {}
        try:
            live = self.client.instance_type_info(region, types)
        except SourceError as exc:
            log.warning(
                "aws_instance_types_fallback", source=self.name, region=region, error=exc.message
            )
        out: dict[str, tuple[Accelerator, ...]] = {}
        for name in sorted(types):
            found: tuple[Accelerator, ...] | None = None
            if name in live:
                try:
                    found = accelerators_from_type_info(live[name])
                except RecordError as exc:
                    log.warning(
                        "aws_instance_type_malformed", instance_type=name, error=exc.message
                    )
            if found is None:
                found = self.catalog.accelerators(name)
            if found is None:
                ctx.scope_error(
                    ScopeError(
                        source=self.name,
                        scope=f"{account}/{region}/{name}",
                        code="unknown_instance_type",
                        message=f"accelerators of instance type {name} in {account}/{region} are "
                        "unknown (not described by EC2 and not in the offline catalog)",
                        remediation="grant ec2:DescribeInstanceTypes, or regenerate the catalog: "
                        "python -m providers.aws.data.generate_instance_types",
                        permission="ec2:DescribeInstanceTypes",
                    )
                )
                found = ()
            out[name] = found
        return out

    # ------------------------------------------------------------------ sessions

    def _window(
        self, ctx: CollectContext, checkpoint_scope: str
    ) -> tuple[datetime, datetime, datetime | None]:
        """(start, end, saved checkpoint) of the LookupEvents query for one region."""
        now = ensure_utc(ctx.clock())
        window = ctx.window
        lookback = now - timedelta(hours=window.default_lookback_hours)
        if window.explicit:
            since = ensure_utc(window.since) if window.since else lookback
            return since, ensure_utc(window.until) if window.until else now, None
        saved = ctx.checkpoint(checkpoint_scope)
        if saved:
            try:
                floor = ensure_utc(datetime.fromisoformat(saved))
            except ValueError:
                log.warning("aws_checkpoint_invalid", scope=checkpoint_scope, value=saved)
            else:
                return floor - CHECKPOINT_OVERLAP, now, floor
        return lookback, now, None

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """One batch per region from CloudTrail LookupEvents, checkpointed per region."""
        scope = self._scope(ctx)
        if scope is None:
            return
        account, regions = scope
        for region in regions:
            yield self._region_batch(ctx, account, region)

    def _region_batch(self, ctx: CollectContext, account: str, region: str) -> SessionBatch:
        checkpoint_scope = f"aws:{account}:{region}:lookup-events"
        start, end, floor = self._window(ctx, checkpoint_scope)
        unit = f"{account}/{region}"
        collector = RecordCollector(
            ctx=ctx,
            source=self.name,
            locator="cloudtrail:LookupEvents",
            kind="api",
            filter_window=False,
        )
        failed = False
        try:
            records = self.client.lookup_events(
                region, start=start, end=end, event_sources=SESSION_EVENT_SOURCES
            )
            for index, record in enumerate(records):
                collector.add(record, position=f"{unit} event {index}")
        except SourceError as exc:
            failed = True
            self._report(ctx, exc, scope=unit, what="CloudTrail LookupEvents")
        sessions = collector.sessions()
        # A failed region keeps its old checkpoint: what it missed is read again next run.
        newest = collector.newest
        if newest is not None and floor is not None:
            newest = max(newest, floor)  # the overlap never moves a checkpoint back
        checkpoint = None if failed or newest is None else newest.isoformat()
        ctx.on_progress(unit, collector.read)
        log.info(
            "aws_region_sessions",
            source=self.name,
            account=account,
            region=region,
            read=collector.read,
            sessions=len(sessions),
            ignored=collector.ignored,
            quarantined=collector.quarantined,
            failed=failed,
            checkpoint=checkpoint,
        )
        return SessionBatch(
            unit=f"aws:{unit}",
            sessions=sessions,
            checkpoint_scope=checkpoint_scope,
            checkpoint=checkpoint,
        )
