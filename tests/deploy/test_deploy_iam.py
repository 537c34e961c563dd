"""The shipped IAM / RBAC policies grant exactly what chipwarden's code calls, read-only.

The provider test suites run once in a subprocess with the traffic recorder on; every call
made from chipwarden's own modules is mapped through deploy/iam/actions_map.yaml and compared
with the policy files. A failure prints what to add to or remove from which file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.iamcheck import (
    ActionsMap,
    check,
    granted,
    load_map,
    load_records,
    path_regex,
)
from tests.deploy.recorder import RECORDING, start_recording

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MAP = DEPLOY / "iam" / "actions_map.yaml"
PROVIDERS = ("aws", "gcp", "azure", "kubernetes")


@pytest.fixture(scope="module")
def amap() -> ActionsMap:
    return load_map(MAP)


@pytest.fixture(scope="module")
def recorded(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The provider tests' calls, from the recorder the root conftest started at collection
    (``tests/deploy/recorder.py``; started here when this module runs on its own)."""
    recording = request.config.stash.get(RECORDING, None) or start_recording()
    request.config.stash[RECORDING] = recording
    code, stdout, stderr = recording.wait()
    tail = "\n".join(stdout.splitlines()[-15:])
    assert code in (0, 1), f"provider tests did not run:\n{tail}\n{stderr[-2000:]}"
    records = load_records(recording.out)
    assert records, f"the recorder wrote nothing to {recording.out}:\n{tail}"
    return records


# -- against the recorded traffic of the provider tests -------------------------------------


def test_the_recorder_sees_calls_from_every_cloud_provider(recorded: list[dict[str, Any]]) -> None:
    seen = {r["provider"] for r in recorded}
    assert set(PROVIDERS) <= seen, f"no recorded calls for {sorted(set(PROVIDERS) - seen)}"
    assert all(r["module"].startswith(("providers.", "agent.")) for r in recorded)


def test_every_recorded_call_has_a_reviewed_row(
    recorded: list[dict[str, Any]], amap: ActionsMap
) -> None:
    report = check(recorded, amap, granted(amap, DEPLOY))
    assert not report.unmapped, "\n".join(report.unmapped)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_policies_grant_exactly_the_permissions_the_code_calls(
    provider: str, recorded: list[dict[str, Any]], amap: ActionsMap
) -> None:
    report = check(recorded, amap, granted(amap, DEPLOY), providers=[provider])
    for note in report.notes:
        print(f"note: {note}")
    assert report.ok, f"\n{report.render()}"


# -- the comparison itself, on synthetic records --------------------------------------------


def _aws(op: str, service: str = "ec2") -> dict[str, Any]:
    return {
        "api": "aws",
        "provider": "aws",
        "module": "providers.aws.client",
        "service": service,
        "operation": op,
    }


def _http(provider: str, method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "api": "http",
        "provider": provider,
        "module": f"providers.{provider}.client",
        "method": method,
        "path": path,
        "query": [],
        "markers": [],
        **extra,
    }


def test_a_permission_missing_from_a_policy_is_reported_with_the_file_to_edit(
    amap: ActionsMap,
) -> None:
    grants = {"aws-member": {"ec2:DescribeInstances"}}
    report = check(
        [_aws("DescribeInstances"), _aws("DescribeRegions")], amap, grants, providers=["aws"]
    )
    assert report.add == [
        "add ec2:DescribeRegions to deploy/iam/aws-member-role.json (needed by ec2:DescribeRegions)"
    ]


def test_a_permission_no_call_needs_is_reported_for_removal(amap: ActionsMap) -> None:
    grants = {"aws-member": {"ec2:DescribeInstances", "ec2:TerminateInstances"}}
    report = check([_aws("DescribeInstances")], amap, grants, providers=["aws"])
    assert "remove ec2:TerminateInstances from deploy/iam/aws-member-role.json" in report.render()
    assert not report.ok


def test_a_grant_without_traffic_is_allowed_with_its_reason_until_it_is_exercised(
    amap: ActionsMap,
) -> None:
    grants = {"gcp": {"resourcemanager.folders.get", "resourcemanager.folders.getIamPolicy"}}
    quiet = check([], amap, grants, providers=["gcp"])
    assert quiet.ok and any("resourcemanager.folders.get " in n for n in quiet.notes)
    busy = check([_http("gcp", "GET", "/v3/folders/123")], amap, grants, providers=["gcp"])
    assert busy.stale and "resourcemanager.folders.get " in busy.stale[0]


def test_a_call_without_a_row_names_the_map_file(amap: ActionsMap) -> None:
    report = check([_aws("RunInstances")], amap, {}, providers=["aws"])
    assert report.unmapped and "deploy/iam/actions_map.yaml" in report.unmapped[0]


def test_http_calls_from_a_provider_package_without_a_section_are_unmapped(
    amap: ActionsMap,
) -> None:
    report = check([_http("notify_webhook", "POST", "/hooks/abc")], amap, {})
    assert report.unmapped and "notify_webhook POST /hooks/abc" in report.unmapped[0]


def test_botocore_calls_map_through_the_aws_section_whatever_package_makes_them(
    amap: ActionsMap,
) -> None:
    publish = {**_aws("Publish", "sns"), "provider": "notify_sns"}
    report = check([publish], amap, {"aws-notify": {"sns:Publish"}}, providers=["aws"])
    assert report.ok and report.required == {"aws-notify": {"sns:Publish": {"sns:Publish"}}}


def test_calls_that_need_no_permission_map_to_nothing(amap: ActionsMap) -> None:
    report = check([_aws("GetCallerIdentity", "sts")], amap, {}, providers=["aws"])
    assert report.ok and not report.required


def test_the_log_names_in_the_request_body_select_the_logging_permission(
    amap: ActionsMap,
) -> None:
    private = _http(
        "gcp", "POST", "/v2/entries:list", markers=["cloudaudit.googleapis.com%2Fdata_access"]
    )
    public = _http(
        "gcp", "POST", "/v2/entries:list", markers=["compute.googleapis.com%2Fvpc_flows"]
    )
    report = check([private, public], amap, {}, providers=["gcp"])
    assert set(report.required["gcp"]) == {
        "logging.privateLogEntries.list",
        "logging.logEntries.list",
    }
    other = check([_http("gcp", "POST", "/v2/entries:list")], amap, {}, providers=["gcp"])
    assert set(other.required["gcp"]) == {"logging.logEntries.list"}


def test_the_first_matching_row_wins_so_blob_rows_do_not_swallow_arm_paths(
    amap: ActionsMap,
) -> None:
    arm = _http("azure", "GET", "/subscriptions/s1/providers/Microsoft.Compute/virtualMachines")
    blob = _http("azure", "GET", "/logs/insights-logs-x/resourceId%3D/A/y%3D2024/PT1H.json")
    listing = _http("azure", "GET", "/logs/insights-logs-x", query=["comp", "restype"])
    report = check([arm, blob, listing], amap, {}, providers=["azure"])
    assert set(report.required["azure"]) == {
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
    }


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/v3/projects/{p}", "/v3/projects/gpu-prod", True),
        ("/v3/projects/{p}", "/v3/projects/gpu-prod:getIamPolicy", False),
        ("/v3/projects/{p}:getIamPolicy", "/v3/projects/gpu-prod:getIamPolicy", True),
        ("/{a}/{c}/{blob...}", "/acct/cont/x/y/z.json", True),
        ("/{a}/{c}", "/acct/cont/x", False),
        (
            "/subscriptions/{s}/providers/Microsoft.Compute/skus",
            "/subscriptions/S/providers/microsoft.compute/SKUS",
            True,
        ),
    ],
)
def test_path_templates_match_one_segment_or_many(template: str, path: str, expected: bool) -> None:
    assert bool(path_regex(template).fullmatch(path)) is expected


# -- the policy files themselves ------------------------------------------------------------

_READ_VERBS_AWS = ("Describe", "List", "Get", "Lookup", "Filter")


def test_aws_read_policies_are_read_only_apart_from_assuming_the_member_role() -> None:
    for name in ("aws-member-role.json", "aws-management-role.json"):
        doc = json.loads((DEPLOY / "iam" / name).read_text())
        for stmt in doc["Statement"]:
            assert stmt["Effect"] == "Allow" and "NotAction" not in stmt
            for action in stmt["Action"]:
                _service, op = action.split(":")
                if action == "sts:AssumeRole":
                    assert stmt["Resource"].endswith(":role/chipwarden-audit-read")
                    continue
                assert "*" not in op and op.startswith(_READ_VERBS_AWS), action
                if action.startswith("s3:"):
                    assert "*" not in "".join(stmt["Resource"]).replace("/*", ""), stmt


def test_the_sns_policy_can_only_publish_to_one_topic() -> None:
    doc = json.loads((DEPLOY / "iam" / "aws-notify-sns.json").read_text())
    (stmt,) = doc["Statement"]
    assert stmt["Action"] == ["sns:Publish"] and "*" not in stmt["Resource"]


def test_gcp_role_is_read_only_and_loadable_by_gcloud() -> None:
    role = yaml.safe_load((DEPLOY / "iam" / "gcp-role.yaml").read_text())
    assert set(role) <= {"title", "description", "stage", "includedPermissions"}
    perms = role["includedPermissions"]
    assert perms == sorted(set(perms))
    assert all(p.rsplit(".", 1)[1] in ("list", "get", "getIamPolicy") for p in perms), perms


def test_azure_role_is_read_only_and_complete() -> None:
    role = json.loads((DEPLOY / "iam" / "azure-role.json").read_text())
    assert role["IsCustom"] is True and role["NotActions"] == [] and role["AssignableScopes"]
    for action in [*role["Actions"], *role["DataActions"]]:
        assert action.endswith("/read") and "*" not in action, action


def test_kubernetes_rbac_only_reads() -> None:
    path = DEPLOY / "kubernetes" / "components" / "kubernetes-source" / "rbac.yaml"
    for doc in yaml.safe_load_all(path.read_text()):
        for rule in doc.get("rules", []) if doc else []:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
