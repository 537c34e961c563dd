"""Hostile text must reach the store intact or be refused per record, never abort the audit:
a NUL character in a client-controlled field (user agent, user name) is legal JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent.cli import run
from agent.store import open_store
from tests.reliability.crashlab import UrlFactory


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[pytest.mark.postgres],
        ),
    ]
)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_nul_character_in_a_user_agent_is_stored_without_aborting_the_audit(
    store_kind: str, new_url: UrlFactory, tmp_path: Path
) -> None:
    record = {
        "eventName": "StartSession",
        "eventSource": "ssm.amazonaws.com",
        "eventTime": "2026-11-25T09:12:37Z",
        "eventID": "nul-1",
        "recipientAccountId": "111122223333",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "175.45.176.1",
        "userAgent": "aws-cli/2.22\u0000evil",
        "userIdentity": {"type": "IAMUser", "userName": "al\u0000ice"},
        "requestParameters": {"target": "i-0a1b2c3d4e5f60001"},
    }
    (tmp_path / "ct.json").write_text(json.dumps({"Records": [record]}))
    url = new_url()
    config = {"sources": [{"type": "cloudtrail-files", "paths": ["ct.json"]}], "store": url}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))

    code = run(
        [
            "audit",
            "-c",
            str(tmp_path / "config.yaml"),
            "--no-progress",
            "-f",
            "jsonl",
            "-o",
            str(tmp_path / "out.jsonl"),
        ]
    )

    assert code == 0
    with open_store(url) as store:
        sessions = list(store.list_sessions())
    assert [s.key for s in sessions] == ["nul-1"]
    assert "evil" in (sessions[0].user_agent or "")
