"""The read-only IAM actions the AWS source uses, per API operation and per feature (pure data).

``client.py`` names the action in permission errors; ``docs/aws.md`` lists them per feature
(a test keeps the two in step).
"""

from __future__ import annotations

__all__ = ["FEATURE_ACTIONS", "IAM_ACTIONS", "iam_action"]

IAM_ACTIONS: dict[str, str] = {
    "GetCallerIdentity": "sts:GetCallerIdentity",
    "AssumeRole": "sts:AssumeRole",
    "ListAccounts": "organizations:ListAccounts",
    "DescribeRegions": "ec2:DescribeRegions",
    "DescribeInstances": "ec2:DescribeInstances",
    "DescribeInstanceTypes": "ec2:DescribeInstanceTypes",
    "LookupEvents": "cloudtrail:LookupEvents",
    "ListObjectsV2": "s3:ListBucket",
    "GetObject": "s3:GetObject",
    "FilterLogEvents": "logs:FilterLogEvents",
    "DescribeSessions": "ssm:DescribeSessions",
}
"""API operation -> the IAM action it needs (S3 ListObjectsV2 is authorised as s3:ListBucket)."""

FEATURE_ACTIONS: dict[str, tuple[str, ...]] = {
    "scope (every run)": ("sts:GetCallerIdentity", "ec2:DescribeRegions"),
    "organization: true (management or delegated-admin account)": ("organizations:ListAccounts",),
    "assume_role (caller side)": ("sts:AssumeRole",),
    "inventory (member role)": ("ec2:DescribeInstances", "ec2:DescribeInstanceTypes"),
    "cloudtrail: {bucket} (caller, on the trail bucket)": ("s3:ListBucket", "s3:GetObject"),
    "cloudtrail: {log_group} (caller)": ("logs:FilterLogEvents",),
    "LookupEvents fallback (member role)": ("cloudtrail:LookupEvents",),
    "Session Manager end times (member role)": ("ssm:DescribeSessions",),
    "flow_logs: {bucket} (caller, on the flow-log bucket)": ("s3:ListBucket", "s3:GetObject"),
    "flow_logs: {log_group} (member role)": ("logs:FilterLogEvents",),
}
"""Feature -> the read-only actions it needs (docs/aws.md mirrors this table)."""


def iam_action(operation: str | None, service: str | None) -> str | None:
    """The IAM action behind an API operation (``service:Operation`` when not listed)."""
    if operation is None:
        return None
    return IAM_ACTIONS.get(operation) or (f"{service}:{operation}" if service else None)
