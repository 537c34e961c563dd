"""AWS error codes -> ``agent.errors`` with remediation hints (no SDK import: the client
module hands over the code, message, status and IAM action of a failed call)."""

from __future__ import annotations

from agent.errors import (
    ProviderAuthError,
    ProviderPermissionError,
    ProviderUnavailable,
    SourceError,
)

__all__ = ["AUTH_HINT", "EXPIRED_CODES", "AwsNotFound", "ObjectTooLarge", "classify"]

PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "Client.UnauthorizedOperation",
        "UnauthorizedAccess",
        "AWSOrganizationsNotInUseException",
    }
)
AUTH_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "RequestExpired",
        "NoCredentialsError",
    }
)
# Answers to a request signed with credentials that expired in flight: an assumed-role client
# re-assumes its role once and retries the request (see ``_refresh_on_expiry``).
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
OPT_IN_CODES = frozenset({"OptInRequired", "AuthFailure"})
NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "ResourceNotFoundException"})
UNAVAILABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "Unavailable",
    }
)
AUTH_HINT = (
    "refresh the credentials (aws sso login / aws sts get-caller-identity) or set "
    "AWS_PROFILE / the source's profile"
)


class AwsNotFound(SourceError):
    """A bucket, key or log group that does not exist."""

    code = "not_found"


class ObjectTooLarge(SourceError):
    """An S3 object over the size limit of its reader; it is not downloaded."""

    code = "too_large"


def classify(
    *, code: str, message: str, status: int, scope: str, permission: str | None
) -> SourceError:
    """The error of a failed call answered with AWS error ``code`` and HTTP ``status``;
    ``permission`` is the IAM action the call needs (for the hint)."""
    text = f"{scope}: {code}: {message}"
    if code in PERMISSION_CODES or code.startswith("AccessDenied"):
        hint = f"grant {permission} to the audit role or user" if permission else None
        return ProviderPermissionError(text, permission=permission, hint=hint)
    if code in AUTH_CODES:
        return ProviderAuthError(text, hint=AUTH_HINT)
    if code in OPT_IN_CODES:
        return ProviderPermissionError(
            text,
            permission=permission,
            hint="the region may not be enabled for this account: opt in (Account > AWS "
            "Regions) or drop it from the source's regions list",
        )
    if code in NOT_FOUND_CODES:
        return AwsNotFound(text, hint="check the bucket / log group name and its region")
    if code in UNAVAILABLE_CODES or status >= 500:
        return ProviderUnavailable(
            f"{text} (after retries)",
            hint="retry later, or set retry_mode: adaptive / a higher max_attempts",
        )
    return SourceError(text, hint="see the AWS error code above")
