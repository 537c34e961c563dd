"""Live AWS source: GPU inventory and remote-access sessions across accounts and regions.

Scope: the caller's account, a list, or the whole Organization (``scope.py``), fanned out over
account x region with bounded concurrency (``fanout.py``). Sessions come from the org trail
in S3, a CloudWatch Logs group or LookupEvents (``trails.py``), plus VPC flow logs
(``flows.py``). Every account/region that fails becomes a ``ScopeError`` and the rest goes
on: an AccessDenied must never read as "no sessions".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Self

import structlog
from pydantic import BaseModel, ValidationError

from agent.config import format_validation_error
from agent.contracts import Clock, CollectContext, InstanceTypeCatalog, SessionBatch, SourceEnv
from agent.errors import ConfigError, SourceError
from agent.models import GpuInstance, ScopeError, Session, ensure_utc
from providers.aws.catalog import AwsInstanceCatalog
from providers.aws.client import AwsClient, CallerIdentity
from providers.aws.console import LoginIndex, is_console_started, login_from_session
from providers.aws.fanout import Unit, fan_out, to_batches
from providers.aws.fixups import fill_ssm_ends, release_console_sessions
from providers.aws.flows import FlowReader, flow_bucket_scope, read_flow_bucket, read_flow_log_group
from providers.aws.flowsessions import TargetIndex, aggregate_hits
from providers.aws.inventory import read_inventory
from providers.aws.joins import resolve_tunnel_targets
from providers.aws.scope import AccountScope, resolve_scope, scope_error
from providers.aws.settings import REGION_PATTERN, AwsSourceConfig
from providers.aws.trails import (
    TrailOutput,
    bucket_scopes,
    read_log_group,
    read_lookup_events,
    read_trail_bucket,
)
from providers.aws.windows import CHECKPOINT_OVERLAP, plan_days

__all__ = ["CHECKPOINT_OVERLAP", "REGION_PATTERN", "AwsSource", "AwsSourceConfig"]

log = structlog.get_logger(__name__)

Tagged = list[tuple[str | None, Session]]


@dataclass
class _Run:
    """State of one collection run (one ``CollectContext``)."""

    ctx: CollectContext
    caller: CallerIdentity | None = None
    scopes: list[AccountScope] | None = None
    inventory: list[GpuInstance] | None = None
    blind: set[tuple[str, str]] = field(default_factory=set)
    """(account, region) whose inventory failed: their sessions are judged without their
    instances, so those units commit no checkpoint and the next run judges them again."""


@dataclass
class _Plan:
    """What one account/region unit reads, with the checkpoints read for it up front."""

    scope: AccountScope
    region: str
    trail_days: list[date] = field(default_factory=list)
    flow_days: list[date] = field(default_factory=list)
    saved: dict[str, str] = field(default_factory=dict)


@dataclass
class _Result:
    """What one unit produced."""

    sessions: Tagged
    batches: list[SessionBatch]
    objects: int = 0
    failed: bool = False


class AwsSource:
    """Inventory and session source for AWS accounts (one, a list, or an Organization)."""

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
        self._run: _Run | None = None

    @classmethod
    def from_config(cls, config: Any, *, env: SourceEnv) -> Self:
        """Build from a validated ``AwsSourceConfig`` or a raw mapping."""
        if not isinstance(config, AwsSourceConfig):
            try:
                config = AwsSourceConfig.model_validate(config, context={"base_dir": env.base_dir})
            except ValidationError as exc:
                problems = format_validation_error(exc, name=f"source {env.name}", lines=None)
                raise ConfigError("\n".join(problems), hint="see docs/aws.md") from exc
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
                connect_timeout=self.config.connect_timeout_seconds,
                read_timeout=self.config.read_timeout_seconds,
                object_attempts=self.config.object_attempts,
                retry_backoff=self.config.retry_backoff_seconds,
                max_pool_connections=max(10, self.config.max_workers),
            )
        return self._client

    # ------------------------------------------------------------------ scope

    def _state(self, ctx: CollectContext) -> _Run:
        if self._run is None or self._run.ctx is not ctx:
            self._run = _Run(ctx=ctx)
        return self._run

    def _scopes(self, run: _Run) -> list[AccountScope]:
        if run.scopes is None:
            try:
                client = self.client
            except SourceError as exc:
                label = f"aws:{self.config.profile or 'default'}"
                run.ctx.scope_error(
                    scope_error(exc, source=self.name, scope=label, what="opening the session")
                )
                run.scopes = []
                return run.scopes
            run.caller, run.scopes = resolve_scope(
                config=self.config, client=client, ctx=run.ctx, source=self.name
            )
        return run.scopes

    def _fan_out(self, units: Sequence[Unit[Any]], ctx: CollectContext) -> Iterator[Any]:
        for _, result in fan_out(
            units, ctx=ctx, max_workers=self.config.max_workers, source=self.name
        ):
            yield result

    # ------------------------------------------------------------------ inventory

    def inventory(self, ctx: CollectContext) -> Iterator[GpuInstance]:
        """Every pending/running/stopping/stopped instance of every account and region, with
        its accelerators (collected once per run)."""
        run = self._state(ctx)
        if run.inventory is None:
            units = [
                Unit(
                    label=f"{scope.account}/{region}",
                    run=partial(
                        _inventory_unit,
                        scope=scope,
                        region=region,
                        catalog=self.catalog,
                        source=self.name,
                    ),
                )
                for scope in self._scopes(run)
                for region in scope.regions
            ]
            run.inventory = []
            for unit, found in fan_out(
                units, ctx=ctx, max_workers=self.config.max_workers, source=self.name
            ):
                if found is None or found.failed:
                    account, region = unit.label.split("/", 1)
                    run.blind.add((account, region))
                run.inventory += found.instances if found else ()
        return iter(list(run.inventory))

    # ------------------------------------------------------------------ sessions

    def sessions(self, ctx: CollectContext) -> Iterator[SessionBatch]:
        """Batches per account/region (one per day read from S3), each with its checkpoint.
        Units with console-started sessions are held until every ConsoleLogin of the run is
        known, then released with the client IP attributed."""
        run = self._state(ctx)
        scopes = self._scopes(run)
        if run.caller is None:
            return
        now = ensure_utc(ctx.clock())
        targets = ctx.inventory or tuple(run.inventory or ())
        if not targets and self.config.flow_logs is not None and run.inventory is None:
            targets = tuple(self.inventory(ctx))
        indexes = (TargetIndex(targets, gpu_only=False), TargetIndex(targets))
        gpu_units = frozenset(
            (i.account, i.region) for i in targets if i.provider == "aws" and i.has_accelerators
        )
        units: list[Unit[_Result]] = [
            Unit(
                label=f"{p.scope.account}/{p.region}",
                run=partial(
                    self._unit,
                    plan=p,
                    now=now,
                    indexes=indexes,
                    gpu_units=gpu_units,
                    blind=(p.scope.account, p.region) in run.blind,
                ),
            )
            for p in self._plans(ctx, scopes, now)
            if self._has_unit_work
        ]
        spec = self.config.cloudtrail
        if spec is not None and spec.log_group:
            saved = ctx.checkpoint(f"aws:cloudtrail-logs:{spec.log_group}")
            units.append(
                Unit(
                    label=f"logs:{spec.log_group}",
                    run=partial(
                        self._log_group_unit,
                        scopes=scopes,
                        now=now,
                        index=indexes[0],
                        saved=saved,
                        blind=bool(run.blind),
                    ),
                )
            )
        held: list[_Result] = []
        logins = LoginIndex()
        objects = 0
        failed = False
        for result in self._fan_out(units, ctx):
            if result is None:
                failed = True
                continue
            objects += result.objects
            failed = failed or result.failed
            for _, session in result.sessions:
                login = login_from_session(session)
                if login is not None:
                    logins.add(login)
            if any(is_console_started(s) for _, s in result.sessions):
                held.append(result)
            else:
                yield from result.batches
        yield from release_console_sessions(ctx, [r.batches for r in held], logins)
        self._check_trail_objects(ctx, scopes, objects=objects, failed=failed)

    @property
    def _has_unit_work(self) -> bool:
        """Whether account/region units read anything (not with a log-group trail alone)."""
        trail = self.config.cloudtrail
        return trail is None or bool(trail.bucket) or self.config.flow_logs is not None

    def _plans(self, ctx: CollectContext, scopes: list[AccountScope], now: datetime) -> list[_Plan]:
        """One plan per account/region; checkpoints are read here, in the calling thread."""
        trail, flows = self.config.cloudtrail, self.config.flow_logs
        plans = []
        for scope in scopes:
            for region in scope.regions:
                plan = _Plan(scope=scope, region=region)
                if trail is not None and trail.bucket:
                    base = bucket_scopes(trail, scope.account, region)
                    plan.trail_days = self._days(ctx, base, now, plan.saved)
                elif trail is None:
                    lookup = f"aws:{scope.account}:{region}:lookup-events"
                    _read(ctx, lookup, plan.saved)
                if flows is not None and flows.bucket:
                    base = flow_bucket_scope(flows, scope.account, region)
                    plan.flow_days = self._days(ctx, base, now, plan.saved)
                elif flows is not None:
                    _read(
                        ctx,
                        f"aws:flowlogs-logs:{scope.account}:{region}:{flows.log_group}",
                        plan.saved,
                    )
                plans.append(plan)
        return plans

    def _days(
        self, ctx: CollectContext, base: str, now: datetime, saved: dict[str, str]
    ) -> list[date]:
        marker = _read(ctx, base, saved)
        days = plan_days(
            window=ctx.window,
            now=now,
            marker=marker,
            max_catchup_days=self.config.max_catchup_days,
        )
        for day in days:
            _read(ctx, f"{base}:{day.isoformat()}", saved)
        return days

    def _unit(
        self,
        local: CollectContext,
        *,
        plan: _Plan,
        now: datetime,
        indexes: tuple[TargetIndex, TargetIndex],
        gpu_units: frozenset[tuple[str, str | None]],
        blind: bool = False,
    ) -> _Result:
        """One account/region: trail records, SSM end times, tunnel targets and flow logs."""
        scope, region, account = plan.scope, plan.region, plan.scope.account
        trail_spec, flow_spec = self.config.cloudtrail, self.config.flow_logs
        output: TrailOutput | None = None
        if trail_spec is not None and trail_spec.bucket:
            output = read_trail_bucket(
                local,
                client=self.client,
                spec=trail_spec,
                account=account,
                region=region,
                days=plan.trail_days,
                saved=plan.saved,
                now=now,
                source=self.name,
            )
        elif trail_spec is None:
            output = read_lookup_events(
                local,
                client=scope.client,
                account=account,
                region=region,
                saved=plan.saved.get(f"aws:{account}:{region}:lookup-events"),
                now=now,
                source=self.name,
            )
        tagged: Tagged = output.collector.tagged() if output else []
        checkpoints = list(output.checkpoints) if output else []
        tagged = self._fix(local, tagged, {account: scope.client}, indexes[0])
        objects, failed = (output.objects, output.failed) if output else (0, False)
        if flow_spec is not None:
            reader = FlowReader(options=flow_spec, index=indexes[1], source=self.name)
            if flow_spec.bucket:
                flows = read_flow_bucket(
                    local,
                    reader,
                    client=self.client,
                    spec=flow_spec,
                    account=account,
                    region=region,
                    days=plan.flow_days,
                    saved=plan.saved,
                    now=now,
                )
            else:
                group_scope = f"aws:flowlogs-logs:{account}:{region}:{flow_spec.log_group}"
                flows = read_flow_log_group(
                    local,
                    reader,
                    client=scope.client,
                    spec=flow_spec,
                    account=account,
                    region=region,
                    now=now,
                    has_gpus=(account, region) in gpu_units,
                    saved=plan.saved.get(group_scope),
                )
            flow_sessions, merged = aggregate_hits(
                flows.hits, gap=timedelta(minutes=flow_spec.gap_minutes), source=self.name
            )
            local.count_ignored(merged)
            tagged += flow_sessions
            checkpoints += flows.checkpoints
            failed = failed or flows.failed
        if blind:  # judged without this account/region's instances: judge again next run
            checkpoints = []
        batches = to_batches(f"aws:{account}/{region}", tagged, checkpoints)
        log.info(
            "aws_unit_read",
            source=self.name,
            account=account,
            region=region,
            read=local.read,
            sessions=len(tagged),
            objects=objects,
            checkpoints=len(checkpoints),
            failed=failed,
        )
        return _Result(sessions=tagged, batches=batches, objects=objects, failed=failed)

    def _log_group_unit(
        self,
        local: CollectContext,
        *,
        scopes: list[AccountScope],
        now: datetime,
        index: TargetIndex,
        saved: str | None,
        blind: bool = False,
    ) -> _Result:
        """The trail's CloudWatch Logs group (all accounts in one group); no checkpoint when
        some account's inventory failed (``blind``)."""
        spec = self.config.cloudtrail
        assert spec is not None and spec.log_group is not None  # noqa: S101 - type narrowing for mypy; not a runtime check
        output = read_log_group(
            local,
            client=self.client,
            spec=spec,
            saved=saved,
            now=now,
            source=self.name,
            accounts=frozenset(s.account for s in scopes),
            regions=frozenset(self.config.regions) if self.config.regions else None,
        )
        tagged = self._fix(
            local, output.collector.tagged(), {s.account: s.client for s in scopes}, index
        )
        checkpoints = [] if blind else output.checkpoints
        batches = to_batches(f"aws:logs:{spec.log_group}", tagged, checkpoints)
        return _Result(
            sessions=tagged, batches=batches, objects=output.objects, failed=output.failed
        )

    def _fix(
        self,
        local: CollectContext,
        tagged: Tagged,
        clients: Mapping[str, AwsClient],
        index: TargetIndex,
    ) -> Tagged:
        """OpenTunnel targets from the inventory, SSM end times from DescribeSessions."""
        tagged = resolve_tunnel_targets(tagged, index)
        if not self.config.ssm_history:
            return tagged
        return fill_ssm_ends(local, tagged, clients=clients, source=self.name)

    def _check_trail_objects(
        self, ctx: CollectContext, scopes: list[AccountScope], *, objects: int, failed: bool
    ) -> None:
        """A trail bucket that yields no object at all (and never did) is a misconfiguration,
        not a quiet organisation: report it instead of an empty audit."""
        spec = self.config.cloudtrail
        if spec is None or not spec.bucket or objects or failed or not scopes:
            return
        if any(
            ctx.checkpoint(bucket_scopes(spec, s.account, r)) for s in scopes for r in s.regions
        ):
            return
        org = f"{spec.organization_id}/" if spec.organization_id else ""
        where = f"s3://{spec.bucket}/{spec.prefix + '/' if spec.prefix else ''}AWSLogs/{org}"
        ctx.scope_error(
            ScopeError(
                source=self.name,
                scope=where,
                code="no_objects",
                message=f"no CloudTrail object under {where}<account>/CloudTrail/<region>/ for "
                f"{len(scopes)} account(s) in the audit window",
                remediation="check bucket, prefix (the part before AWSLogs/) and organization_id "
                "(needed for an organization trail)",
            )
        )


def _read(ctx: CollectContext, scope: str, saved: dict[str, str]) -> str | None:
    value = ctx.checkpoint(scope)
    if value is not None:
        saved[scope] = value
    return value


@dataclass(frozen=True)
class _Found:
    """One account/region's instances, and whether listing them failed."""

    instances: list[GpuInstance]
    failed: bool


def _inventory_unit(
    local: CollectContext,
    *,
    scope: AccountScope,
    region: str,
    catalog: InstanceTypeCatalog,
    source: str,
) -> _Found:
    errors = len(local.scope_errors)
    found = read_inventory(local, scope=scope, region=region, catalog=catalog, source=source)
    return _Found(found, failed=len(local.scope_errors) > errors)
