"""Scope fan-out: the caller's account, a list, or the Organization; member roles through STS
AssumeRole (refreshed before expiry); enabled regions per account; failures as ScopeErrors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.iam.models import get_account_id_from  # the account moto maps a key to

from agent.errors import ProviderPermissionError
from providers.aws.catalog import AwsInstanceCatalog
from providers.aws.client import AwsClient
from providers.aws.inventory import read_inventory
from providers.aws.scope import resolve_scope
from providers.aws.settings import AwsSourceConfig

from .conftest import make_ctx
from .fakeaws import FakeAws, GlobalFake

MGMT = "123456789012"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> GlobalFake:
    return GlobalFake().install(monkeypatch)


@pytest.fixture
def org(aws: None, boto_session: Any) -> dict[str, Any]:
    """An organization with two active members and a suspended one."""
    client = AwsClient(session=boto_session)
    orgs = client.client("organizations")
    orgs.create_organization(FeatureSet="ALL")
    members = [
        orgs.create_account(Email=f"{n}@example.com", AccountName=n)["CreateAccountStatus"][
            "AccountId"
        ]
        for n in ("a", "b", "gone")
    ]
    orgs.close_account(AccountId=members[2])
    return {"client": client, "active": sorted(members[:2]), "suspended": members[2]}


def config(**kw: Any) -> AwsSourceConfig:
    return AwsSourceConfig.model_validate({"type": "aws", "regions": ["us-east-1"], **kw})


def test_organization_scope_assumes_the_role_in_every_active_member(
    org: dict[str, Any], fake: GlobalFake
) -> None:
    sts = FakeAws(org["client"].client("sts"))  # records the caller's AssumeRole calls
    ctx = make_ctx()
    caller, scopes = resolve_scope(
        config=config(
            organization=True,
            assume_role="Audit",
            external_id="xid-42",
            role_session_name="cw-test",
        ),
        client=org["client"],
        ctx=ctx,
        source="aws",
    )
    assert caller is not None and caller.account == MGMT and ctx.scope_errors == []
    assert sorted(s.account for s in scopes) == sorted([MGMT, *org["active"]])
    assumed = sorted(c["RoleArn"] for c in sts.calls_to("AssumeRole"))  # the caller's too
    assert assumed == sorted(f"arn:aws:iam::{a}:role/Audit" for a in [MGMT, *org["active"]])
    assert {(c["ExternalId"], c["RoleSessionName"]) for c in sts.calls_to("AssumeRole")} == {
        ("xid-42", "cw-test")
    }
    by_account = {s.account: s for s in scopes}
    assert by_account[MGMT].role_arn == f"arn:aws:iam::{MGMT}:role/Audit"
    for account in [MGMT, *org["active"]]:  # each client really acts in its account
        assert by_account[account].client.client("sts").get_caller_identity()["Account"] == account


def test_a_denied_assume_role_names_the_role_and_the_permission_and_others_continue(
    org: dict[str, Any], fake: GlobalFake
) -> None:
    denied = sorted([MGMT, *org["active"]])[0]  # one worker: accounts are opened in order
    FakeAws(org["client"].client("sts")).fail(
        "AssumeRole",
        "AccessDenied",
        f"User: arn:aws:iam::{MGMT}:user/auditor is not authorized to perform: sts:AssumeRole",
        status=403,
    )
    ctx = make_ctx()
    _, scopes = resolve_scope(
        config=config(organization=True, assume_role="Audit", max_workers=1),
        client=org["client"],
        ctx=ctx,
        source="aws",
    )
    assert sorted(s.account for s in scopes) == sorted({MGMT, *org["active"]} - {denied})
    (error,) = ctx.scope_errors
    role = f"arn:aws:iam::{denied}:role/Audit"
    assert (error.scope, error.permission, error.code) == (
        denied,
        "sts:AssumeRole",
        "permission_denied",
    )
    assert role in error.message and role in (error.remediation or "")
    assert "trust policy" in (error.remediation or "")


def test_without_a_role_only_the_callers_own_account_is_read(aws: None, boto_session: Any) -> None:
    ctx = make_ctx()
    _, scopes = resolve_scope(
        config=config(accounts=[MGMT, "210987654321"]),
        client=AwsClient(session=boto_session),
        ctx=ctx,
        source="aws",
    )
    assert [s.account for s in scopes] == [MGMT]
    (error,) = ctx.scope_errors
    assert (error.scope, error.code) == ("210987654321", "no_role")
    assert "assume_role" in (error.remediation or "")


def test_a_listing_the_organization_is_denied_is_a_scope_error(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    FakeAws(client.client("organizations")).fail(
        "ListAccounts", "AccessDeniedException", "not allowed"
    )
    ctx = make_ctx()
    _, scopes = resolve_scope(
        config=config(organization=True, assume_role="Audit"), client=client, ctx=ctx, source="aws"
    )
    assert scopes == []
    (error,) = ctx.scope_errors
    assert (error.scope, error.permission) == ("organization", "organizations:ListAccounts")


def _regions_xml(*names: str) -> str:
    items = "".join(
        f"<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint>"
        "<optInStatus>opt-in-not-required</optInStatus></item>"
        for r in names
    )
    return (
        '<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>r1</requestId><regionInfo>{items}</regionInfo></DescribeRegionsResponse>"
    )


def test_regions_are_the_enabled_ones_of_each_account_and_an_opt_in_region_fails_alone(
    org: dict[str, Any], fake: GlobalFake
) -> None:
    fake.on_call(
        "DescribeRegions",
        lambda call: (
            _regions_xml("ap-east-1", "us-east-1")
            if get_account_id_from(call.access_key or "") == MGMT
            else _regions_xml("eu-west-1")
        ),
    )
    fake.deny(
        "DescribeInstances",
        when=lambda call: call.region == "ap-east-1",
        code="OptInRequired",
        message="You are not subscribed to this service.",
        status=401,
    )
    ctx = make_ctx()
    _, scopes = resolve_scope(
        config=config(regions=None, organization=True, assume_role="Audit"),
        client=org["client"],
        ctx=ctx,
        source="aws",
    )
    regions = {s.account: s.regions for s in scopes}
    assert regions[MGMT] == ("ap-east-1", "us-east-1")
    assert {regions[a] for a in org["active"]} == {("eu-west-1",)}
    mgmt = next(s for s in scopes if s.account == MGMT)
    found = read_inventory(
        ctx, scope=mgmt, region="ap-east-1", catalog=AwsInstanceCatalog(), source="aws"
    )
    assert found == []
    (error,) = ctx.scope_errors
    assert error.scope == f"{MGMT}/ap-east-1" and "opt in" in (error.remediation or "")
    assert error.permission == "ec2:DescribeInstances"


def _assume_role_xml(expires: datetime) -> str:
    return (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        "<Credentials><AccessKeyId>ASIAFAKEFAKEFAKE</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
        f"<SessionToken>t</SessionToken><Expiration>{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        "</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::210987654321:assumed-role/"
        "Audit/x</Arn><AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>"
        "<ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )


def test_member_credentials_are_refreshed_before_they_expire(
    aws: None, boto_session: Any, fake: GlobalFake
) -> None:
    client = AwsClient(session=boto_session)
    sts = FakeAws(client.client("sts"))
    lifetimes = iter([timedelta(minutes=5), timedelta(hours=1)])
    sts.on("AssumeRole", lambda _p: _assume_role_xml(datetime.now(UTC) + next(lifetimes)))
    member = client.assume_role(
        role_arn="arn:aws:iam::210987654321:role/Audit",
        account="210987654321",
        session_name="cw-test",
    )
    assert len(sts.calls_to("AssumeRole")) == 1  # eager: a denied role fails here
    for _ in range(2):
        member.client("sts").get_caller_identity()
    assert len(sts.calls_to("AssumeRole")) == 2  # 5 minutes left: refreshed once, then fresh
    assert {c.access_key for c in fake.calls_to("GetCallerIdentity")} == {"ASIAFAKEFAKEFAKE"}


def test_an_assume_role_error_is_translated_with_the_permission(
    aws: None, boto_session: Any
) -> None:
    client = AwsClient(session=boto_session)
    FakeAws(client.client("sts")).fail("AssumeRole", "AccessDenied", "no", status=403)
    with pytest.raises(ProviderPermissionError) as info:
        client.assume_role(role_arn="arn:aws:iam::1:role/A", account="1", session_name="xx")
    assert info.value.permission == "sts:AssumeRole"
