"""Console-started sessions take the client IP of the principal's last ConsoleLogin."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.models import AccessMethod, EvidenceRef, Outcome, Session
from providers.aws.console import (
    ConsoleLogin,
    LoginIndex,
    attribute_console_session,
    checkpoint_scope,
    decode_login,
    encode_login,
    is_console_started,
    login_from_session,
)

from .conftest import NOW

ALICE = "arn:aws:iam::111122223333:user/alice"


def session(**kw: object) -> Session:
    base: dict[str, object] = {
        "key": "k1",
        "provider": "aws",
        "source": "aws",
        "principal": ALICE,
        "method": AccessMethod.SSM_SESSION,
        "started_at": NOW,
        "source_ip": "52.94.133.131",
        "user_agent": "aws-internal/3 aws-sdk-java/1.12.720",
        "evidence": (EvidenceRef(kind="file", locator="s3://b/k", event_id="k1"),),
    }
    return Session(**{**base, **kw})  # type: ignore[arg-type]


def login(hours_before: float, ip: str = "1.2.4.8", principal: str = ALICE) -> ConsoleLogin:
    evidence = EvidenceRef(kind="file", locator="s3://b/login", event_id=f"login-{hours_before}")
    return ConsoleLogin(principal, ip, NOW - timedelta(hours=hours_before), evidence)


@pytest.mark.parametrize(
    ("changes", "console"),
    [
        ({}, True),
        ({"user_agent": "aws-cli/2.15", "source_ip": "ssm.amazonaws.com"}, True),
        ({"user_agent": "aws-cli/2.15", "source_ip": "AWS Internal"}, True),
        ({"user_agent": "aws-cli/2.15", "source_ip": "1.2.4.8"}, False),
        ({"method": AccessMethod.CONSOLE}, False),
    ],
)
def test_console_started_sessions_are_recognised(changes: dict[str, object], console: bool) -> None:
    assert is_console_started(session(**changes)) is console


def test_the_most_recent_login_within_twelve_hours_before_the_session_is_used() -> None:
    index = LoginIndex([login(13, "5.5.5.5"), login(3, "1.2.4.8"), login(1, "2.188.21.1")])
    index.add(login(-1, "9.9.9.9"))  # after the session: never used
    assert index.latest_before(ALICE, NOW - timedelta(hours=2)).ip == "1.2.4.8"  # type: ignore[union-attr]
    assert index.latest_before(ALICE, NOW).ip == "2.188.21.1"  # type: ignore[union-attr]
    assert index.latest_before(ALICE, NOW - timedelta(hours=16)) is None
    assert index.latest_before("arn:aws:iam::111122223333:user/bob", NOW) is None
    assert index.newest(ALICE).ip == "9.9.9.9"  # type: ignore[union-attr]


def test_attribution_replaces_the_aws_address_and_keeps_both_events_as_evidence() -> None:
    found = login(2)
    out = attribute_console_session(session(), found)
    assert out.source_ip == "1.2.4.8"
    assert [e.event_id for e in out.evidence] == ["k1", "login-2"]
    assert out.attributes["original_source_ip"] == "52.94.133.131"
    assert out.attributes["console_login"] == "attributed"
    assert "ConsoleLogin" in out.notes[-1] and "52.94.133.131" in out.notes[-1]


def test_no_login_keeps_the_aws_address_and_says_the_client_ip_is_unknown() -> None:
    out = attribute_console_session(session(), None)
    assert out.source_ip == "52.94.133.131" and out.attributes["console_login"] == "not-found"
    assert "client IP is unknown" in out.notes[-1]


def test_only_successful_logins_with_a_principal_and_ip_count() -> None:
    ok = session(method=AccessMethod.CONSOLE, source_ip="1.2.4.8", user_agent="Mozilla/5.0")
    assert login_from_session(ok) == ConsoleLogin(ALICE, "1.2.4.8", NOW, ok.evidence[0])
    assert login_from_session(ok.model_copy(update={"outcome": Outcome.FAILED})) is None
    assert login_from_session(session()) is None


def test_a_login_survives_the_checkpoint_round_trip() -> None:
    value = encode_login(login(2))
    back = decode_login(ALICE, value)
    assert back is not None and (back.ip, back.time) == ("1.2.4.8", NOW - timedelta(hours=2))
    assert back.evidence.locator == checkpoint_scope(ALICE) == f"aws:console-login:{ALICE}"
    assert back.evidence.event_id == "login-2"
    assert decode_login(ALICE, "garbage") is None and decode_login(ALICE, None) is None
