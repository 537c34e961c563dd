"""Suite-wide setup: nothing may leave loopback, and moto must be imported before boto3
sessions exist (see ../shared/reference/testing-cloud-sdks.md)."""

from __future__ import annotations

import os

# Env BEFORE any SDK import: fake AWS credentials, no retries, GCP over REST on loopback only.
for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "1",
    "AWS_RETRY_MODE": "standard",
    "GOOGLE_CLOUD_PROJECT": "chipwarden-test",
    "GOOGLE_CLOUD_DISABLE_GRPC": "true",
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
}.items():
    os.environ[key] = value
for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(key, None)
for key in [
    k
    for k in os.environ
    if k.startswith("CHIPWARDEN_") and k != "CHIPWARDEN_TEST_PG_URL" and k != "CHIPWARDEN_SKIP_PG"
]:
    os.environ.pop(key)

import moto  # noqa: E402,F401  - sessions created before this import are never mocked
import pytest  # noqa: E402
import structlog  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_structlog() -> None:
    """The CLI configures structlog for the process; each test starts from the defaults."""
    structlog.reset_defaults()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the IAM specs' traffic recording early, so it overlaps the rest of the suite."""
    if any(item.path.name == "test_deploy_iam.py" for item in session.items):
        from tests.deploy.recorder import RECORDING, start_recording

        session.config.stash[RECORDING] = start_recording()


def pytest_unconfigure(config: pytest.Config) -> None:
    from tests.deploy.recorder import RECORDING

    recording = config.stash.get(RECORDING, None)
    if recording is not None:
        recording.close()
