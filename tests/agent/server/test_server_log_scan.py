"""No secret in any log output, proven by scanning it: real requests carrying tokens, Basic
credentials, console cookies, CSRF tokens and secrets in URLs go through the service (in
process, and as a real ``chipwarden serve`` under uvicorn), the CLI runs an audit whose
notifiers have secret webhook URLs, and then every byte written to stderr/stdout (structlog
JSON and stdlib ``logging`` alike) is searched for each secret string."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from agent.cli import run as cli_run
from agent.cli import sample_config_path
from agent.logging import configure_logging
from agent.review.models import Role
from agent.server.app import create_app
from tests.agent.review.reviewkit import FakeClock
from tests.agent.server.conftest import make_settings

EVENTLIST = Path(__file__).resolve().parents[2] / "data" / "k8s" / "webhook" / "eventlist.json"


def _secret(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


@dataclass
class World:
    """A config with secret notifier URLs, the secrets it and the requests carry, a receiver."""

    tmp: Path
    config: Path
    receiver: HTTPServer
    env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)

    def add(self, name: str, value: str) -> str:
        self.secrets[name] = value
        return value

    def leaks(self, text: str) -> dict[str, str]:
        """Each secret found in ``text`` (name -> the line it appears on)."""
        found = {}
        for name, value in self.secrets.items():
            if value in text:
                line = next(ln for ln in text.splitlines() if value in ln)
                found[name] = line[:300]
        return found


@pytest.fixture
def world(tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> World:
    sample = tmp_path / "sample"
    shutil.copytree(sample_config_path().parent, sample, ignore=shutil.ignore_patterns("*.py"))
    w = World(tmp=tmp_path, config=sample / "config.yaml", receiver=httpserver, env={})

    def receive(request: Request) -> Response:
        w.received.append(request.full_path)
        return Response("ok")

    httpserver.expect_request(
        f"/hook/{w.add('webhook_path', _secret('whpath'))}", method="POST"
    ).respond_with_handler(receive)
    slack_path = (
        f"/services/T0CW{secrets.token_hex(3).upper()}/B0CW/{w.add('slack', _secret('sl'))}"
    )
    httpserver.expect_request(slack_path, method="POST").respond_with_handler(receive)
    webhook = httpserver.url_for(
        f"/hook/{w.secrets['webhook_path']}?token={w.add('webhook_query', _secret('whq'))}"
    )
    slack = httpserver.url_for(slack_path).replace("http://", "slack+http://")
    dead = f"http://hook:{w.add('userinfo_password', _secret('pw'))}@127.0.0.1:1/{_secret('x')}"
    w.add("dead_path", dead.rsplit("/", 1)[1])
    env_url = "CHIPWARDEN_LOGSCAN_HOOK"
    w.env[env_url] = slack
    monkeypatch.setenv(env_url, slack)
    targets = [
        {"url": webhook, "min_severity": "low", "attempts": 1, "backoff_seconds": 0},
        {"url_env": env_url, "min_severity": "low", "attempts": 1, "backoff_seconds": 0},
        {"url": dead, "min_severity": "low", "attempts": 2, "backoff_seconds": 0},
    ]
    with w.config.open("a", encoding="utf-8") as fh:
        fh.write("notifiers:\n")
        for target in targets:
            fh.write(f"  - {json.dumps(target)}\n")
    w.add("pepper", _secret("pepper"))
    w.add("session_secret", _secret("session"))
    return w


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """JSON logs at debug, and the stdlib root logger opened up as far as it goes."""
    root, receiver = logging.getLogger(), logging.getLogger("werkzeug")
    levels = root.level, receiver.level
    configure_logging(fmt="json", level="debug")
    root.setLevel(1)
    receiver.setLevel(logging.WARNING)  # the test's fake webhook receiver, not chipwarden
    yield
    root.setLevel(levels[0])
    receiver.setLevel(levels[1])
    structlog.reset_defaults()


def _k8s_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(EVENTLIST.read_text())
    for item in body["items"]:
        if isinstance(item, dict) and "auditID" in item:
            item["auditID"] = f"{item['auditID']}-{uuid.uuid4().hex[:6]}"
        if isinstance(item, dict) and isinstance(item.get("sourceIPs"), list):
            item["sourceIPs"] = ["1.2.4.8"]
    return body


def _drive(w: World, client: httpx.Client | TestClient, token: str) -> dict[str, int]:
    """Every kind of request that carries a secret; returns a few statuses as evidence."""
    good = {"authorization": f"Bearer {token}"}
    guessed = w.add("guessed_token", f"cw_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}")
    w.add("guessed_secret_part", guessed.split("_", 2)[2])
    password = w.add("basic_password", _secret("basicpw"))
    basic = w.add("basic_header", base64.b64encode(f"ops:{password}".encode()).decode())
    statuses = {
        "good": client.get("/v1/runs", headers=good).status_code,
        "guessed": client.get(
            "/v1/findings", headers={"authorization": f"Bearer {guessed}"}
        ).status_code,
        "basic": client.get("/v1/runs", headers={"authorization": f"Basic {basic}"}).status_code,
        "token_in_path": client.get(f"/v1/findings/{guessed}").status_code,
        "token_in_query": client.get(
            "/v1/runs",
            params={"token": w.add("query_token", _secret("qt")), "api_key": _secret("k")},
            headers=good,
        ).status_code,
        "evaluate": client.post(
            "/v1/evaluate",
            json={"source_ip": "1.2.4.8", "record": True, "attributes": {"note": "log scan"}},
            headers=good,
        ).status_code,
        "ingest": client.post(
            "/v1/ingest/kubernetes-audit",
            params={"cluster": f"c-{uuid.uuid4().hex[:6]}"},
            json=_k8s_body(),
            headers=good,
        ).status_code,
    }
    form = client.get("/console/login")
    csrf = w.add("csrf", form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0])
    bad_login = client.post("/console/login", data={"token": guessed, "csrf": csrf})
    login = client.post(
        "/console/login", data={"token": token, "csrf": csrf}, follow_redirects=False
    )
    statuses.update(bad_login=bad_login.status_code, login=login.status_code)
    cookie = login.cookies.get("chipwarden_console") or client.cookies.get("chipwarden_console")
    assert cookie, "the console login set no session cookie"
    w.add("session_cookie", cookie)
    statuses["dashboard"] = client.get("/console/").status_code
    page = client.get("/console/exceptions")
    w.add("page_csrf", page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0])
    statuses["logout"] = client.post(
        "/console/logout", data={"csrf": w.secrets["page_csrf"]}, follow_redirects=False
    ).status_code
    return statuses


EXPECTED = {
    "good": 200,
    "guessed": 401,
    "basic": 401,
    "token_in_path": 401,
    "token_in_query": 200,
    "evaluate": 200,
    "ingest": 200,
    "bad_login": 401,
    "login": 303,
    "dashboard": 200,
    "logout": 303,
}


def test_service_requests_leave_no_secret_in_structlog_or_stdlib_output(
    world: World, debug_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        world.tmp,
        config=world.config,
        token_pepper=world.secrets["pepper"],
        session_secret=world.secrets["session_secret"],
    )
    app = create_app(settings, clock=FakeClock(datetime.now(UTC).replace(microsecond=0)))
    token, _ = app.state.services.review.tokens.create(
        name="scan-admin", role=Role.ADMIN, created_by="test"
    )
    world.add("admin_token", token)
    world.add("admin_secret_part", token.split("_", 2)[2])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        statuses = _drive(world, client, token)

    out, err = capfd.readouterr()
    assert statuses == EXPECTED
    assert any("/hook/" in p for p in world.received)  # the secret URLs were really used
    assert '"event": "http_request"' in err and '"event": "auth_rejected"' in err
    assert '"event": "notify_failed"' in err  # the dead target's failure was logged
    assert world.leaks(out + err) == {}


def test_the_cli_logs_no_secret_from_config_env_or_tokens(
    world: World,
    debug_logging: None,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = f"sqlite:///{world.tmp / 'cli.db'}"
    monkeypatch.setenv("CHIPWARDEN_TOKEN_PEPPER", world.secrets["pepper"])
    common = ["--config", str(world.config), "--store", store]

    created = cli_run(["token", "create", "--name", "scan", "--role", "admin", *common])
    token_out, token_err = capfd.readouterr()
    token = world.add("cli_token", token_out.strip())
    world.add("cli_token_secret", token.split("_", 2)[2])
    logs = ["--log-format", "json", "--log-level", "debug"]
    audit = cli_run(["audit", *common, "--format", "jsonl", "--no-progress", *logs])
    listed = cli_run(["token", "list", *common])
    out, err = capfd.readouterr()

    assert created == 0 and token.startswith("cw_")
    assert audit in (0, 3, 4) and listed == 0
    assert any("/hook/" in p for p in world.received)
    assert '"event": "notify_failed"' in err
    assert world.leaks(token_err + out + err) == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_real_uvicorn_server_writes_only_redacted_json_lines(
    world: World, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{world.tmp / 'serve.db'}"
    monkeypatch.setenv("CHIPWARDEN_TOKEN_PEPPER", world.secrets["pepper"])
    assert cli_run(["token", "create", "--name", "uv", "--role", "admin", "--store", store]) == 0
    token = world.add("serve_token", capfd.readouterr().out.strip())
    world.add("serve_token_secret", token.split("_", 2)[2])
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIPWARDEN_")}
    env.update(
        world.env,
        CHIPWARDEN_TOKEN_PEPPER=world.secrets["pepper"],
        CHIPWARDEN_SESSION_SECRET=world.secrets["session_secret"],
        CHIPWARDEN_COOKIE_SECURE="false",
        CHIPWARDEN_EXPIRY_SWEEP_SECONDS="0",
    )
    entry = "import sys; from agent.cli import main; sys.argv[0] = 'chipwarden'; main()"
    cmd = [sys.executable, "-c", entry, "serve", "--config", str(world.config)]
    cmd += ["--store", store, "--port", str(port), "--log-format", "json", "--log-level", "debug"]
    proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            _wait_until_up(client, proc)
            statuses = _drive(world, client, token)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)

    assert statuses == EXPECTED
    lines = [line for line in err.splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json(line)]
    assert not_json == [], "every stderr line of a json-logging server is a JSON object"
    events = {json.loads(line).get("event") for line in lines}
    assert {"service_ready", "http_request", "auth_rejected", "webhook_ingested"} <= events
    assert world.leaks(out + err) == {}


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _wait_until_up(client: httpx.Client, proc: subprocess.Popen[str]) -> None:
    """Poll /healthz until the server answers (or its process has exited)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chipwarden serve exited: {proc.communicate()[1][-3000:]}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("chipwarden serve did not come up")


def test_stdlib_records_are_rendered_and_redacted_like_structlog_events(
    debug_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = _secret("sdk")
    logging.getLogger("some.sdk").warning(
        "retrying POST https://h.example/x?sig=%s after %s", secret, "Bearer " + _secret("b")
    )

    (line,) = [ln for ln in capfd.readouterr().err.splitlines() if "some.sdk" in ln]
    event = json.loads(line)
    assert event["level"] == "warning" and event["logger"] == "some.sdk"
    assert (
        event["event"] == "retrying POST https://h.example/x?sig=[redacted] after Bearer [redacted]"
    )
    assert secret not in line
