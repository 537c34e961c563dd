"""Service commands on the CLI and the audit's hooks: tokens, reviews, exceptions, exports;
an audit applies API-managed exceptions and notifies without being blocked by a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from agent.cli import run, sample_config_path
from agent.notify.base import notifier_key
from agent.store import open_store
from agent.store.service_queries import ServiceQueries
from tests.agent.review.reviewkit import PEPPER


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHIPWARDEN_TOKEN_PEPPER", PEPPER)
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _audit(config: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    code = run(["audit", "--config", str(config), "--format", "json", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _sample_config(tmp: Path, store: str, extra: str = "") -> Path:
    text = sample_config_path().read_text()
    base = sample_config_path().parent
    for name in ("inventory.csv", "auth.log", "cloudtrail/"):
        text = text.replace(name, f"{base}/{name}")
    path = tmp / "config.yaml"
    path.write_text(text + f"store: {store}\n" + extra)
    return path


def test_token_create_prints_the_token_once_and_list_shows_no_secret(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["token", "create", "--name", "gw", "--role", "reviewer", "--store", env]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cw_")

    assert run(["token", "list", "--store", env]) == 0
    listing = capsys.readouterr().out
    assert "gw" in listing and "reviewer" in listing and token not in listing
    token_id = token.split("_")[1]
    assert run(["token", "revoke", token_id, "--store", env]) == 0
    assert run(["token", "revoke", token_id, "--store", env]) == 2


def test_token_create_without_a_pepper_fails_with_a_hint(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CHIPWARDEN_TOKEN_PEPPER")

    assert run(["token", "create", "--name", "gw", "--store", env]) == 2
    assert "CHIPWARDEN_TOKEN_PEPPER" in capsys.readouterr().err


def test_audit_applies_exceptions_and_the_cli_reviews_and_exports(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _sample_config(tmp_path, env)
    first = _audit(config, capsys)
    cn = next(f for f in first if f["session"]["source_ip"] == "1.2.4.8")

    assert (
        run(
            [
                "exceptions",
                "add",
                "--store",
                env,
                "--country",
                "CN",
                "--owner",
                "gpu",
                "--approver",
                "ciso",
                "--justification",
                "partner lab",
                "--expires",
                "30d",
            ]
        )
        == 0
    )
    assert "finding(s) excepted" in capsys.readouterr().out
    again = _audit(config, capsys)
    assert {f["status"] for f in again if f["ip"]["country"] == "CN"} == {"excepted"}

    assert run(["findings", "review", cn["id"], "--action", "reopen", "--store", env]) == 0
    assert (
        run(
            [
                "findings",
                "review",
                cn["id"],
                "--action",
                "resolve",
                "--reason",
                "authorised",
                "--note",
                "licence L-1",
                "--store",
                env,
            ]
        )
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "report.html"
    assert run(["findings", "export", "--format", "html", "-o", str(out), "--store", env]) == 0
    assert 'id="world-map"' in out.read_text()
    assert run(["findings", "export", "--format", "csv", "--store", env]) == 0
    assert capsys.readouterr().out.startswith("id,severity,status")
    assert run(["findings", "verify-trail", "--store", env]) == 0


def test_exception_expiry_from_the_cli_reflags(
    env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(
            [
                "exceptions",
                "add",
                "--store",
                env,
                "--account",
                "1",
                "--owner",
                "o",
                "--approver",
                "a",
                "--justification",
                "j",
                "--expires",
                "2d",
            ]
        )
        == 0
    )
    exc_id = capsys.readouterr().out.split(":")[0]

    assert run(["exceptions", "expire", exc_id, "--store", env]) == 0
    assert "expired" in capsys.readouterr().out
    assert run(["exceptions", "list", "--store", env]) == 0
    assert "expired" in capsys.readouterr().out
    assert run(["exceptions", "expire", "--store", env]) == 0
    assert "no exception was due" in capsys.readouterr().out


def test_exceptions_import_names_the_bad_line(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "exc.yaml"
    path.write_text("exceptions:\n  - scope: {country: CN}\n    owner: o\n")

    assert run(["exceptions", "import", str(path), "--store", env]) == 2
    assert f"{path}:2: exceptions[0].approver: Field required" in capsys.readouterr().err


def test_an_audit_notifies_new_findings_and_a_dead_receiver_does_not_fail_it(
    env: str, tmp_path: Path, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    received: list[dict] = []  # type: ignore[type-arg]
    httpserver.expect_request("/hook").respond_with_handler(
        lambda r: (received.append(json.loads(r.data)), __import__("werkzeug").Response("ok"))[1]
    )
    config = _sample_config(
        tmp_path,
        env,
        "notifiers:\n"
        f"  - url: {httpserver.url_for('/hook')}\n"
        "    min_severity: critical\n    backoff_seconds: 0\n"
        "  - url: http://127.0.0.1:9/dead\n    attempts: 1\n",
    )

    findings = _audit(config, capsys)
    _audit(config, capsys)  # nothing new: nothing sent again

    critical = {f["id"] for f in findings if f["severity"] == "critical"}
    assert critical and {f["id"] for b in received for f in b["findings"]} == critical
    assert len(received) == 1
    with open_store(env) as db:
        pending = ServiceQueries(db).undelivered(notifier_key("http://127.0.0.1:9/dead"))
    assert {d.finding_id for d in pending} >= critical  # recorded, retried next run


def test_a_bad_notifier_entry_is_a_config_error_with_its_line(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _sample_config(tmp_path, env, "notifiers:\n  - url: https://x\n    colour: red\n")

    assert run(["audit", "--config", str(config), "--no-progress"]) == 2
    assert "notifiers[0].colour: unknown key" in capsys.readouterr().err
