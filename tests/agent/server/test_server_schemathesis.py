"""Property-based conformance: schemathesis generates requests from the published OpenAPI
document and checks every response against it (status codes, content types, bodies, no 5xx).

A separate app and store, so generated exceptions and reviews cannot touch other specs. The
example count is kept small (the whole module runs in well under a minute)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from agent.review.models import Role
from agent.server.app import create_app
from tests.agent.review.reviewkit import FakeClock, build_finding, build_session, seed
from tests.agent.server.conftest import make_settings

MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    app = create_app(make_settings(tmp), clock=clock)
    state = app.state.services
    seed(state.store, [build_finding(build_session(f"fuzz-{i}")) for i in range(3)])
    token, _ = state.review.tokens.create(name="fuzzer", role=Role.ADMIN, created_by="test")
    yield app, {"Authorization": f"Bearer {token}"}  # capitalised: schemathesis matches it
    state.close()


def test_api_conforms_to_its_openapi_document(
    fuzz_app: tuple[object, dict[str, str]],
) -> None:
    """Every operation, MAX_EXAMPLES generated cases each, all of schemathesis' checks."""
    app, headers = fuzz_app
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    # Credentials as project config, so schemathesis knows them as real auth: its probes
    # strip them (expecting 401) and also try invalid ones.
    api.config.update(headers=headers)
    # 400 is this API's documented answer to schema-valid but semantically wrong input (an
    # opaque cursor not from a previous page, an exception expiry past the configured bound).
    acceptance = api.config.checks.positive_data_acceptance
    acceptance.expected_statuses = [*acceptance.expected_statuses, "400"]
    failures: dict[str, str] = {}
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate()

        try:
            check()
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert operations >= 12
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
