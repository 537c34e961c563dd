"""Auth-failure rate limiting: after N refused credentials from one client address within the
window, that address gets 429 + Retry-After on every route but health/ready (even with a good
token) until the lockout passes. Driven through the app with a fake monotonic clock; each test
uses its own client address (TestClient ``client=``), so they share one app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from structlog.testing import capture_logs

from agent.review.models import Role
from agent.server.app import create_app
from agent.server.ratelimit import AuthFailureLimiter, client_address, client_key, parse_networks
from agent.server.settings import ServerSettings
from tests.agent.review.reviewkit import FakeClock
from tests.agent.server.conftest import make_settings

LIMIT, WINDOW, LOCKOUT = 3, 60.0, 120.0
BAD = {"authorization": "Bearer cw_000000000000_" + "x" * 43}


class Seconds:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Limited:
    app: FastAPI
    seconds: Seconds
    token: str

    def client(self, address: str) -> TestClient:
        return TestClient(self.app, base_url="http://127.0.0.1", client=(address, 50000))

    def good(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def metric(self, name: str, **labels: str) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return float(value or 0.0)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    settings = make_settings(
        tmp_path_factory.mktemp("ratelimit"),
        auth_failure_limit=LIMIT,
        auth_failure_window_seconds=WINDOW,
        auth_lockout_seconds=LOCKOUT,
        auth_limiter_max_clients=100,
        trusted_proxies=["10.0.0.0/8"],
    )
    seconds = Seconds()
    app = create_app(settings, clock=FakeClock(datetime.now(UTC)), auth_clock=seconds)
    token, _ = app.state.services.review.tokens.create(
        name="rl-admin", role=Role.ADMIN, created_by="test"
    )
    with TestClient(app):  # runs the lifespan once (and closes the store at the end)
        yield Limited(app=app, seconds=seconds, token=token)


def _fail(client: TestClient, times: int) -> list[int]:
    return [client.get("/v1/runs", headers=BAD).status_code for _ in range(times)]


def test_the_nth_failure_is_answered_401_and_the_next_request_429_even_with_a_good_token(
    limited: Limited,
) -> None:
    client = limited.client("198.51.100.1")

    assert _fail(client, LIMIT) == [401] * LIMIT
    refused = client.get("/v1/runs", headers=limited.good())

    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(int(LOCKOUT))
    assert refused.json()["code"] == "auth_rate_limited"
    assert refused.headers["x-content-type-options"] == "nosniff"  # still a hardened answer


def test_retry_after_counts_down_and_the_lockout_ends_after_its_time(limited: Limited) -> None:
    client = limited.client("198.51.100.2")
    _fail(client, LIMIT)

    limited.seconds.advance(LOCKOUT - 30.5)
    assert client.get("/v1/runs", headers=limited.good()).headers["retry-after"] == "31"

    limited.seconds.advance(31)
    assert client.get("/v1/runs", headers=limited.good()).status_code == 200
    assert _fail(client, 1) == [401]  # a fresh window: one failure does not lock again


def test_failures_spread_wider_than_the_window_never_lock(limited: Limited) -> None:
    client = limited.client("198.51.100.3")
    for _ in range(LIMIT * 3):
        assert _fail(client, 1) == [401]
        limited.seconds.advance(WINDOW / (LIMIT - 1) + 0.1)

    assert client.get("/v1/runs", headers=limited.good()).status_code == 200


def test_successes_missing_credentials_and_forbidden_roles_do_not_count(limited: Limited) -> None:
    client = limited.client("198.51.100.4")
    viewer, _ = limited.app.state.services.review.tokens.create(
        name="rl-viewer", role=Role.VIEWER, created_by="test"
    )
    for _ in range(LIMIT * 2):
        assert client.get("/v1/runs", headers=limited.good()).status_code == 200
        assert client.get("/v1/runs").status_code == 401  # no credentials: nothing guessed
        assert (
            client.post(
                "/v1/exceptions", json={}, headers={"authorization": f"Bearer {viewer}"}
            ).status_code
            == 403
        )

    assert _fail(client, LIMIT - 1) == [401] * (LIMIT - 1)
    assert client.get("/v1/runs", headers=limited.good()).status_code == 200


def test_health_and_readiness_are_never_limited(limited: Limited) -> None:
    client = limited.client("198.51.100.5")
    _fail(client, LIMIT)

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics", headers=limited.good()).status_code == 429


def test_a_locked_address_does_not_affect_other_clients(limited: Limited) -> None:
    _fail(limited.client("198.51.100.6"), LIMIT)

    other = limited.client("198.51.100.7")
    assert other.get("/v1/runs", headers=limited.good()).status_code == 200


def test_failed_console_logins_count_like_bad_tokens(limited: Limited) -> None:
    client = limited.client("198.51.100.8")
    statuses = []
    for _ in range(LIMIT):
        form = client.get("/console/login")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        statuses.append(
            client.post("/console/login", data={"token": "cw_nope", "csrf": csrf}).status_code
        )

    assert statuses == [401] * LIMIT
    assert client.get("/console/login").status_code == 429


def test_the_lockout_is_logged_once_with_the_address_and_counted_in_metrics(
    limited: Limited,
) -> None:
    client = limited.client("198.51.100.9")
    lockouts = limited.metric("chipwarden_auth_lockouts_total")
    refused = limited.metric("chipwarden_auth_rate_limited_total")
    failures = limited.metric("chipwarden_auth_failures_total", reason="invalid_token")

    with capture_logs() as logs:
        _fail(client, LIMIT)
        client.get("/v1/runs", headers=limited.good())
        client.get("/v1/runs", headers=BAD)

    (event,) = [e for e in logs if e["event"] == "auth_rate_limited"]
    assert event["client"] == "198.51.100.9"
    assert event["failures"] == LIMIT and event["retry_after_seconds"] == LOCKOUT
    assert BAD["authorization"].split()[1] not in json.dumps(logs)
    assert limited.metric("chipwarden_auth_lockouts_total") == lockouts + 1
    assert limited.metric("chipwarden_auth_rate_limited_total") == refused + 2
    assert limited.metric("chipwarden_auth_failures_total", reason="invalid_token") == (
        failures + LIMIT
    )


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited_not_the_proxy(
    limited: Limited,
) -> None:
    proxy = limited.client("10.1.2.3")
    attacker = {**BAD, "x-forwarded-for": "203.0.113.50"}
    for _ in range(LIMIT):
        assert proxy.get("/v1/runs", headers=attacker).status_code == 401

    assert (
        proxy.get(
            "/v1/runs", headers={**limited.good(), "x-forwarded-for": "203.0.113.50"}
        ).status_code
        == 429
    )
    for someone_else in ("203.0.113.51", "spoofed, 203.0.113.52"):
        headers = {**limited.good(), "x-forwarded-for": someone_else}
        assert proxy.get("/v1/runs", headers=headers).status_code == 200


def test_an_untrusted_peer_cannot_escape_its_lockout_with_forwarded_for(limited: Limited) -> None:
    client = limited.client("198.51.100.10")
    for n in range(LIMIT):
        headers = {**BAD, "x-forwarded-for": f"192.0.2.{n}"}
        assert client.get("/v1/runs", headers=headers).status_code == 401

    headers = {**limited.good(), "x-forwarded-for": "192.0.2.200"}
    assert client.get("/v1/runs", headers=headers).status_code == 429


def test_ipv6_clients_are_limited_by_their_64_prefix(limited: Limited) -> None:
    for n in range(LIMIT):
        assert _fail(limited.client(f"2001:db8:5:6::{n + 1}"), 1) == [401]

    neighbour = limited.client("2001:db8:5:6:ffff::1")
    assert neighbour.get("/v1/runs", headers=limited.good()).status_code == 429
    elsewhere = limited.client("2001:db8:5:7::1")
    assert elsewhere.get("/v1/runs", headers=limited.good()).status_code == 200


# -- the limiter on its own: memory bound and settings ---------------------------------------


def test_an_address_rotating_flood_cannot_grow_the_table_past_its_cap() -> None:
    seconds = Seconds()
    evicted: list[int] = []
    limiter = AuthFailureLimiter(
        limit=LIMIT,
        window=WINDOW,
        lockout=LOCKOUT,
        max_clients=50,
        clock=seconds,
        on_evict=lambda: evicted.append(1),
    )
    for n in range(5000):
        limiter.failure(f"k{n}")

    assert len(limiter) == 50
    assert len(evicted) == limiter.evictions == 5000 - 50


def test_stale_clients_make_room_without_counting_as_evictions() -> None:
    seconds = Seconds()
    limiter = AuthFailureLimiter(
        limit=LIMIT, window=WINDOW, lockout=LOCKOUT, max_clients=10, clock=seconds
    )
    for n in range(10):
        limiter.failure(f"old{n}")
    seconds.advance(WINDOW + 1)
    limiter.failure("new")

    assert len(limiter) == 1 and limiter.evictions == 0


def test_a_zero_limit_turns_the_limiter_off() -> None:
    limiter = AuthFailureLimiter(limit=0, window=WINDOW, lockout=LOCKOUT, clock=Seconds())
    for _ in range(100):
        assert limiter.failure("k") is None

    assert limiter.retry_after("k") is None and len(limiter) == 0


def test_settings_have_sane_defaults_and_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = ServerSettings()
    assert (defaults.auth_failure_limit, defaults.auth_failure_window_seconds) == (10, 60.0)
    assert defaults.auth_lockout_seconds == 60.0 and defaults.trusted_proxies == []

    monkeypatch.setenv("CHIPWARDEN_AUTH_FAILURE_LIMIT", "5")
    monkeypatch.setenv("CHIPWARDEN_AUTH_LOCKOUT_SECONDS", "900")
    monkeypatch.setenv("CHIPWARDEN_TRUSTED_PROXIES", '["10.0.0.0/8", "fd00::/8"]')
    env = ServerSettings()

    assert (env.auth_failure_limit, env.auth_lockout_seconds) == (5, 900.0)
    assert env.trusted_proxies == ["10.0.0.0/8", "fd00::/8"]


def test_a_bad_trusted_proxy_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="not an address or CIDR"):
        ServerSettings(trusted_proxies=["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.1", "203.0.113.9", "198.51.100.1"),  # untrusted peer: header ignored
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # right-most untrusted
        ("10.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.2"),  # all trusted: the left-most
        ("10.0.0.1", "203.0.113.9:4711", "203.0.113.9:4711"),
        ("10.0.0.1", "not-an-ip", "10.0.0.1"),  # garbage from a trusted hop: the peer
        ("::ffff:10.0.0.1", "[2001:db8::1]:443", "[2001:db8::1]:443"),
    ],
)
def test_the_client_address_behind_proxies(peer: str, forwarded: str | None, expected: str) -> None:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope: dict[str, Any] = {"client": (peer, 1), "headers": headers}

    assert client_address(scope, parse_networks(["10.0.0.0/8"])) == expected


def test_client_keys_fold_ports_mapped_ipv4_and_ipv6_hosts() -> None:
    assert client_key("203.0.113.9:4711") == client_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert client_key("[2001:db8:1:2::99]:443") == client_key("2001:db8:1:2:aaaa::1")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("testclient") == "testclient"
