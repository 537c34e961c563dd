"""Fixtures for the AWS provider tests: fake credentials set before moto is imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# tests/providers is a folder named like the top-level ``providers`` package: once tests/ is
# on sys.path it would shadow it as a namespace package. The repo root first keeps the real one.
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
}.items():
    os.environ.setdefault(_key, _value)
os.environ.pop("AWS_PROFILE", None)

import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
import botocore.retries.standard  # noqa: E402
import moto  # noqa: E402,F401  (sessions created before this import are never mocked)
import pytest  # noqa: E402
import structlog  # noqa: E402

from agent.contracts import AuditWindow, CollectContext  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "data" / "aws"
CLOUDTRAIL = DATA / "cloudtrail"
EC2 = DATA / "ec2"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def load_records(name: str) -> list[dict[str, Any]]:
    """CloudTrail records of one fixture file (list, S3 shape, single record or Panther JSONL)."""
    path = CLOUDTRAIL / name
    if path.suffix == ".jsonl":
        return [json.loads(line)["log"] for line in path.read_text().splitlines() if line]
    doc = json.loads(path.read_text())
    if isinstance(doc, dict):
        return list(doc["Records"]) if "Records" in doc else [doc]
    return list(doc)


def make_ctx(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    explicit: bool = False,
    checkpoints: dict[str, str] | None = None,
) -> CollectContext:
    """A collect context with a fixed clock and optional saved checkpoints."""
    saved = checkpoints or {}
    return CollectContext(
        window=AuditWindow(since=since, until=until, explicit=explicit),
        clock=lambda: NOW,
        checkpoints=saved.get,
    )


@pytest.fixture(autouse=True)
def _structlog_defaults() -> None:
    """Undo any structlog config another test left behind (e.g. a closed capture stream)."""
    structlog.reset_defaults()


@pytest.fixture
def ctx() -> CollectContext:
    return make_ctx()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore retries without sleeping (retry behaviour stays real)."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0
    )


@pytest.fixture(scope="session")
def boto_session() -> Any:
    """One boto3 Session for the run: service models load once (created after moto import)."""
    return boto3.Session(region_name="us-east-1")


@pytest.fixture
def aws() -> Iterator[None]:
    """moto's in-process AWS for the duration of one test."""
    from moto import mock_aws

    with mock_aws():
        yield
