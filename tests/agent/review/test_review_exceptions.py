"""Exceptions: scope matching, bounded expiry, excepting and re-flagging findings (trailed),
the audit's finding hook and the reviewed YAML file import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent.errors import ConfigError, UsageError
from agent.models import FindingStatus
from agent.review.errors import NotFoundError
from agent.review.exceptions import ExceptionRequest, scope_matches
from agent.review.models import ExceptionScope, ReviewAction
from agent.review.service import ReviewService
from agent.store import SqlStore
from tests.agent.review.reviewkit import T0, FakeClock, build_finding, build_session, seed


def _request(days: float = 30, **scope: str) -> ExceptionRequest:
    return ExceptionRequest(
        scope=ExceptionScope(**scope),
        owner="gpu-platform",
        approver="ciso",
        justification="contractor in Shanghai under licence L-123",
        expires_at=T0 + timedelta(days=days),
    )


@pytest.mark.parametrize(
    ("scope", "matches"),
    [
        ({"principal": "arn:aws:iam::111122223333:user/alice"}, True),
        ({"principal": "arn:aws:iam::111122223333:user/bob"}, False),
        ({"instance": "i-0123456789abcdef0"}, True),
        ({"account": "111122223333", "country": "cn"}, True),
        ({"account": "111122223333", "country": "IR"}, False),
        ({"cidr": "1.2.4.0/24"}, True),
        ({"cidr": "1.2.5.0/24"}, False),
        ({"cidr": "2001:db8::/32"}, False),
        ({"policy": "export-controls/d5-remote-access"}, True),
        ({"policy": "hygiene/other"}, False),
    ],
)
def test_every_scope_field_given_must_match(scope: dict[str, str], matches: bool) -> None:
    assert scope_matches(ExceptionScope(**scope), build_finding()) is matches


@pytest.mark.parametrize(
    ("scope", "fragment"),
    [({}, "at least one"), ({"country": "CHN"}, "pattern"), ({"principal": ""}, "at least 1")],
)
def test_invalid_scopes_are_rejected(scope: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ExceptionScope(**scope)


def test_a_bad_cidr_is_a_usage_error_naming_the_value(service: ReviewService) -> None:
    with pytest.raises(UsageError, match=r"'1\.2\.3\.999/8' is not an IP network"):
        service.exceptions.create(_request(cidr="1.2.3.999/8"), actor="admin")


def test_the_stored_cidr_is_normalised(service: ReviewService) -> None:
    outcome = service.exceptions.create(_request(cidr="1.2.4.77/24"), actor="admin")

    assert outcome.record.scope.cidr == "1.2.4.0/24"


@pytest.mark.parametrize(
    ("days", "fragment"), [(-1, "not in the future"), (91, "more than 90 days")]
)
def test_expiry_is_required_in_the_future_and_bounded(
    service: ReviewService, days: float, fragment: str
) -> None:
    with pytest.raises(UsageError, match=fragment):
        service.exceptions.create(_request(days, account="111122223333"), actor="admin")


def test_creating_an_exception_excepts_matching_open_findings_and_trails_it(
    service: ReviewService, store: SqlStore
) -> None:
    hit, other_ip, resolved = seed(
        store,
        [
            build_finding(),
            build_finding(build_session("evt-2", source_ip="5.6.7.8")),
            build_finding(build_session("evt-3"), status=FindingStatus.RESOLVED),
        ],
    )

    outcome = service.exceptions.create(_request(cidr="1.2.4.0/24"), actor="admin (token t1)")

    assert outcome.finding_ids == [hit.id]
    stored = store.get_finding(hit.id)
    assert stored is not None and stored.status is FindingStatus.EXCEPTED
    assert stored.extra["exception_id"] == outcome.record.id
    assert store.get_finding(other_ip.id).status is FindingStatus.OPEN  # type: ignore[union-attr]
    assert store.get_finding(resolved.id).status is FindingStatus.RESOLVED  # type: ignore[union-attr]
    actions = [(e.action, e.finding_id) for e in service.reviews.trail()]
    assert actions == [(ReviewAction.EXCEPTION_CREATED, None), (ReviewAction.EXCEPT, hit.id)]
    assert service.verify_trail().ok


def test_expiry_reflags_the_findings_and_records_the_expiry_in_the_trail(
    service: ReviewService, store: SqlStore, clock: FakeClock
) -> None:
    (finding,) = seed(store, [build_finding()])
    outcome = service.exceptions.create(_request(days=7, account="111122223333"), actor="admin")
    clock.now = T0 + timedelta(days=6)
    assert service.exceptions.expire_due() == []

    clock.now = T0 + timedelta(days=7, seconds=1)
    (expired,) = service.exceptions.expire_due(actor="service")

    assert expired.record.id == outcome.record.id and expired.finding_ids == [finding.id]
    stored = store.get_finding(finding.id)
    assert stored is not None and stored.status is FindingStatus.OPEN
    assert "exception_id" not in stored.extra
    assert stored.extra["expired_exception_id"] == outcome.record.id
    tail = service.reviews.trail()[-2:]
    assert [e.action for e in tail] == [ReviewAction.EXCEPTION_EXPIRED, ReviewAction.REFLAG]
    assert tail[0].details["exception_id"] == outcome.record.id
    assert tail[1].finding_id == finding.id and tail[1].to_status == "open"
    assert service.exceptions.list(active_only=True) == []
    assert service.verify_trail().ok


def test_expire_now_ends_an_exception_early(
    service: ReviewService, store: SqlStore, clock: FakeClock
) -> None:
    (finding,) = seed(store, [build_finding()])
    created = service.exceptions.create(
        _request(principal=finding.session.principal or ""), actor="a"
    )
    clock.now = T0 + timedelta(hours=1)

    outcome = service.exceptions.expire_now(created.record.id, actor="admin")

    assert outcome.record.expires_at == clock.now
    assert store.get_finding(finding.id).status is FindingStatus.OPEN  # type: ignore[union-attr]
    with pytest.raises(UsageError, match="already expired"):
        service.exceptions.expire_now(created.record.id, actor="admin")
    with pytest.raises(NotFoundError):
        service.exceptions.expire_now("exc_missing", actor="admin")


def test_the_finding_hook_excepts_new_findings_only_while_the_exception_is_active(
    service: ReviewService, clock: FakeClock
) -> None:
    created = service.exceptions.create(_request(days=2, country="CN"), actor="admin")
    fresh = build_finding(build_session("evt-9"))

    hooked = service.exceptions.apply(fresh)

    assert hooked.status is FindingStatus.EXCEPTED
    assert hooked.extra["exception_id"] == created.record.id
    assert service.exceptions.apply(build_finding(country="IR")).status is FindingStatus.OPEN
    clock.now = T0 + timedelta(days=3)
    service.exceptions.expire_due()
    assert service.exceptions.apply(fresh).status is FindingStatus.OPEN


def test_yaml_import_creates_every_exception_with_its_file_as_origin(
    service: ReviewService, store: SqlStore, tmp_path: Path
) -> None:
    seed(store, [build_finding()])
    path = tmp_path / "exceptions.yaml"
    path.write_text(
        "exceptions:\n"
        "  - scope: {account: '111122223333', country: CN}\n"
        "    owner: gpu-platform\n"
        "    approver: ciso\n"
        "    justification: licensed research partner\n"
        "    expires_at: 2026-12-15T00:00:00Z\n"
        "  - scope: {cidr: 10.0.0.0/8}\n"
        "    owner: netops\n"
        "    approver: ciso\n"
        "    justification: bastion range\n"
        "    expires_at: 2027-01-10\n"
    )

    outcomes = service.exceptions.import_file(path, actor="cli:alice")

    assert [len(o.finding_ids) for o in outcomes] == [1, 0]
    assert {o.record.origin for o in outcomes} == {"file:exceptions.yaml"}


def test_yaml_import_reports_bad_entries_by_line_and_stores_none(
    service: ReviewService, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "exceptions:\n"
        "  - scope: {country: CN}\n"
        "    owner: a\n"
        "    approver: b\n"
        "    justification: c\n"
        "    expires_at: 2026-12-01T00:00:00Z\n"
        "  - scope: {country: CN}\n"
        "    owner: a\n"
        "    approver: b\n"
        "    justification: c\n"
        "    expires_at: 2030-01-01T00:00:00Z\n"
        "  - scope: {country: CN}\n"
        "    owner: a\n"
        "    approver: b\n"
        "    justifcation: typo\n"
        "    expires_at: 2026-12-01T00:00:00Z\n"
    )

    with pytest.raises(ConfigError) as caught:
        service.exceptions.import_file(path, actor="cli")

    assert f"{path}:15: exceptions[2].justifcation: unknown key" in caught.value.message
    assert f"{path}:12: exceptions[2].justification: Field required" in caught.value.message
    assert service.exceptions.list() == []


def test_yaml_import_bounds_every_expiry_and_names_its_line(
    service: ReviewService, tmp_path: Path
) -> None:
    path = tmp_path / "far.yaml"
    path.write_text(
        "exceptions:\n"
        "  - scope: {country: CN}\n"
        "    owner: a\n"
        "    approver: b\n"
        "    justification: c\n"
        "    expires_at: 2030-01-01T00:00:00Z\n"
    )

    with pytest.raises(ConfigError, match=rf"{path}:6: exceptions\[0\]: .*more than 90 days"):
        service.exceptions.import_file(path, actor="cli")
    assert service.exceptions.list() == []
