"""KQL sent to Log Analytics. The time range is the API's ``timespan`` (on TimeGenerated), so the
text carries no dates and the same query is reused on every run."""

from __future__ import annotations

from providers.azure.logs import BASTION_TABLE, VM_SIGN_IN_APPS

__all__ = ["bastion_query", "signin_query"]

_BASTION_COLUMNS = (
    "TimeGenerated, Time, SessionStartTime, SessionEndTime, Duration, ClientIpAddress, "
    "ClientPort, UserName, UserEmail, UserAgent, Protocol, TargetResourceId, TargetVMIPAddress, "
    "TunnelId, Message, OperationName, ResourceType, _ResourceId"
)
_SIGNIN_COLUMNS = (
    "TimeGenerated, CreatedDateTime, Id, CorrelationId, UserPrincipalName, UserId, UserType, "
    "IPAddress, Location, LocationDetails, AppId, AppDisplayName, ResourceIdentity, "
    "ResourceDisplayName, ResultType, ResultDescription, Status, ClientAppUsed, DeviceDetail, "
    "UserAgent, SignInTable"
)


def bastion_query() -> str:
    """Every Bastion audit row (resource-specific table) in the timespan, oldest first."""
    return f"{BASTION_TABLE}\n| project {_BASTION_COLUMNS}\n| order by TimeGenerated asc"


def signin_query() -> str:
    """Interactive and non-interactive sign-ins to (or through) the VM sign-in applications."""
    ids = ", ".join(f'"{app}"' for app in sorted(VM_SIGN_IN_APPS))
    return (
        "union isfuzzy=true withsource=SignInTable SigninLogs, AADNonInteractiveUserSignInLogs\n"
        f"| where AppId in~ ({ids}) or ResourceIdentity in~ ({ids})\n"
        f"| project {_SIGNIN_COLUMNS}\n"
        "| order by TimeGenerated asc"
    )
