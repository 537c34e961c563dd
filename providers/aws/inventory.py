"""EC2 inventory of one account x region: DescribeInstances joined with DescribeInstanceTypes
(GpuInfo / NeuronInfo / InferenceAcceleratorInfo, cached per region across accounts), with
the bundled catalog as the fallback when the live call is denied or a type is unknown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from agent.contracts import CollectContext, InstanceTypeCatalog
from agent.errors import RecordError, SourceError
from agent.models import Accelerator, GpuInstance, ScopeError
from providers.aws.normalize import accelerators_from_type_info, instance_from_ec2
from providers.aws.scope import AccountScope, scope_error

__all__ = ["read_inventory"]

log = structlog.get_logger(__name__)


def read_inventory(
    ctx: CollectContext,
    *,
    scope: AccountScope,
    region: str,
    catalog: InstanceTypeCatalog,
    source: str,
) -> list[GpuInstance]:
    """Every pending/running/stopping/stopped instance of one account/region, with its
    accelerators; a failure is a ScopeError on ``ctx`` (and an empty list)."""
    account = scope.account
    try:
        raw = list(scope.client.describe_instances(region))
    except SourceError as exc:
        ctx.scope_error(
            scope_error(
                exc, source=source, scope=f"{account}/{region}", what="EC2 DescribeInstances"
            )
        )
        return []
    types = {str(i.get("InstanceType")) for i in raw if i.get("InstanceType")}
    accelerators = _accelerators(ctx, scope, region, types, catalog, source)
    out: list[GpuInstance] = []
    for position, item in enumerate(raw):
        try:
            out.append(
                instance_from_ec2(
                    item,
                    account=account,
                    region=region,
                    accelerators=accelerators.get(str(item.get("InstanceType"))),
                )
            )
        except RecordError as exc:
            ctx.quarantine(
                source=source,
                locator=f"ec2:DescribeInstances {account}/{region}",
                position=f"instance {position}",
                reason=exc.message,
            )
    log.info(
        "aws_inventory_region",
        source=source,
        account=account,
        region=region,
        instances=len(out),
        gpu_instances=sum(1 for i in out if i.has_accelerators),
    )
    return out


def _accelerators(
    ctx: CollectContext,
    scope: AccountScope,
    region: str,
    types: set[str],
    catalog: InstanceTypeCatalog,
    source: str,
) -> dict[str, tuple[Accelerator, ...]]:
    live: Mapping[str, Mapping[str, Any]] = {}
    try:
        live = scope.client.instance_type_info(region, types)
    except SourceError as exc:
        log.warning("aws_instance_types_fallback", source=source, region=region, error=exc.message)
    out: dict[str, tuple[Accelerator, ...]] = {}
    for name in sorted(types):
        found: tuple[Accelerator, ...] | None = None
        if name in live:
            try:
                found = accelerators_from_type_info(live[name])
            except RecordError as exc:
                log.warning("aws_instance_type_malformed", instance_type=name, error=exc.message)
        if found is None:
            found = catalog.accelerators(name)
        if found is None:
            where = f"{scope.account}/{region}"
            ctx.scope_error(
                ScopeError(
                    source=source,
                    scope=f"{where}/{name}",
                    code="unknown_instance_type",
                    message=f"accelerators of instance type {name} in {where} are unknown "
                    "(not described by EC2 and not in the offline catalog)",
                    remediation="grant ec2:DescribeInstanceTypes, or regenerate the catalog: "
                    "python -m providers.aws.data.generate_instance_types",
                    permission="ec2:DescribeInstanceTypes",
                )
            )
            found = ()
        out[name] = found
    return out
