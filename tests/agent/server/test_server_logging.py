"""No secret in any log line: tokens, console cookies and webhook URLs never reach the log,
even at debug level; the access log names the token id instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from agent.logging import configure_logging, redact_secrets
from agent.review.models import Role
from tests.agent.server.conftest import Service


@pytest.fixture
def json_logs() -> Iterator[None]:
    configure_logging(fmt="json", level="debug")
    yield
    structlog.reset_defaults()


def test_requests_log_the_token_id_but_never_the_token(
    service: Service, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    token = service.tokens[Role.ADMIN]
    service.client.get("/v1/runs", headers=service.auth())
    service.client.post("/v1/evaluate", json={"source_ip": "1.2.4.8"}, headers=service.auth())
    service.client.get("/v1/runs", headers={"authorization": f"Bearer {token[:-2]}zz"})
    form = service.client.get("/console/login")
    service.client.post("/console/login", data={"token": token, "csrf": "wrong"})
    assert form.status_code == 200

    logged = capsys.readouterr().err
    assert '"event": "http_request"' in logged
    assert token.split("_")[1] in logged  # the public id is fine
    assert token not in logged and token.split("_", 2)[2] not in logged
    assert token[:-2] not in logged


def test_the_redaction_processor_masks_secret_fields_and_embedded_secrets() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "oops Bearer cw_0123456789ab_" + "s" * 43,
            "token": "raw",
            "session_secret": "x",
            "url": "https://hooks.slack.com/services/T0/B0/abcdef",
            "store": "postgresql://chip:hunter2@db/x",
            "token_id": "0123456789ab",
        },
    )

    assert event["token"] == event["session_secret"] == "[redacted]"  # noqa: S105
    assert "s" * 43 not in event["event"]
    assert event["url"].endswith("/services/[redacted]")
    assert "hunter2" not in event["store"]
    assert event["token_id"] == "0123456789ab"  # noqa: S105
