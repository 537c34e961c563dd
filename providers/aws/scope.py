"""Which accounts and regions the ``aws`` source covers, and a client for each account.

Accounts: the credentials' own account, an explicit list, or every ACTIVE account of the
Organization (ListAccounts; suspended and closing ones are skipped). With ``assume_role`` every
account, the caller's own included, is read through STS AssumeRole of that role (refreshable
credentials), so the caller itself needs only the organization, bucket and AssumeRole
permissions; without it only the caller's account can be read. Regions: the configured list,
or every region enabled in that account (DescribeRegions). A failing account becomes a
ScopeError; the rest go on.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from agent.contracts import CollectContext
from agent.errors import ProviderPermissionError, SourceError
from agent.models import ScopeError
from providers.aws.client import AwsClient, CallerIdentity
from providers.aws.fanout import Unit, fan_out
from providers.aws.settings import AwsSourceConfig

__all__ = ["AccountScope", "resolve_scope", "scope_error"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AccountScope:
    """One account in scope: its client and the regions to read."""

    account: str
    client: AwsClient
    regions: tuple[str, ...]
    role_arn: str | None = None


def scope_error(
    exc: SourceError,
    *,
    source: str,
    scope: str,
    what: str,
    permission: str | None = None,
    remediation: str | None = None,
) -> ScopeError:
    """A ScopeError for ``exc`` while doing ``what`` on ``scope`` (account/region)."""
    if permission is None and isinstance(exc, ProviderPermissionError):
        permission = exc.permission
    log.warning("aws_scope_error", source=source, scope=scope, code=exc.code, permission=permission)
    return ScopeError(
        source=source,
        scope=scope,
        code=exc.code,
        message=f"{what} failed: {exc.message}",
        remediation=remediation or exc.hint,
        permission=permission,
    )


def _accounts(
    config: AwsSourceConfig,
    client: AwsClient,
    caller: CallerIdentity,
    ctx: CollectContext,
    source: str,
) -> list[str]:
    if config.accounts:
        return list(dict.fromkeys(config.accounts))
    if not config.organization:
        return [caller.account]
    try:
        listed = client.organization_accounts()
    except SourceError as exc:
        ctx.scope_error(
            scope_error(exc, source=source, scope="organization", what="listing the accounts")
        )
        return []
    active = []
    for item in listed:
        status = str(item.get("Status") or item.get("State") or "")
        if status.upper() == "ACTIVE":
            active.append(str(item["Id"]))
        else:
            log.info("aws_account_skipped", source=source, account=item.get("Id"), status=status)
    return sorted(active)


def _open_account(
    local: CollectContext,
    *,
    account: str,
    config: AwsSourceConfig,
    client: AwsClient,
    caller: CallerIdentity,
    source: str,
) -> AccountScope | None:
    role_arn = None
    account_client = client
    if config.assume_role or account != caller.account:
        if not config.assume_role:
            local.scope_error(
                ScopeError(
                    source=source,
                    scope=account,
                    code="no_role",
                    message=f"account {account} is not the caller's ({caller.account}) and no "
                    "assume_role is configured",
                    remediation="set assume_role: <RoleName> (a read-only role in every member "
                    "account that trusts this principal); see docs/aws.md",
                    permission="sts:AssumeRole",
                )
            )
            return None
        role_arn = f"arn:{caller.partition}:iam::{account}:role/{config.assume_role}"
        try:
            account_client = client.assume_role(
                role_arn=role_arn,
                account=account,
                session_name=config.role_session_name,
                external_id=config.external_id,
            )
        except SourceError as exc:
            trust = " with the configured external id" if config.external_id else ""
            hint = (
                f"allow sts:AssumeRole on {role_arn} for {caller.arn}, and make the role's "
                f"trust policy trust that principal{trust}"
                if isinstance(exc, ProviderPermissionError)
                else exc.hint
            )
            local.scope_error(
                scope_error(
                    exc,
                    source=source,
                    scope=account,
                    what=f"AssumeRole into {role_arn}",
                    permission="sts:AssumeRole",
                    remediation=hint,
                )
            )
            return None
    if config.regions:
        regions = tuple(config.regions)
    else:
        try:
            regions = tuple(account_client.enabled_regions())
        except SourceError as exc:
            local.scope_error(
                scope_error(
                    exc, source=source, scope=f"{account}/*", what="listing enabled regions"
                )
            )
            return None
    return AccountScope(account=account, client=account_client, regions=regions, role_arn=role_arn)


def resolve_scope(
    *, config: AwsSourceConfig, client: AwsClient, ctx: CollectContext, source: str
) -> tuple[CallerIdentity | None, list[AccountScope]]:
    """The caller and every reachable account with its regions; failures go to ``ctx``."""
    label = f"aws:{config.profile or 'default'}"
    try:
        caller = client.caller_identity()
    except SourceError as exc:
        ctx.scope_error(
            scope_error(exc, source=source, scope=label, what="identifying the AWS account")
        )
        return None, []
    accounts = _accounts(config, client, caller, ctx, source)
    units = [
        Unit(
            label=account,
            run=lambda local, account=account: _open_account(  # type: ignore[misc]
                local, account=account, config=config, client=client, caller=caller, source=source
            ),
        )
        for account in accounts
    ]
    scopes = [
        result
        for _, result in fan_out(units, ctx=ctx, max_workers=config.max_workers, source=source)
        if result is not None
    ]
    log.info(
        "aws_scope_resolved",
        source=source,
        caller=caller.account,
        accounts=len(scopes),
        failed=len(accounts) - len(scopes),
        units=sum(len(s.regions) for s in scopes),
    )
    return caller, scopes
