"""Config keys of the aws and vpc-flow-files sources, and the IAM list in docs/aws.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agent import registry
from agent.contracts import SourceEnv
from agent.errors import ConfigError
from providers.aws.flowlogs import VpcFlowFilesSource
from providers.aws.iam import FEATURE_ACTIONS, IAM_ACTIONS, iam_action
from providers.aws.provider import AwsSource

from .conftest import NOW

DOCS = Path(__file__).resolve().parents[3] / "docs" / "aws.md"
ENV = SourceEnv(name="aws-org", base_dir=Path("/"), clock=lambda: NOW)


def build(raw: dict[str, Any]) -> AwsSource:
    return AwsSource.from_config({"type": "aws", **raw}, env=ENV)


def test_an_organization_config_validates_and_normalises_the_prefix() -> None:
    source = build(
        {
            "organization": True,
            "assume_role": "audit/ChipwardenAudit",
            "external_id": "chipwarden-prod",
            "max_workers": 16,
            "cloudtrail": {
                "bucket": "acme-org-trail",
                "prefix": "/cloudtrail/",
                "organization_id": "o-a1b2c3d4e5",
            },
            "flow_logs": {
                "log_group": "vpc-flows",
                "format": "${version} ${srcaddr} ${dstport} ${start} ${action}",
            },
        }
    )
    assert source.config.cloudtrail is not None and source.config.cloudtrail.prefix == "cloudtrail"
    assert source.config.flow_logs is not None
    assert source.config.flow_logs.layout_fields()[:2] == ("version", "srcaddr")
    assert source.client.client("sts")._client_config.max_pool_connections == 16


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"organization": True, "accounts": ["123456789012"]}, "not both"),
        ({"accounts": ["12345"]}, r"accounts\[0\]"),
        ({"external_id": "xid-1"}, "external_id needs assume_role"),
        ({"assume_role": "bad role"}, "assume_role"),
        ({"max_workers": 0}, "max_workers"),
        ({"cloudtrail": {"bucket": "bkt", "log_group": "g"}}, "exactly one of bucket or log_group"),
        ({"cloudtrail": {}}, "exactly one of bucket or log_group"),
        ({"cloudtrail": {"log_group": "g", "prefix": "p"}}, "bucket only"),
        ({"cloudtrail": {"bucket": "bkt", "organization_id": "org-1"}}, "organization_id"),
        ({"flow_logs": {"bucket": "bkt", "fields": ["srcaddr", "nope"]}}, "unknown flow-log field"),
        ({"trail_bucket": "b"}, "trail_bucket: unknown key"),
    ],
)
def test_invalid_keys_are_config_errors_naming_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(raw)


def test_the_flow_files_source_is_registered_under_its_type() -> None:
    cls = registry.sources.load("vpc-flow-files")
    assert cls is VpcFlowFilesSource
    source = cls.from_config({"type": "vpc-flow-files", "paths": ["x/*.log"]}, env=ENV)
    assert source.config.paths == ["/x/*.log"]  # relative to the config folder


def test_every_permission_error_names_a_documented_iam_action() -> None:
    text = DOCS.read_text()
    for action in {*IAM_ACTIONS.values(), *(a for acts in FEATURE_ACTIONS.values() for a in acts)}:
        assert f"`{action}`" in text, action
    assert iam_action("ListObjectsV2", "s3") == "s3:ListBucket"
    assert iam_action("PutObject", "s3") == "s3:PutObject" and iam_action(None, "s3") is None


def test_the_documented_policies_are_valid_json_and_read_only() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) == 3
    actions: set[str] = set()
    for block in blocks:
        for statement in json.loads(block)["Statement"]:
            listed = statement["Action"]
            actions.update([listed] if isinstance(listed, str) else listed)
    read_only = re.compile(r"^[a-z0-9]+:(Describe|List|Get|Lookup|Filter|AssumeRole)")
    assert actions and all(read_only.match(a) for a in actions), actions
    assert actions >= {a for a in IAM_ACTIONS.values() if a != "sts:GetCallerIdentity"}
