"""Notifiers: only new or changed findings at or above a severity, retried with backoff,
deduplicated by finding id; a failed delivery never blocks the audit and is retried later."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.errors import ConfigError
from agent.models import FindingStatus, Severity
from agent.notify.base import load_notifier, notifier_key, scheme_kind
from agent.notify.dispatch import NotificationDispatcher, NotifierTarget
from agent.notify.slack import SlackNotifier
from agent.notify.webhook import WebhookNotifier
from agent.store import SqlStore
from tests.agent.review.reviewkit import T0, FakeClock, build_finding, build_session, seed


class Receiver:
    """Records JSON bodies; fails the first ``fail`` requests with HTTP 503."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict] = []  # type: ignore[type-arg]
        self.fail = fail
        self.calls = 0

    def __call__(self, request: Request) -> Response:
        self.calls += 1
        if self.calls <= self.fail:
            return Response("busy", status=503)
        self.bodies.append(json.loads(request.data))
        return Response("ok", status=200)


def _dispatcher(
    store: SqlStore, clock: FakeClock, url: str, **kw: object
) -> NotificationDispatcher:
    target = NotifierTarget(url=url, backoff_seconds=0, **kw)  # type: ignore[arg-type]
    return NotificationDispatcher(store=store, targets=[target], clock=clock)


def _ids(receiver: Receiver) -> list[str]:
    return [f["id"] for body in receiver.bodies for f in body["findings"]]


@pytest.fixture
def findings(store: SqlStore):  # type: ignore[no-untyped-def]
    return seed(
        store,
        [
            build_finding(),
            build_finding(build_session("evt-2"), severity=Severity.CRITICAL),
            build_finding(build_session("evt-3"), severity=Severity.LOW),
            build_finding(build_session("evt-4"), status=FindingStatus.RESOLVED),
        ],
    )


def test_only_actionable_findings_at_or_above_the_severity_are_sent(
    httpserver: HTTPServer, store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver)

    (result,) = _dispatcher(store, clock, httpserver.url_for("/hook")).dispatch(
        findings, run_id="r1"
    )

    assert sorted(_ids(receiver)) == sorted([findings[0].id, findings[1].id])
    assert result.sent == 2 and result.failed == 0
    body = receiver.bodies[0]
    assert body["run_id"] == "r1" and body["subject"].startswith("chipwarden: 2 flagged")


def test_a_second_run_with_the_same_findings_sends_nothing(
    httpserver: HTTPServer, store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    httpserver.expect_request("/hook").respond_with_handler(receiver)
    dispatcher = _dispatcher(store, clock, httpserver.url_for("/hook"))
    dispatcher.dispatch(findings, run_id="r1")

    (again,) = dispatcher.dispatch(findings, run_id="r2")

    assert receiver.calls == 1
    assert again.sent == 0 and again.skipped == 2


def test_a_changed_finding_is_sent_again(
    httpserver: HTTPServer, store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    httpserver.expect_request("/hook").respond_with_handler(receiver)
    dispatcher = _dispatcher(store, clock, httpserver.url_for("/hook"))
    dispatcher.dispatch(findings, run_id="r1")
    worse = findings[0].model_copy(update={"severity": Severity.CRITICAL})

    dispatcher.dispatch([worse, findings[1]], run_id="r2")

    assert _ids(receiver)[-1:] == [worse.id]
    assert receiver.bodies[-1]["findings"][0]["severity"] == "critical"


def test_transient_failures_are_retried_with_backoff_until_delivered(
    httpserver: HTTPServer, store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(fail=2)
    httpserver.expect_request("/hook").respond_with_handler(receiver)

    (result,) = _dispatcher(store, clock, httpserver.url_for("/hook"), attempts=3).dispatch(
        findings, run_id="r1"
    )

    assert receiver.calls == 3 and result.sent == 2 and result.failed == 0


def test_a_failed_delivery_is_recorded_and_retried_on_the_next_run(
    httpserver: HTTPServer, store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver(fail=2)
    httpserver.expect_request("/hook").respond_with_handler(receiver)
    dispatcher = _dispatcher(store, clock, httpserver.url_for("/hook"), attempts=2)

    (first,) = dispatcher.dispatch(findings, run_id="r1")
    assert first.failed == 2 and receiver.bodies == []
    clock.now = T0 + timedelta(hours=1)
    (second,) = dispatcher.dispatch([], run_id="r2")  # the next run finds nothing new

    assert second.sent == 2
    assert sorted(_ids(receiver)) == sorted([findings[0].id, findings[1].id])


def test_an_unreachable_receiver_never_raises_into_the_audit(
    store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    dispatcher = _dispatcher(store, clock, "http://127.0.0.1:9/hook", attempts=2)

    (result,) = dispatcher.dispatch(findings, run_id="r1")

    assert result.failed == 2
    states = dispatcher._queries.undelivered(notifier_key("http://127.0.0.1:9/hook"))
    assert {s.finding_id for s in states} == {findings[0].id, findings[1].id}
    assert all(s.attempts == 1 and "cannot reach" in (s.last_error or "") for s in states)


def test_slack_notifier_posts_a_text_fallback_and_one_block_per_finding(
    httpserver: HTTPServer, store: SqlStore, clock: FakeClock, findings
) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    httpserver.expect_request("/services/T1/B2/x").respond_with_handler(receiver)
    url = "slack+" + httpserver.url_for("/services/T1/B2/x")

    _dispatcher(store, clock, url).dispatch(findings, run_id="r1")

    (body,) = receiver.bodies
    assert body["text"].startswith("chipwarden: 2 flagged")
    assert body["blocks"][0]["type"] == "header"
    assert len(body["blocks"]) == 3 and "*CRITICAL*" in body["blocks"][1]["text"]["text"]


@pytest.mark.parametrize(
    ("url", "kind", "cls"),
    [
        ("https://siem.example.com/in", "webhook", WebhookNotifier),
        ("webhook+https://siem.example.com/in", "webhook", WebhookNotifier),
        ("slack://hooks.slack.com/services/T/B/X", "slack", SlackNotifier),
    ],
)
def test_the_url_scheme_selects_the_notifier_through_the_registry(
    url: str, kind: str, cls: type
) -> None:
    assert scheme_kind(url) == kind
    assert isinstance(load_notifier(url), cls)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"url": "http://siem.example.com/in"}, "plain http"),
        ({"url": "siem.example.com"}, "no scheme"),
        ({"url_env": "CHIPWARDEN_TEST_UNSET_HOOK"}, "not set"),
    ],
)
def test_bad_targets_are_config_errors(store: SqlStore, clock: FakeClock, raw, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=fragment):
        NotificationDispatcher(
            store=store, targets=[NotifierTarget.model_validate(raw)], clock=clock
        )


def test_a_target_needs_exactly_one_of_url_and_url_env() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        NotifierTarget(url="https://a", url_env="B")
